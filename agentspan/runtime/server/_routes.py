"""The endpoints: each one reads its request, makes one call on the :class:`Service`, answers JSON.

Handlers are ``async`` and make their service call in a thread (``asyncio.to_thread``): a store call
is usually a fraction of a millisecond, but it waits while another process holds the database's
write lock (a backup, a long transaction), and the event loop must keep answering meanwhile
(``/health``, long polls, event streams). Long polls use the service's asyncio waits, so no waiting
request holds a thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, TypeAdapter

from ...errors import UnavailableError
from .._models import (
    FRAMEWORK_PATTERN,
    Claim,
    CreateExecution,
    Definition,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    Heartbeat,
    Step,
    WriteResult,
)
from .._service import Service
from ._bodies import (
    MAX_INT,
    BodyReader,
    ClaimBody,
    DefinitionBody,
    ForkBody,
    HeartbeatBody,
    RaiseBudgetBody,
    RecordsBody,
    SignalBody,
    body_doc,
)
from ._sse import event_stream

__all__ = ["RECORDS_BODY", "health", "router"]

router = APIRouter()
logger = logging.getLogger("agentspan.server")

_CREATE = BodyReader(CreateExecution)
RECORDS_BODY = BodyReader(RecordsBody)
_CLAIM = BodyReader(ClaimBody)
_HEARTBEAT = BodyReader(HeartbeatBody)
_SIGNAL = BodyReader(SignalBody, optional=True)
_RAISE = BodyReader(RaiseBudgetBody)
_FORK = BodyReader(ForkBody)
_DEFINITION = BodyReader(DefinitionBody, optional=True)

_STEPS = TypeAdapter(list[Step])
_EVENTS = TypeAdapter(list[Event])
_DEFINITIONS = TypeAdapter(list[Definition])

_JSON = "application/json"
_NO_CONTENT = 204

_EventId = Annotated[int, Query(ge=-MAX_INT - 1, le=MAX_INT)]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339(value: Any) -> Any:
    # pydantic would also take a number of seconds, or a date alone, which the document does not allow.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("Input should be a date-time with a timezone, e.g. 2026-01-01T00:00:00Z")
    return value


_DateTime = Annotated[datetime | None, BeforeValidator(_rfc3339), Query()]
_CURSOR = "The `next_cursor` of the previous page; omit it for the first page"
_FRAMEWORK = (
    "What runs the executions: `native`, `langgraph`, `openai_agents`, `crewai` or `google_adk` (a hyphen reads as `_`)"
)
_SEARCH = "An execution id prefix, or a part of the name; case does not matter"
_SUMMARY = "Add each item's `summary` (steps, model and tool calls, tokens, cost, times) and the page's `total`"
# An event id in 18 digits is always in range; empty means none (EventSource sends no other).
_LAST_EVENT_ID = r"^(-?[0-9]{1,18})?$"
_DEFINITION_NAME = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-/]+$")]
_SIGNAL_NAME = Annotated[str, Path(min_length=1, max_length=200)]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type=_JSON)


async def health() -> dict[str, str]:
    """Liveness: answers without a token."""
    return {"status": "ok"}


# workers (first, because routes are matched in order and these are the hot path) ----------------------
@router.post(
    "/executions/{execution_id}/records",
    response_model=WriteResult,
    openapi_extra=body_doc(RecordsBody),
    tags=["workers"],
)
async def write_records(execution_id: str, request: Request) -> Response:
    """Write a batch of records atomically under the lease ``epoch`` (409 if the lease was lost, or if
    anything follows a finish record: nothing is written then)."""
    # Served by RecordsFastPath in front of FastAPI; this route documents it and serves the same way.
    body = await RECORDS_BODY.read(request)
    service = _service(request)
    return _json(await asyncio.to_thread(service.write_records, execution_id, body.worker_id, body.epoch, body.records))


@router.post(
    "/claims",
    response_model=Claim,
    responses={_NO_CONTENT: {"description": "Nothing became claimable within wait_seconds"}},
    openapi_extra=body_doc(ClaimBody),
    tags=["workers"],
)
async def claim(request: Request) -> Response:
    """Lease the next execution among ``names``, long-polling up to ``wait_seconds``."""
    body = await _CLAIM.read(request)
    draining = _draining(request)
    # A long poll stops waiting when the worker hangs up (otherwise a worker killed while it waits
    # would be handed the next execution, leased to nobody until the lease expires) and when the
    # server shuts down (the worker is told to come back instead of being cut off).
    if body.wait_seconds > 0:
        logger.debug("claim by %s for %s waits up to %s s", body.worker_id, body.names, body.wait_seconds)
    stop = asyncio.Event()
    watch = asyncio.ensure_future(_stop_on_hangup_or_drain(request, draining, stop)) if body.wait_seconds > 0 else None
    try:
        found = await _service(request).claim_async(
            body.worker_id, body.names, wait_seconds=body.wait_seconds, lease_seconds=body.lease_seconds, stop=stop
        )
    finally:
        if watch is not None:
            watch.cancel()
    if found is None and draining.is_set():
        raise UnavailableError("the server is shutting down; claim again shortly", retry_after=1.0)
    return Response(status_code=_NO_CONTENT) if found is None else _json(found)


def _draining(request: Request) -> asyncio.Event:
    """Set when the server begins to shut down: long polls and event streams end at once."""
    draining: asyncio.Event = request.app.state.draining
    return draining


async def _stop_on_hangup_or_drain(request: Request, draining: asyncio.Event, stop: asyncio.Event) -> None:
    hangup = asyncio.ensure_future(_hangup(request))
    drain = asyncio.ensure_future(draining.wait())
    try:
        await asyncio.wait((hangup, drain), return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        drain.cancel()
    stop.set()


async def _hangup(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/executions/{execution_id}/heartbeat",
    response_model=Heartbeat,
    openapi_extra=body_doc(HeartbeatBody),
    tags=["workers"],
)
async def heartbeat(execution_id: str, request: Request) -> Response:
    """Renew a lease (409 if another worker took it over)."""
    body = await _HEARTBEAT.read(request)
    service = _service(request)
    beat = await asyncio.to_thread(
        service.heartbeat, execution_id, body.worker_id, body.epoch, lease_seconds=body.lease_seconds
    )
    return _json(beat)


# executions ------------------------------------------------------------------------------------------
@router.post(
    "/executions",
    response_model=Execution,
    status_code=201,
    responses={200: {"model": Execution, "description": "An execution with this idempotency key exists"}},
    openapi_extra=body_doc(CreateExecution),
    tags=["executions"],
)
async def create_execution(request: Request) -> Response:
    """Queue an execution; the same idempotency key returns the existing one."""
    body = await _CREATE.read(request)
    service = _service(request)
    execution, created = await asyncio.to_thread(
        service.create_or_get_execution, body.name, body.input, idempotency_key=body.idempotency_key,
        budget=body.budget, framework=body.framework,
    )  # fmt: skip
    return _json(execution, 201 if created else 200)


@router.get("/executions", response_model=ExecutionPage, tags=["executions"])
async def list_executions(
    request: Request,
    status: ExecutionStatus | None = None,
    name: str | None = None,
    created_after: _DateTime = None,
    created_before: _DateTime = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, description=_CURSOR)] = None,
    framework: Annotated[str | None, Query(pattern=FRAMEWORK_PATTERN, description=_FRAMEWORK)] = None,
    q: Annotated[str | None, Query(max_length=200, description=_SEARCH)] = None,
    summary: Annotated[bool, Query(description=_SUMMARY)] = False,
) -> Response:
    """Executions newest first, filtered, one page at a time (pass ``next_cursor`` as ``cursor``)."""
    page = await asyncio.to_thread(
        _service(request).list_executions, status=status, name=name, created_after=created_after, created_before=created_before,
        limit=limit, cursor=cursor, framework=framework, q=q, summary=summary,
    )  # fmt: skip
    return _json(page)


@router.get("/executions/{execution_id}", response_model=Execution, tags=["executions"])
async def get_execution(execution_id: str, request: Request) -> Response:
    """One execution."""
    return _json(await asyncio.to_thread(_service(request).get_execution, execution_id))


@router.post("/executions/{execution_id}/cancel", response_model=Execution, tags=["executions"])
async def cancel_execution(execution_id: str, request: Request) -> Response:
    """Cancel an unfinished execution; a worker running it has its next write rejected."""
    return _json(await asyncio.to_thread(_service(request).cancel_execution, execution_id))


@router.post(
    "/executions/{execution_id}/fork",
    response_model=Execution,
    status_code=201,
    responses={200: {"model": Execution, "description": "The fork with this idempotency key exists"}},
    openapi_extra=body_doc(ForkBody),
    tags=["executions"],
)
async def fork_execution(execution_id: str, request: Request) -> Response:
    """Queue a new execution of the same agent and input that replays this one's journal up to
    ``step`` and runs fresh from it (404 for an unknown step; the same idempotency key returns the
    same fork)."""
    body = await _FORK.read(request)
    service = _service(request)
    execution, created = await asyncio.to_thread(
        service.fork_or_get_execution, execution_id, body.step, idempotency_key=body.idempotency_key
    )
    return _json(execution, 201 if created else 200)


@router.delete("/executions/{execution_id}", status_code=_NO_CONTENT, tags=["executions"])
async def delete_execution(execution_id: str, request: Request) -> Response:
    """Delete a non-running execution with its journal and events."""
    await asyncio.to_thread(_service(request).delete_execution, execution_id)
    return Response(status_code=_NO_CONTENT)


@router.get("/executions/{execution_id}/journal", response_model=list[Step], tags=["executions"])
async def get_journal(execution_id: str, request: Request, include_superseded: bool = False) -> Response:
    """The journal in order; steps superseded by a divergence on request."""
    steps = await asyncio.to_thread(_service(request).get_journal, execution_id, include_superseded=include_superseded)
    return Response(_STEPS.dump_json(steps), media_type=_JSON)


@router.post(
    "/executions/{execution_id}/signals/{name:path}",
    response_model=Execution,
    openapi_extra=body_doc(SignalBody, required=False),
    tags=["executions"],
)
async def send_signal(execution_id: str, name: _SIGNAL_NAME, request: Request) -> Response:
    """Deliver a signal once; an execution waiting for it is queued again."""
    body = await _SIGNAL.read(request)
    return _json(await asyncio.to_thread(_service(request).send_signal, execution_id, name, body.payload))


@router.post(
    "/executions/{execution_id}/budget",
    response_model=Execution,
    openapi_extra=body_doc(RaiseBudgetBody),
    tags=["executions"],
)
async def raise_budget(execution_id: str, request: Request) -> Response:
    """Raise the budget of an execution waiting on it (409 if it is not); it is queued again."""
    body = await _RAISE.read(request)
    service = _service(request)
    return _json(
        await asyncio.to_thread(service.raise_budget, execution_id, tokens=body.tokens, cost_usd=body.cost_usd)
    )


# events ------------------------------------------------------------------------------------------------
@router.get("/executions/{execution_id}/events", response_model=list[Event], tags=["events"])
async def get_events(
    execution_id: str,
    request: Request,
    after: _EventId = 0,
    limit: int = 1000,
    wait: Annotated[float, Query(ge=0, le=300, allow_inf_nan=False)] = 0.0,
) -> Response:
    """Events with ``id > after``; with ``wait`` seconds, waits for the first one (a long poll)."""
    service = _service(request)
    if wait > 0:
        events = await service.wait_events_async(execution_id, after=after, timeout=wait, stop=_draining(request))
        events = events[: max(limit, 1)]
    else:
        events = await asyncio.to_thread(service.get_events, execution_id, after=after, limit=limit)
    return Response(_EVENTS.dump_json(events), media_type=_JSON)


@router.get(
    "/executions/{execution_id}/events/stream",
    response_class=Response,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
    tags=["events"],
)
async def stream_events(
    execution_id: str,
    request: Request,
    after: _EventId = 0,
    last_event_id: Annotated[str, Header(pattern=_LAST_EVENT_ID)] = "",
) -> Response:
    """The events as Server-Sent Events, resuming after ``Last-Event-ID`` (or ``after``); the stream
    ends after the execution completes, fails or is cancelled."""
    if last_event_id:
        after = int(last_event_id)  # the pattern admits only ids in range
    keepalive: float = request.app.state.keepalive_seconds
    return await event_stream(
        _service(request), execution_id, after=after, keepalive_seconds=keepalive, stop=_draining(request)
    )


router.add_api_route("/health", health, methods=["GET"], tags=["health"], summary="Health")


# definitions -------------------------------------------------------------------------------------------
@router.get("/definitions", response_model=list[Definition], tags=["definitions"])
async def list_definitions(request: Request) -> Response:
    """All deployed definitions, by name."""
    definitions = await asyncio.to_thread(_service(request).list_definitions)
    return Response(_DEFINITIONS.dump_json(definitions), media_type=_JSON)


@router.put(
    "/definitions/{name:path}",
    response_model=Definition,
    openapi_extra=body_doc(DefinitionBody, required=False),
    tags=["definitions"],
)
async def put_definition(name: _DEFINITION_NAME, request: Request) -> Response:
    """Register (or replace) a definition by name."""
    body = await _DEFINITION.read(request)
    return _json(await asyncio.to_thread(_service(request).put_definition, name, body.spec, kind=body.kind))


@router.get("/definitions/{name:path}", response_model=Definition, tags=["definitions"])
async def get_definition(name: _DEFINITION_NAME, request: Request) -> Response:
    """One definition."""
    return _json(await asyncio.to_thread(_service(request).get_definition, name))


@router.delete("/definitions/{name:path}", status_code=_NO_CONTENT, tags=["definitions"])
async def delete_definition(name: _DEFINITION_NAME, request: Request) -> Response:
    """Remove a definition."""
    await asyncio.to_thread(_service(request).delete_definition, name)
    return Response(status_code=_NO_CONTENT)
