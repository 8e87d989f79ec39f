"""An execution's events as a Server-Sent Events stream, resumable with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from ...errors import NotFoundError
from .._models import Event
from .._service import Service

__all__ = ["TERMINAL_EVENTS", "event_stream"]

TERMINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
"""Event types after which an execution never changes again; the stream ends after sending one."""

_KEEPALIVE = b": keep-alive\n\n"
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def event_stream(
    service: Service, execution_id: str, *, after: int, keepalive_seconds: float, stop: asyncio.Event | None = None
) -> StreamingResponse:
    """Stream the events of an execution with ``id > after`` as they happen.

    Raises ``NotFoundError`` (a 404, before the stream starts) for an unknown execution. The stream
    waits on the service's notifications, sends a comment every ``keepalive_seconds`` while nothing
    happens (so proxies keep the connection open), and ends after a terminal event, or at once when
    the execution had already ended before ``after``, or once ``stop`` is set (the server shuts down:
    the client reconnects with ``Last-Event-ID``). The store is read from a thread.
    """
    await asyncio.to_thread(service.get_execution, execution_id)
    frames = _frames(service, execution_id, after, keepalive_seconds, stop)
    return StreamingResponse(frames, media_type="text/event-stream", headers=_HEADERS)


def _frame(event: Event) -> bytes:
    # Compact JSON never contains a raw newline, so the data fits on one ``data:`` line.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.id,
        event.type.encode(),
        event.model_dump_json().encode(),
    )


async def _frames(
    service: Service, execution_id: str, after: int, keepalive_seconds: float, stop: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    while True:
        try:
            ended, events = await asyncio.to_thread(_read, service, execution_id, after)
            if not events and not ended:
                events = await service.wait_events_async(
                    execution_id, after=after, timeout=keepalive_seconds, stop=stop
                )
        except NotFoundError:
            return  # deleted while streaming
        if not events:
            if ended or (stop is not None and stop.is_set()):
                return
            yield _KEEPALIVE
            continue
        for event in events:
            yield _frame(event)
            after = event.id
            if event.type in TERMINAL_EVENTS:
                return


def _read(service: Service, execution_id: str, after: int) -> tuple[bool, list[Event]]:
    # Status first: if it is terminal, its terminal event is already in the log, so no event after
    # ``after`` means the client has seen the end.
    ended = service.get_execution(execution_id).status.is_terminal
    return ended, service.get_events(execution_id, after=after)
