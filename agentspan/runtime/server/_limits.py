"""A cap on request body size, enforced before a handler sees the body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import InvalidInputError, PayloadTooLargeError
from ._errors import error_response

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """ASGI middleware refusing bodies over ``max_bytes`` with 413.

    A declared ``Content-Length`` over the limit is refused before reading anything; a chunked body
    is counted as it arrives and refused the moment it passes the limit. Either way the handler never
    gets a body, so nothing is stored. (Recent FastAPI releases have a ``max_body_size`` of their own;
    the versions this package supports do not, and it answers in plain text rather than our errors.)

    Args:
        app: The application to protect.
        max_bytes: The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(InvalidInputError("the Content-Length header is not a number"))(
                        scope, receive, send
                    )
                    return
                if declared > self.max_bytes:
                    await error_response(self._too_large(declared))(scope, receive, send)
                    return
                break
        await self.app(scope, self._counting(receive), send)

    def _too_large(self, size: int | None) -> PayloadTooLargeError:
        amount = "" if size is None else f" {size} bytes,"
        return PayloadTooLargeError(
            f"the request body is{amount} over the limit of {self.max_bytes} bytes;"
            " store large data elsewhere and pass a reference"
        )

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large(None)
            return message

        return counted
