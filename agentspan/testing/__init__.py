"""Helpers for testing code that uses Agentspan: real components on loopback, no mocks."""

from ..runtime.server._thread import ServerHandle, serve_in_thread

__all__ = ["ServerHandle", "serve_in_thread"]
