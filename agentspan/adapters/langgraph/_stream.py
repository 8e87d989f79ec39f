"""Live stream items from a graph run by a worker thread of this process to the caller of ``stream()``.

The caller opens a :class:`Sink` before the execution exists and puts its token in the execution input;
the durable function finds the sink by that token and forwards LangGraph's stream items to it while it
runs. A run without a sink in this process (resumed by another process, or after the caller closed its
stream) runs as usual and forwards nothing.
"""

from __future__ import annotations

import queue
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import ConfigurationError

__all__ = ["STREAM_MODES", "GraphStream", "Sink", "find_sink", "open_sink"]

STREAM_MODES = ("values", "updates", "messages", "custom", "debug", "checkpoints", "tasks")
_END = object()
_sinks: dict[str, Sink] = {}
_lock = threading.Lock()


class Sink:
    """Where one run's stream items go: a thread-safe queue, closed by the reader."""

    def __init__(self, stream_mode: str | Sequence[str]) -> None:
        self.single = isinstance(stream_mode, str)
        self.modes: list[str] = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        if not self.modes or any(mode not in STREAM_MODES for mode in self.modes):
            raise ConfigurationError(f"stream_mode must be one or more of {', '.join(STREAM_MODES)}")
        self.token = uuid.uuid4().hex
        self.queue: queue.Queue[Any] = queue.Queue()
        self.closed = False

    def put(self, mode: str, item: Any) -> None:
        """Forward one item of the internal multi-mode stream when the reader asked for its mode."""
        if not self.closed and mode in self.modes:
            self.queue.put(item if self.single else (mode, item))

    def finish(self) -> None:
        """The run stopped here (finished, suspended, failed): the reader stops after what it has."""
        self.queue.put(_END)

    def close(self) -> None:
        """The reader is gone: forget the sink, and forward nothing more."""
        self.closed = True
        with _lock:
            _sinks.pop(self.token, None)


def open_sink(stream_mode: str | Sequence[str]) -> Sink:
    """A new registered sink for ``stream_mode`` (a LangGraph stream mode or a list of them)."""
    sink = Sink(stream_mode)
    with _lock:
        _sinks[sink.token] = sink
    return sink


def find_sink(token: Any) -> Sink | None:
    """The open sink with ``token`` in this process, if any."""
    if not isinstance(token, str):
        return None
    with _lock:
        found = _sinks.get(token)
    return None if found is None or found.closed else found


def internal_modes(sink: Sink) -> list[str]:
    """The modes the run streams: the reader's, plus ``values`` and ``updates`` for the final state."""
    return list(dict.fromkeys([*sink.modes, "updates", "values"]))


class GraphStream(Iterator[Any]):
    """The items of a graph run as LangGraph's ``stream`` yields them, forwarded live.

    Iteration ends when the run finishes or waits (an ``interrupt()``: see :attr:`handle`); if the
    run failed or was cancelled, the error is raised after the last item.
    """

    def __init__(self, handle: Any, sink: Sink, poll_seconds: float = 0.5) -> None:
        self.handle = handle
        """The run's :class:`~agentspan.adapters.langgraph._result.GraphHandle` (status, result, resume)."""
        self._sink = sink
        self._poll = poll_seconds
        self._done = False
        self._finalizer = weakref.finalize(self, sink.close)

    @property
    def execution_id(self) -> str:
        """The execution id."""
        return str(self.handle.execution_id)

    def __iter__(self) -> GraphStream:
        return self

    def __next__(self) -> Any:
        while not self._done:
            try:
                item = self._sink.queue.get(timeout=self._poll)
            except queue.Empty:
                if self._stopped():
                    self._end_soon()
                continue
            if item is _END:
                self._finish()
                break
            return item
        raise StopIteration

    def _stopped(self) -> bool:
        from ...runtime import ExecutionStatus

        status = self.handle.status
        return bool(status.is_terminal or status is ExecutionStatus.WAITING)

    def _end_soon(self) -> None:
        # The run stopped without this process forwarding its end (run elsewhere): end after the items.
        self._sink.queue.put(_END)

    def _finish(self) -> None:
        from ...runtime import ExecutionStatus

        self._done = True
        self.close()
        handle = self.handle._handle
        execution, after = handle.get(), 0
        while execution.status is ExecutionStatus.RUNNING:  # the worker records the end right after
            events = handle.client.wait_events(self.execution_id, after=after, timeout=1.0)
            after = events[-1].id if events else after
            execution = handle.get()
        if execution.status.is_terminal:
            self.handle._handle.result(timeout=0)  # raises when it failed or was cancelled

    def close(self) -> None:
        """Stop forwarding (the run itself goes on)."""
        self._done = True
        self._finalizer()
