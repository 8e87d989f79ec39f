"""A fake OpenAI-compatible (and Gemini) server: a real HTTP server on loopback that answers from a script."""

from __future__ import annotations

import json
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from ..agents._types import ModelResponse
from . import _gemini_wire as gemini
from ._scripted import ScriptedReply, research_script, scripted_responses, with_usage

__all__ = ["FakeOpenAIServer", "ScriptedError"]


@dataclass(frozen=True)
class ScriptedError:
    """An error answer in a :class:`FakeOpenAIServer` script; build it with :meth:`FakeOpenAIServer.error`."""

    status: int
    """The HTTP status."""
    message: str
    """Sent as ``{"error": {"message": ...}}``, as OpenAI does."""
    retry_after: float | None = None
    """Sent as the ``Retry-After`` header (seconds) when set."""


@dataclass
class _Turn:
    errors: list[ScriptedError]
    """Answered once each, in order, before the reply (a retrying client then gets the reply)."""
    reply: ModelResponse | None
    """``None`` for errors scripted after the last reply."""


class FakeOpenAIServer:
    """An OpenAI-compatible ``POST /v1/chat/completions`` on a free loopback port, answering from a script.

    A real HTTP/1.1 server (keep-alive, one thread per connection), so it serves clients in other
    processes too: start it in the test, give :attr:`base_url` to a worker subprocess
    (``OPENAI_BASE_URL``), kill and restart the worker, and assert on what the server saw.

    **Replies are chosen by turn.** The reply to a request is the script entry whose index is the number
    of assistant messages already in the request's ``messages``. A worker that resumes a crashed run
    replays its recorded model calls without asking the server, then asks for turn 19, and gets turn
    19's reply however many requests the server has answered. With ``by_turn=False`` replies are
    given in order instead (the n-th successful answer is entry n).

    Script entries take the forms :class:`~agentspan.testing.ScriptedModel` takes (a ``str`` final
    answer, a list of ``(tool_name, arguments)`` pairs, a :class:`ModelResponse`) plus
    :meth:`error` entries. Errors do not count as turns: each is answered once, to the first
    request(s) for the turn of the reply that follows it, so ``[error(429, "slow down"), "hi"]`` makes
    the first request fail with 429 and its retry get ``"hi"``. A request for a turn past the script
    gets a 400 that says so. Usage the script does not set is estimated (four characters a token).

    **Several conversations at once** (agents of one crew, a manager and its coworkers, tasks run in
    parallel) each get their own script with ``routes``: ``{text: script}``. A request is answered
    from the first route whose ``text`` occurs in its opening (the messages before the first
    assistant message: the system prompt and the task), its turn counted in that conversation;
    a request no route matches is answered from ``script``. With routes, ``by_turn`` must be true.

    ``stream: true`` is answered with Chat Completions SSE chunks (text word by word, tool-call
    arguments in two fragments, usage last when ``stream_options.include_usage`` is set).

    **It speaks Gemini too.** ``POST /v1beta/models/{model}:generateContent`` and
    ``:streamGenerateContent?alt=sse`` answer from the same script in Gemini's format, so google-genai
    and Google ADK's default Gemini model run against it: give them :attr:`gemini_base_url` (the server
    root, without ``/v1``; the client appends ``/v1beta/models/...``) as ``GOOGLE_GEMINI_BASE_URL`` or
    ``HttpOptions(base_url=...)``, with any API key. The turn is the number of ``model`` contents in the
    request; tool calls become ``functionCall`` parts carrying the script's ids (``call_1``...); streams
    send the text in a few chunks, each function call whole, and ``finishReason`` and usage on the last
    chunk. Scripted errors get Gemini error bodies (``{"error": {"code", "message", "status"}}``, 429 is
    ``RESOURCE_EXHAUSTED``, with ``Retry-After`` when set). A Gemini request is recorded in
    :attr:`requests` as its JSON body plus ``model`` (from the path), ``stream`` and ``messages`` (its
    ``systemInstruction`` and ``contents`` in Chat Completions form), so the same assertions count turns
    for both protocols.

    Usage::

        with FakeOpenAIServer(FakeOpenAIServer.research_script(3, "search")) as fake:
            model = OpenAIModel("gpt-4o-mini", base_url=fake.base_url)
            ...
            assert fake.request_count == 4

        with FakeOpenAIServer([[("get_weather", {"city": "Paris"})], "Sunny."]) as fake:
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
            monkeypatch.setenv("GOOGLE_API_KEY", "test")
            ...  # run an ADK LlmAgent(model="gemini-2.5-flash", tools=[get_weather])

    Args:
        script: The replies and scripted errors.
        by_turn: Choose replies by the conversation's turn (default) rather than in order.
        port: The loopback port to listen on (default 0: a free one).
        routes: ``{text: script}``: requests whose opening contains ``text`` are answered from that
            script (see above).
    """

    research_script = staticmethod(research_script)

    def __init__(
        self,
        script: Iterable[ScriptedReply | ScriptedError] = (),
        *,
        by_turn: bool = True,
        port: int = 0,
        routes: Mapping[str, Iterable[ScriptedReply | ScriptedError]] | None = None,
    ) -> None:
        if routes and not by_turn:
            raise ValueError("FakeOpenAIServer: routes choose replies by turn; they cannot be used with by_turn=False")
        self.by_turn = by_turn
        self._port = port
        # Tool-call ids are numbered across the script and the routes, so they are unique in the server.
        self._turns, numbered = _turns(script, 1)
        self._routes: dict[str, list[_Turn]] = {}
        for text, route in (routes or {}).items():
            self._routes[str(text)], numbered = _turns(route, numbered)
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._errors_served: dict[tuple[str | None, int], int] = {}
        self._replies_served = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def error(status: int, message: str, retry_after: float | None = None) -> ScriptedError:
        """A script entry answered with HTTP ``status`` and an OpenAI error body carrying ``message``."""
        return ScriptedError(status, message, retry_after)

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        """Listen on the loopback port (a free one by default) and serve in a daemon thread (idempotent)."""
        if self._server is None:
            server = _Server(("127.0.0.1", self._port), _Handler)
            server.fake = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-openai-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, cut open connections and wait for their threads (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
        server.close_connections(timeout)
        server.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no client connection is open: every request already sent (by a process just
        killed, say) has been counted and answered or dropped. ``TimeoutError`` after ``timeout`` s."""
        server = self._server
        if server is not None and not server.wait_idle(timeout):
            raise TimeoutError(f"the fake model server still had open connections after {timeout} s")

    # --- what tests read ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        if self._server is None:
            raise RuntimeError("the FakeOpenAIServer is not started: use it as a context manager or call start()")
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """The API root to give a client, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def gemini_base_url(self) -> str:
        """The server root to give google-genai, ``http://127.0.0.1:PORT`` (``GOOGLE_GEMINI_BASE_URL`` or
        ``HttpOptions(base_url=...)``): the client itself appends ``/v1beta/models/...``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_count(self) -> int:
        """How many model requests arrived, of either protocol (retries and scripted errors included)."""
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the model requests received, in arrival order (a copy); Gemini ones with
        ``model``, ``stream`` and ``messages`` added (see the class docstring)."""
        with self._lock:
            return list(self._requests)

    # --- answering ----------------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any]) -> tuple[ScriptedError | ModelResponse, int]:
        """The answer to ``body``, and how many replies (not errors) have been answered with it."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return ScriptedError(400, "'messages' must be a list"), 0
        route = _route(self._routes, messages)
        turns = self._turns if route is None else self._routes[route]
        named = "" if route is None else f" of route {route!r}"
        with self._lock:
            self._requests.append(body)
            if self.by_turn:
                turn = sum(
                    1 for message in messages if isinstance(message, dict) and message.get("role") == "assistant"
                )
            else:
                turn = self._replies_served
            if route is None and self._routes and not turns:
                opening = json.dumps(messages[:2])[:300]
                return ScriptedError(
                    400, f"FakeOpenAIServer: the request matches none of the routes {list(self._routes)}: {opening}"
                ), 0
            if turn >= len(turns):
                return ScriptedError(
                    400,
                    f"FakeOpenAIServer has no scripted reply for turn {turn} (the script{named} has {len(turns)}"
                    " turns)",
                ), 0
            entry = turns[turn]
            served = self._errors_served.get((route, turn), 0)
            if served < len(entry.errors):
                self._errors_served[(route, turn)] = served + 1
                return entry.errors[served], 0
            if entry.reply is None:
                return ScriptedError(
                    400, f"FakeOpenAIServer has no scripted reply for turn {turn}{named} after its scripted errors"
                ), 0
            self._replies_served += 1
            number = self._replies_served
        prompt = "".join(_content_text(message.get("content")) for message in messages if isinstance(message, dict))
        return with_usage(entry.reply, prompt, str(body.get("model") or "fake")), number


def _turns(script: Iterable[ScriptedReply | ScriptedError], first_id: int) -> tuple[list[_Turn], int]:
    """The script's turns, and the number of the next tool-call id after its own."""
    entries = list(script)
    responses = scripted_responses(
        [entry for entry in entries if not isinstance(entry, ScriptedError)], first_id=first_id
    )
    replies = iter(responses)
    turns: list[_Turn] = []
    errors: list[ScriptedError] = []
    for entry in entries:
        if isinstance(entry, ScriptedError):
            errors.append(entry)
        else:
            turns.append(_Turn(errors, next(replies)))
            errors = []
    if errors:
        turns.append(_Turn(errors, None))
    return turns, first_id + sum(len(response.message.tool_calls) for response in responses)


def _route(routes: Mapping[str, list[_Turn]], messages: list[Any]) -> str | None:
    """The first route whose text occurs in the conversation's opening (before its first assistant message)."""
    if not routes:
        return None
    opening = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            break
        opening.append(_content_text(message.get("content")))
    text = "\n".join(opening)
    return next((route for route in routes if route in text), None)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --- wire format ----------------------------------------------------------------------------------------
def _completion(response: ModelResponse, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.message.content}
    if response.message.tool_calls:
        message["tool_calls"] = [_tool_call(call.id, call.name, call.arguments) for call in response.message.tool_calls]
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": response.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": response.finish_reason}],
        "usage": response.usage.model_dump(),
    }


def _chunks(response: ModelResponse, number: int, include_usage: bool) -> Iterator[dict[str, Any]]:
    head = {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": response.model,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in re.findall(r"\s*\S+\s*", response.message.content or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(response.message.tool_calls):
        opening = _tool_call(call.id, call.name, "")
        yield chunk({"tool_calls": [{"index": index, **opening}]})
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    yield chunk({}, response.finish_reason)
    if include_usage:
        yield {**head, "choices": [], "usage": response.usage.model_dump()}


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- HTTP -----------------------------------------------------------------------------------------------
_ROUTES = (
    "FakeOpenAIServer serves POST /v1/chat/completions and POST /v1beta/models/{model}:generateContent "
    "or :streamGenerateContent?alt=sse (give google-genai gemini_base_url, without /v1)"
)


class _Server(ThreadingHTTPServer):
    # Handler threads are daemons so an unstopped server never blocks interpreter exit; stop() cuts
    # their connections and joins them itself.
    daemon_threads = True
    fake: FakeOpenAIServer

    def __init__(self, address: tuple[str, int], handler: Callable[..., BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open_lock = threading.Lock()
        self._closed = threading.Condition(self._open_lock)
        self._open: dict[socket.socket, threading.Thread] = {}

    def get_request(self) -> tuple[socket.socket, Any]:
        # Accepted under the lock and counted as open at once, so that wait_idle, which checks under the
        # same lock for open connections and then for ones waiting to be accepted, never misses one.
        with self._open_lock:
            request, address = super().get_request()
            self._open[request] = threading.current_thread()
        return request, address

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open[connection] = threading.current_thread()
            else:
                self._open.pop(connection, None)
                self._closed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is open or waiting to be accepted."""
        deadline = time.monotonic() + timeout
        with self._closed:
            while True:
                left = deadline - time.monotonic()
                if not self._closed.wait_for(lambda: not self._open, max(left, 0.0)):
                    return False
                # A connection not yet accepted (the accept loop polls) is pending on the listening socket.
                if not select.select([self.socket], [], [], 0)[0]:
                    return True
                if left <= 0:
                    return False
                self._closed.wait(0.01)  # released while the accept loop takes it; woken when it closes

    def close_connections(self, timeout: float) -> None:
        with self._open_lock:
            open_connections = dict(self._open)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in open_connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a killed worker) is expected here, not a failure to report.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold each answer back by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send_error(ScriptedError(404, f"{_ROUTES}, not GET {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if (route := gemini.route(self.path)) is not None:
            self._post_gemini(route, raw)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_error(ScriptedError(404, f"{_ROUTES}, not {self.path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_error(ScriptedError(400, "the request body is not JSON"))
            return
        if not isinstance(body, dict):
            self._send_error(ScriptedError(400, "the request body is not a JSON object"))
            return
        answer, number = self.server.fake._answer(body)
        if isinstance(answer, ScriptedError):
            self._send_error(answer)
            return
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
            self._send_stream(_chunks(answer, number, include_usage))
        else:
            self._send_json(200, _completion(answer, number))

    def _post_gemini(self, route: gemini.GeminiRoute, raw: bytes) -> None:
        try:
            body = gemini.chat_request(json.loads(raw), route)
        except ValueError as exc:
            self._send_gemini_error(ScriptedError(400, f"not a Gemini generateContent request: {exc}"))
            return
        if route.stream and not route.sse:
            self._send_gemini_error(ScriptedError(400, "FakeOpenAIServer streams Gemini answers only with ?alt=sse"))
            return
        answer, number = self.server.fake._answer(body)
        if isinstance(answer, ScriptedError):
            self._send_gemini_error(answer)
            return
        try:
            chunks = (
                list(gemini.response_chunks(answer, number)) if route.stream else [gemini.response_body(answer, number)]
            )
        except ValueError as exc:
            self._send_gemini_error(ScriptedError(500, str(exc)))
            return
        if route.stream:
            self._send_stream(iter(chunks), done=False)  # Gemini's SSE has no [DONE] sentinel
        else:
            self._send_json(200, chunks[0])

    def _send_gemini_error(self, error: ScriptedError) -> None:
        headers = {} if error.retry_after is None else {"Retry-After": f"{error.retry_after:g}"}
        self._send_json(error.status, gemini.error_body(error.status, error.message), headers)

    def _send_error(self, error: ScriptedError) -> None:
        kind = (
            "rate_limit_error"
            if error.status == 429
            else "server_error"
            if error.status >= 500
            else "invalid_request_error"
        )
        headers = {} if error.retry_after is None else {"Retry-After": f"{error.retry_after:g}"}
        self._send_json(error.status, {"error": {"message": error.message, "type": kind, "code": None}}, headers)

    def _send_json(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: Iterator[dict[str, Any]], done: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + (["data: [DONE]\n\n"] if done else [])
        for event in events:
            data = event.encode()
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
