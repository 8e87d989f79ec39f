"""What every HTTP model provider shares: one connection pool, retries with backoff, errors, SSE.

Retry rule (the one the official OpenAI and Anthropic clients follow): 429, 500, 502, 503, 504, 529,
timeouts and connection errors are retried up to ``max_retries`` times, waiting what ``Retry-After``
says (capped at 60 s) or else an exponential backoff with jitter; every other status fails at once
with the provider's own message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

import httpx

from ...errors import ConfigurationError
from ._errors import (
    ModelAuthError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
)

__all__ = ["HttpTransport", "backoff_seconds", "excerpt", "host_of", "retry_after_seconds"]

logger = logging.getLogger("agentspan.models")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
"""Statuses that say "not now" rather than "not this request" (529 is Anthropic's "overloaded")."""
_MAX_RETRY_AFTER = 60.0
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0
_QUOTE_CHARS = 500
"""How much of a body that is not the provider's error JSON an error message quotes."""


def _sleep(seconds: float) -> None:
    # Looked up at call time, so tests replace it (``monkeypatch.setattr(_http, "_sleep", ...)``)
    # and see the waits instead of waiting.
    time.sleep(seconds)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the provider asked to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as an
    HTTP date; capped at 60 s. ``None`` when it asked nothing (or nothing readable)."""
    seconds: float | None = None
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            seconds = None
    if seconds is None and (value := headers.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are always GMT
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def backoff_seconds(retry: int) -> float:
    """The wait before retry number ``retry`` (0-based) when the provider said nothing: 0.5 s doubling
    up to 8 s, shortened by up to a quarter at random so that many clients do not retry in step."""
    return min(_BACKOFF_MAX, _BACKOFF_BASE * 2.0**retry) * (1 - 0.25 * random.random())


class HttpTransport:
    """One provider's connection pool with the retry rule and error mapping of this module.

    Args:
        provider: The provider prefix, for messages (``openai``).
        model: The model name, for messages.
        base_url: The API root requests are relative to.
        headers: Sent with every request (authentication, API version).
        timeout: Seconds allowed for each attempt (connect, read, write, pool each).
        max_retries: Retries after the first attempt for retryable failures.
        key_hint: What to set when the provider refuses the credentials (``set OPENAI_API_KEY``).
        missing_key: When set, every call raises :class:`ConfigurationError` with this message before
            sending anything (the official endpoint needs a key and none is configured).
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        max_retries: int,
        key_hint: str,
        missing_key: str | None = None,
    ) -> None:
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be 0 or more, not {max_retries}")
        try:
            httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"{provider}/{model}: invalid base URL {base_url!r}: {exc}") from exc
        self.label = f"{provider}/{model}"
        self.provider = provider
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self._timeout = timeout
        self._key_hint = key_hint
        self._missing_key = missing_key
        self._client = httpx.Client(headers=dict(headers), timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` and return the JSON object answered, retrying as the module says."""
        response = self._send(path, body, stream=False)
        try:
            data = response.json()
        except ValueError:
            self.malformed(f"the response is not JSON: {_quote(response.text)}")
        if not isinstance(data, dict):
            self.malformed(f"the response is not a JSON object: {_quote(response.text)}")
        return data

    def post_sse(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, str]]:
        """POST ``body`` and yield the server-sent events answered, as ``(event, data)`` pairs.

        Opening the stream is retried like :meth:`post_json`; a stream that breaks once events have
        arrived is not (its text may already be shown) and raises :class:`ModelServerError`.
        """
        response = self._send(path, body, stream=True)
        try:
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                text = response.read().decode("utf-8", "replace")
                self.malformed(f"expected an event stream, got {content_type or 'no content type'}: {_quote(text)}")
            yield from _iter_sse(response)
        except httpx.HTTPError as exc:
            raise ModelServerError(
                f"{self.label}: the response stream broke: {_describe(exc)}", provider=self.provider, model=self.model
            ) from exc
        finally:
            response.close()

    def malformed(self, what: str) -> NoReturn:
        """Raise :class:`ModelResponseError` saying ``what`` is wrong with the provider's answer."""
        raise ModelResponseError(f"{self.label}: {what}", provider=self.provider, model=self.model)

    def _send(self, path: str, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        if self._missing_key is not None:
            raise ConfigurationError(self._missing_key)
        url = f"{self.base_url}{path}"
        retry = 0
        while True:
            delay: float | None = None
            cause: Exception | None = None
            try:
                response = self._client.send(self._client.build_request("POST", url, json=body), stream=stream)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                cause = exc
                failure: ModelError = ModelServerError(
                    f"{self.label}: {_describe(exc)} ({url})", provider=self.provider, model=self.model
                )
            except httpx.HTTPError as exc:  # a proxy or protocol problem no retry can fix
                raise ModelRequestError(
                    f"{self.label}: {_describe(exc)} ({url})", provider=self.provider, model=self.model
                ) from exc
            else:
                if response.is_success:
                    return response
                if stream:
                    response.read()
                    response.close()
                failure = self._status_error(response)
                if response.status_code not in RETRY_STATUSES:
                    raise failure
                delay = retry_after_seconds(response.headers)
            if retry >= self.max_retries:
                if self.max_retries:
                    failure = type(failure)(
                        f"{failure.message} (gave up after {self.max_retries} retries)",
                        provider=self.provider,
                        model=self.model,
                        status=failure.status,
                    )
                raise failure from cause
            if delay is None:
                delay = backoff_seconds(retry)
            retry += 1
            logger.warning(
                "%s: %s; retry %d of %d in %.1f s", self.label, failure.message, retry, self.max_retries, delay
            )
            _sleep(delay)

    def _status_error(self, response: httpx.Response) -> ModelError:
        status = response.status_code
        reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)
        message = f"{self.label}: {status} {reason}".rstrip()
        if detail := _provider_message(response):
            message = f"{message}: {detail}"
        cls: type[ModelError]
        if status in (401, 403):
            cls, message = ModelAuthError, f"{message} ({self._key_hint})"
        elif status == 404:
            cls, message = ModelRequestError, f"{message} (check the model name and the base URL {self.base_url})"
        elif status == 429:
            cls = ModelRateLimitError
        elif status >= 500:
            cls = ModelServerError
        else:
            cls = ModelRequestError
        return cls(message, provider=self.provider, model=self.model, status=status)


def _provider_message(response: httpx.Response) -> str:
    """The error message in the body: ``{"error": {"message": ...}}`` (OpenAI, Anthropic and most
    compatible servers), ``{"error": "..."}``, ``{"message": ...}`` or ``{"detail": ...}``; else the text."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _quote(text) if text else ""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for field in ("message", "detail"):
                if isinstance(value := error.get(field), str) and value:
                    return value
    return _quote(text)


def _iter_sse(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """Server-sent events as ``(event, data)``; ``event`` is ``"message"`` when the server named none."""
    event = ""
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    if data:
        yield event or "message", "\n".join(data)


def _describe(exc: httpx.HTTPError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection error"
    detail = str(exc) or type(exc).__name__
    return f"{kind}: {detail}"


def _quote(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "...")


def provider_transport(
    *,
    provider: str,
    model: str,
    base_url: str | None,
    api_key: str | None,
    default_url: str,
    url_env: str,
    key_env: str,
    auth: Callable[[str], dict[str, str]],
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_retries: int,
    no_key_hint: str = "",
) -> HttpTransport:
    """The transport of a provider's model: the base URL and key from the arguments, else from
    ``url_env`` / ``key_env``, else the official endpoint, which then refuses to call without a key
    (the error says which variable to set, and ``no_key_hint`` what else would do)."""
    url = base_url or os.environ.get(url_env) or default_url
    key = api_key or os.environ.get(key_env) or None
    missing_key = None
    if key is None and host_of(url) == host_of(default_url):
        missing_key = f"{provider}/{model}: no API key for {url}: set {key_env} (or pass api_key=...){no_key_hint}"
    return HttpTransport(
        provider=provider,
        model=model,
        base_url=url,
        headers={**(headers or {}), **(auth(key) if key else {})},
        timeout=timeout,
        max_retries=max_retries,
        key_hint=f"set {key_env}",
        missing_key=missing_key,
    )


def host_of(url: str) -> str:
    """The host of ``url`` (``""`` when it is not a URL)."""
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:
        return ""


def excerpt(value: Any) -> str:
    """``value`` as JSON text, cut to a length an error message can quote."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "..."
