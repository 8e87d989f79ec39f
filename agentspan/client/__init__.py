"""Clients of the runtime: one interface, two transports (in-process and HTTP)."""

from ._base import Client
from ._http import HttpClient
from ._retry import RetryPolicy

__all__ = ["Client", "HttpClient", "RetryPolicy"]
