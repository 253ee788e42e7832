"""Keep jobs queued before the stage packages runnable: RQ stores ``worker.jobs.<name>``."""

from worker.service.jobs import deliver, flush, match_batch

__all__ = ["deliver", "flush", "match_batch"]
