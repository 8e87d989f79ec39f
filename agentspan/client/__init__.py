"""Clients of the runtime: one interface, two transports (in-process and HTTP)."""

from ._base import Client

__all__ = ["Client"]
