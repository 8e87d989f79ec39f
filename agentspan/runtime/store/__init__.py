"""Stores: one interface, one implementation per database, one contract test suite."""

from ._base import Store
from ._sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store"]
