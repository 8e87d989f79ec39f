"""Workers: processes that hold the agents' code and run the executions they claim."""

from ._worker import Worker, default_worker_id

__all__ = ["Worker", "default_worker_id"]
