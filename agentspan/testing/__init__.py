"""Helpers for testing code that uses Agentspan: real components on loopback, no mocks."""

from ._server import ServerHandle, serve_in_thread

__all__ = ["ServerHandle", "serve_in_thread"]
