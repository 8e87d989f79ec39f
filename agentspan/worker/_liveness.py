"""Whether the process behind a worker id is still alive, on this host, in a way a restart cannot fake.

A process id alone is not enough: in a container every start is PID 1 and PIDs are reused, so a dead
worker would look alive and a re-run would wait out its whole lease. Each process that runs workers
therefore holds an exclusive ``flock`` on a lock file named by a random per-process token, for as long
as it lives. The kernel drops the lock when the process dies (``SIGKILL`` included), so "I can take the
lock" means "its owner is gone"; nobody else can hold it.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import socket
import threading
import uuid
from pathlib import Path

__all__ = ["in_this_process", "lock_dir", "process_token", "worker_gone", "worker_id_for_process"]

_lock = threading.Lock()
_owner: tuple[int, str, int] | None = None  # (pid, token, fd of the held lock file)


def lock_dir() -> Path:
    """Where live processes keep their lock files: ``$AGENTSPAN_LOCK_DIR``, else ``~/.agentspan/workers``
    (beside the default database, so it outlives a container restart as the database does)."""
    configured = os.environ.get("AGENTSPAN_LOCK_DIR")
    return Path(configured) if configured else Path.home() / ".agentspan" / "workers"


def process_token() -> str:
    """This process's token, its lock file created and locked on first use (again after a fork)."""
    global _owner
    with _lock:
        pid = os.getpid()
        if _owner is not None and _owner[0] == pid:
            return _owner[1]
        token = uuid.uuid4().hex[:16]
        directory = lock_dir()
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / f"{token}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh random name: nobody else holds it
        os.set_inheritable(fd, False)
        _owner = (pid, token, fd)
        atexit.register(_remove, directory / f"{token}.lock", pid)
        return token


def _remove(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the atexit hook
        try:
            path.unlink()
        except OSError:
            pass


def worker_id_for_process() -> str:
    """``host:pid:token.suffix``: says where the worker runs, and lets this host tell when it died."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_token()}.{uuid.uuid4().hex[:6]}"


def in_this_process(worker_id: str | None) -> bool:
    """Whether ``worker_id`` names a worker of this process."""
    parts = (worker_id or "").split(":")
    return len(parts) == 3 and parts[0] == socket.gethostname() and parts[2].split(".", 1)[0] == process_token()


def worker_gone(worker_id: str | None) -> bool | None:
    """``True`` if the worker's process is known to be dead, ``False`` if alive, ``None`` if unknowable
    here (another host, or an id this module did not make).

    A worker id of this host whose lock file is missing counts as dead: its process exited (and
    removed it) or ran under another home; a false alarm only re-queues work early, and fencing
    rejects the writes of a worker whose lease was taken over.
    """
    parts = (worker_id or "").split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname():
        return None
    token = parts[2].split(".", 1)[0]
    if not token.isalnum():
        return None
    path = lock_dir() / f"{token}.lock"
    if _owner is not None and _owner[1] == token and _owner[0] == os.getpid():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True  # a live process of this host keeps its lock file until it exits
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner holds it: alive
    finally:
        os.close(fd)
    try:
        path.unlink()  # its owner is gone for good; nobody will ask for this token again but us
    except FileNotFoundError:
        pass
    return True
