"""The roof: the app, RQ queues and jobs, the process tree, its entry points and figures."""
