"""The ``newsalert`` subcommands beyond the pipeline's own (``worker.cli`` holds those)."""
