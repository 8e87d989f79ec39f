"""Helpers for testing code that uses Agentspan: real components on loopback, no mocks."""

from ..runtime.server._thread import ServerHandle, serve_in_thread
from ._fake_openai import FakeOpenAIServer
from ._scripted import ScriptedModel

__all__ = ["FakeOpenAIServer", "ScriptedModel", "ServerHandle", "serve_in_thread"]
