"""The HTTP transport: :class:`HttpClient` speaks to a runtime server's ``/api``."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..errors import (
    AgentspanError,
    ConflictError,
    InvalidInputError,
    LeaseLostError,
    NotFoundError,
    NotJSONError,
    PayloadTooLargeError,
    TransportError,
    UnauthorizedError,
)
from ..runtime import (
    AgentStatus,
    Budget,
    Claim,
    Definition,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    Heartbeat,
    InboxDecision,
    InboxItem,
    InboxPage,
    Record,
    Step,
    WriteResult,
)
from ..runtime._inbox import check_decision
from ..runtime._models import validate
from ._retry import Backoff, RetryPolicy
from ._wire import WireConnection

__all__ = ["DEFAULT_SERVER_URL", "HttpClient"]

DEFAULT_SERVER_URL = "http://localhost:6767/api"
"""Where :class:`HttpClient` looks when neither an argument nor ``AGENTSPAN_SERVER_URL`` says."""

T = TypeVar("T")

_STEPS = TypeAdapter(list[Step])
_EVENTS = TypeAdapter(list[Event])
_DEFINITIONS = TypeAdapter(list[Definition])

# The error classes the server answers with, by the ``type`` of its error body.
_ERRORS: dict[str, type[AgentspanError]] = {
    cls.__name__: cls
    for cls in (
        InvalidInputError,
        NotJSONError,
        PayloadTooLargeError,
        NotFoundError,
        ConflictError,
        LeaseLostError,
        UnauthorizedError,
    )
}
# When the body names no known type (a proxy answered, say), the status decides.
_ERRORS_BY_STATUS: dict[int, type[AgentspanError]] = {
    401: UnauthorizedError,
    403: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
}
# A connection that could not be made carried nothing, so trying again is always safe; a request
# that fails later may have reached the server, and is retried only when repeating it is harmless.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, ConnectionRefusedError)
# 503: the server could not serve it now (a locked database, shutting down) and changed nothing;
# 502 and 504 come from a proxy in front of a server that is down or slow.
_RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_WAIT = 300.0


class _Reply(NamedTuple):
    status: int
    content: bytes
    reason: str
    retry_after: str | None
    response: httpx.Response | None


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` header's delay (the seconds form; an HTTP date is ignored)."""
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(value: Any, what: str) -> bytes:
    """Serialise like the store does: NaN, sets and arbitrary objects are refused, never coerced."""
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
        ).encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise NotJSONError(f"{what} is not JSON: {exc}; pass only dicts, lists, str, numbers, bools, None") from exc


def _segment(value: str) -> str:
    # Dots are escaped too, so that a name like ".." stays one path segment.
    return quote(value, safe="").replace(".", "%2E")


def _execution_path(execution_id: str) -> str:
    if execution_id.isalnum():
        return f"/executions/{execution_id}"
    if not execution_id or "/" in execution_id:
        # The server's ids never contain a slash; such an id would address another endpoint.
        raise NotFoundError(f"no execution with id {execution_id!r}", execution_id=execution_id)
    return f"/executions/{_segment(execution_id)}"


def _approval_path(approval_id: str) -> str:
    if not approval_id or "/" in approval_id:
        raise NotFoundError(f"no approval with id {approval_id!r}; `agentspan approvals list` shows the pending ones")
    return f"/approvals/{_segment(approval_id)}"


class HttpClient:
    """A :class:`~agentspan.client.Client` for a runtime server, over one keep-alive connection pool.

    Raises the same :mod:`agentspan.errors` as the in-process service, rebuilt from the server's
    error answers, plus :class:`~agentspan.errors.TransportError` when the server cannot be reached
    or fails (5xx). Usable as a context manager, which closes it.

    Args:
        base_url: The API root, e.g. ``http://localhost:6767/api``; defaults to
            ``AGENTSPAN_SERVER_URL``, then :data:`DEFAULT_SERVER_URL`.
        token: Bearer token for a server started with one; defaults to ``AGENTSPAN_AUTH_TOKEN``.
        timeout: Seconds to wait for a connection and for each answer; long polls wait this much
            longer than the time they ask the server to wait.
        retry: How long and how often to retry a server that is unreachable, restarting or busy
            (503); each retry logs one warning. The default gives up after a minute; a
            :class:`~agentspan.worker.Worker` waits for its server however long it takes.
    """

    inline_writes = False
    """Every write is a network round trip: async callers should make it in a thread."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        url = base_url or os.environ.get("AGENTSPAN_SERVER_URL") or DEFAULT_SERVER_URL
        self.base_url = url.rstrip("/")
        if token is None:
            token = os.environ.get("AGENTSPAN_AUTH_TOKEN") or None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        """The retry policy of every request."""
        self._sleep: Callable[[float], object] = time.sleep
        self._http = httpx.Client(headers=headers, timeout=timeout)
        self._wire = WireConnection(self.base_url, headers, timeout)

    # plumbing ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()
        self._wire.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def _request(
        self,
        method: str,
        path: str | httpx.URL,
        *,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        wait: float = 0.0,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send a request to ``path`` (under ``base_url``; a full URL as is); raise its error answer.

        Retried under :attr:`retry` (see :class:`RetryPolicy`); ``idempotent`` requests also when
        the connection broke after they were sent, or timed out.
        """
        url = path if isinstance(path, httpx.URL) else self.base_url + path
        timeout = httpx.Timeout(self.timeout, read=self.timeout + wait) if wait > 0 else httpx.USE_CLIENT_DEFAULT

        def send() -> _Reply:
            response = self._http.request(method, url, content=content, params=params, timeout=timeout)
            return _Reply(
                response.status_code, response.content, response.reason_phrase,
                response.headers.get("retry-after"), response,
            )  # fmt: skip

        reply = self._exchange(method, str(url), send, idempotent=idempotent)
        assert reply.response is not None
        return reply.response

    def _exchange(self, method: str, url: str, send: Callable[[], _Reply], *, idempotent: bool) -> _Reply:
        """``send()`` until it gets an answer that is not worth retrying, waiting between tries."""
        backoff: Backoff | None = None
        while True:
            retry_after: float | None = None
            cause: BaseException | None = None
            error: AgentspanError
            try:
                reply = send()
            except _NOT_SENT as exc:  # nothing reached the server: always safe to try again
                cause, retry = exc, True
                error = TransportError(f"cannot reach the Agentspan server at {self.base_url}: {exc}")
                problem = f"Agentspan server unreachable at {self.base_url}"
            except (httpx.HTTPError, OSError, ValueError) as exc:  # sent, and maybe applied
                cause, retry = exc, idempotent
                timed_out = isinstance(exc, httpx.TimeoutException | TimeoutError)
                what = "timed out" if timed_out else "failed"
                error = TransportError(f"{method} {url} {what}: {exc!r}")
                problem = f"no answer from the Agentspan server at {self.base_url} ({method} {what}: {exc!r})"
            else:
                if reply.status < 400:
                    return reply
                error = _error_from_parts(reply.status, reply.content, reply.reason)
                if reply.status not in _RETRY_STATUSES:
                    raise error
                # Our 503 changed nothing; a proxy's 502/504 may hide a request that was applied.
                retry = idempotent or reply.status == 503
                retry_after = _seconds(reply.retry_after)
                problem = f"Agentspan server at {self.base_url}: {error.message}"
            if backoff is None:
                backoff = Backoff(self.retry, sleep=self._sleep)
            if not retry or not backoff.wait(problem, retry_after):
                raise error from cause

    @staticmethod
    def _parse(response: httpx.Response, model: type[BaseModel] | TypeAdapter[Any]) -> Any:
        try:
            if isinstance(model, TypeAdapter):
                return model.validate_json(response.content)
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransportError(
                f"unexpected answer from {response.request.url} ({response.status_code}): {exc}"
            ) from None

    # executions ----------------------------------------------------------------------------------------
    def create_execution(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
        framework: str | None = None,
    ) -> Execution:
        """Queue an execution of ``name`` (limited to ``budget``, run by ``framework``); the same
        idempotency key returns the same execution."""
        body: dict[str, Any] = {"name": name, "input": input, "idempotency_key": idempotency_key}
        if budget is not None:
            body["budget"] = budget.model_dump(mode="json")
        if framework is not None:
            body["framework"] = framework
        content = _encode(body, "execution input")
        # Without a key, a repeat after a broken connection could start a second execution.
        response = self._request("POST", "/executions", content=content, idempotent=idempotency_key is not None)
        result: Execution = self._parse(response, Execution)
        return result

    def get_execution(self, execution_id: str) -> Execution:
        """One execution."""
        result: Execution = self._parse(self._request("GET", _execution_path(execution_id)), Execution)
        return result

    def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        name: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        framework: str | None = None,
        q: str | None = None,
        summary: bool = False,
    ) -> ExecutionPage:
        """Executions newest first, filtered, one page at a time (see :meth:`Client.list_executions`)."""
        params: dict[str, Any] = {"limit": limit}
        if summary:
            params["summary"] = "true"
        for key, value in (
            ("status", status),
            ("name", name),
            ("created_after", created_after),
            ("created_before", created_before),
            ("cursor", cursor),
            ("framework", framework),
            ("q", q),
        ):
            if value is not None:
                params[key] = value.isoformat() if isinstance(value, datetime) else str(value)
        result: ExecutionPage = self._parse(self._request("GET", "/executions", params=params), ExecutionPage)
        return result

    def cancel_execution(self, execution_id: str) -> Execution:
        """Cancel an unfinished execution."""
        response = self._request("POST", _execution_path(execution_id) + "/cancel")
        result: Execution = self._parse(response, Execution)
        return result

    def fork_execution(self, execution_id: str, step: str, *, idempotency_key: str | None = None) -> Execution:
        """Queue a new execution that replays this one's journal up to step ``step`` and runs fresh
        from it; the same idempotency key returns the same fork."""
        body: dict[str, Any] = {"step": step}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        # Without a key, a repeat after a broken connection could fork twice.
        response = self._request(
            "POST", _execution_path(execution_id) + "/fork", content=_encode(body, "a fork"),
            idempotent=idempotency_key is not None,
        )  # fmt: skip
        result: Execution = self._parse(response, Execution)
        return result

    def delete_execution(self, execution_id: str) -> None:
        """Delete a non-running execution with its journal and events."""
        self._request("DELETE", _execution_path(execution_id))

    # journal and workers -------------------------------------------------------------------------------
    def get_journal(self, execution_id: str, *, include_superseded: bool = False) -> list[Step]:
        """The journal in order."""
        params = {"include_superseded": "true"} if include_superseded else None
        response = self._request("GET", _execution_path(execution_id) + "/journal", params=params)
        result: list[Step] = self._parse(response, _STEPS)
        return result

    def write_records(self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record]) -> WriteResult:
        """Write a batch of records atomically under the lease ``epoch`` (the per-step request)."""
        body = {"worker_id": worker_id, "epoch": epoch, "records": [r.model_dump() for r in records]}
        path = f"{_execution_path(execution_id)}/records"
        content = _encode(body, "a step's input or output")

        def send() -> _Reply:
            status, data, retry_after = self._wire.exchange(path, content)
            return _Reply(status, data, http.client.responses.get(status, ""), retry_after, None)

        # Safe to repeat: records carry the lease epoch, and a record the server already has is
        # acknowledged again without being applied twice.
        reply = self._exchange("POST", self.base_url + path, send, idempotent=True)
        try:
            return WriteResult.model_validate_json(reply.content)
        except ValidationError as exc:
            raise TransportError(f"unexpected answer from {self.base_url}{path} ({reply.status}): {exc}") from None

    def claim(
        self, worker_id: str, names: Sequence[str], *, wait_seconds: float = 0.0, lease_seconds: float = 30.0
    ) -> Claim | None:
        """Lease the next execution among ``names``, long-polling up to ``wait_seconds``."""
        body = {
            "worker_id": worker_id,
            "names": list(names),
            "wait_seconds": wait_seconds,
            "lease_seconds": lease_seconds,
        }
        wait = wait_seconds if 0 < wait_seconds <= _MAX_WAIT else 0.0
        response = self._request("POST", "/claims", content=_encode(body, "a claim"), wait=wait)
        if response.status_code == 204:
            return None
        result: Claim = self._parse(response, Claim)
        return result

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, *, lease_seconds: float = 30.0) -> Heartbeat:
        """Renew a lease."""
        body = {"worker_id": worker_id, "epoch": epoch, "lease_seconds": lease_seconds}
        response = self._request(
            "POST", _execution_path(execution_id) + "/heartbeat", content=_encode(body, "a heartbeat")
        )
        result: Heartbeat = self._parse(response, Heartbeat)
        return result

    # signals and events --------------------------------------------------------------------------------
    def send_signal(self, execution_id: str, name: str, payload: Any = None) -> Execution:
        """Deliver a signal (an approval, a reply) to an execution."""
        path = f"{_execution_path(execution_id)}/signals/{_segment(name)}"
        response = self._request("POST", path, content=_encode({"payload": payload}, "signal payload"))
        result: Execution = self._parse(response, Execution)
        return result

    def raise_budget(self, execution_id: str, *, tokens: int | None = None, cost_usd: float | None = None) -> Execution:
        """Raise the budget of an execution waiting on it (``ConflictError`` if it is not)."""
        body = {k: v for k, v in (("tokens", tokens), ("cost_usd", cost_usd)) if v is not None}
        response = self._request(
            "POST", _execution_path(execution_id) + "/budget", content=_encode(body, "budget raise")
        )
        result: Execution = self._parse(response, Execution)
        return result

    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events after an event id."""
        params = {"after": after, "limit": limit}
        response = self._request("GET", _execution_path(execution_id) + "/events", params=params)
        result: list[Event] = self._parse(response, _EVENTS)
        return result

    def wait_events(self, execution_id: str, *, after: int = 0, timeout: float = 30.0) -> list[Event]:
        """Events after an event id, waiting up to ``timeout`` seconds (at most 300) for the first one."""
        wait = min(max(timeout, 0.0), _MAX_WAIT)
        params = {"after": after, "wait": wait}
        response = self._request("GET", _execution_path(execution_id) + "/events", params=params, wait=wait)
        result: list[Event] = self._parse(response, _EVENTS)
        return result

    # the approvals inbox -------------------------------------------------------------------------------
    def list_approvals(
        self,
        *,
        execution_id: str | None = None,
        agent: str | None = None,
        framework: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InboxPage:
        """The waits for a person not yet decided, across executions, oldest first."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("execution", execution_id), ("agent", agent), ("framework", framework), ("cursor", cursor)):
            if value is not None:
                params[key] = value
        result: InboxPage = self._parse(self._request("GET", "/approvals", params=params), InboxPage)
        return result

    def get_approval(self, approval_id: str) -> InboxItem:
        """One wait of the approvals inbox by its id, pending or decided."""
        result: InboxItem = self._parse(self._request("GET", _approval_path(approval_id)), InboxItem)
        return result

    def decide_approval(self, approval_id: str, decision: InboxDecision | dict[str, Any]) -> InboxItem:
        """Approve, reject or answer a wait of the approvals inbox; returns it decided.

        A repeat of the same decision is harmless (it returns the item), so the request is retried
        like a read when the connection breaks."""
        if not isinstance(decision, InboxDecision):
            decision = validate(InboxDecision, decision)
        check_decision(decision)
        body: dict[str, Any]
        if decision.action == "approve":
            body = {} if decision.arguments is None else {"arguments": decision.arguments}
        elif decision.action == "reject":
            body = {} if decision.reason is None else {"reason": decision.reason}
        else:
            body = {"value": decision.value}
        path = f"{_approval_path(approval_id)}/{decision.action}"
        response = self._request("POST", path, content=_encode(body, "a decision"))
        result: InboxItem = self._parse(response, InboxItem)
        return result

    # definitions ---------------------------------------------------------------------------------------
    def put_definition(self, name: str, spec: dict[str, Any] | None = None, *, kind: str = "function") -> Definition:
        """Register a definition by name."""
        content = _encode({"kind": kind, "spec": spec}, "definition spec")
        response = self._request("PUT", f"/definitions/{_segment(name)}", content=content)
        result: Definition = self._parse(response, Definition)
        return result

    def get_definition(self, name: str) -> Definition:
        """One definition."""
        result: Definition = self._parse(self._request("GET", f"/definitions/{_segment(name)}"), Definition)
        return result

    def list_definitions(self) -> list[Definition]:
        """All definitions."""
        result: list[Definition] = self._parse(self._request("GET", "/definitions"), _DEFINITIONS)
        return result

    def delete_definition(self, name: str) -> None:
        """Remove a definition."""
        self._request("DELETE", f"/definitions/{_segment(name)}")

    def agent_status(self, name: str) -> AgentStatus:
        """Whether ``name`` is deployed and how many workers serve it."""
        result: AgentStatus = self._parse(self._request("GET", f"/agents/{_segment(name)}"), AgentStatus)
        return result


def _error_from(response: httpx.Response) -> AgentspanError:
    """The error an error answer stands for: by its ``type``, else by its status code."""
    return _error_from_parts(response.status_code, response.content, response.reason_phrase)


def _error_from_parts(status: int, content: bytes, reason: str) -> AgentspanError:
    error: dict[str, Any] = {}
    try:
        body = json.loads(content)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
    except ValueError:
        pass
    message = str(error.get("message") or content[:500].decode(errors="replace") or reason)
    execution_id = error.get("execution_id")
    execution_id = execution_id if isinstance(execution_id, str) else None
    if status in _RETRY_STATUSES:
        return TransportError(f"the server is unavailable ({status}): {message}", execution_id=execution_id)
    if status >= 500:
        return TransportError(f"the server failed ({status}): {message}", execution_id=execution_id)
    cls = _ERRORS.get(str(error.get("type"))) or _ERRORS_BY_STATUS.get(status, InvalidInputError)
    if cls is LeaseLostError:
        epoch = error.get("epoch")
        return LeaseLostError(message, execution_id=execution_id, epoch=epoch if isinstance(epoch, int) else None)
    return cls(message, execution_id=execution_id)
