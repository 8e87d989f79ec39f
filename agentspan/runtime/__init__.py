"""The runtime: the service over a store, its value objects, and (in ``.server``) the HTTP API."""

from ._budget import Budget, Price
from ._inbox import InboxDecision, InboxItem, InboxPage, InboxStatus, InboxType
from ._models import (
    Claim,
    Definition,
    DivergenceRecord,
    ErrorInfo,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    ExecutionSummary,
    FinishRecord,
    ForkOrigin,
    Heartbeat,
    Record,
    Step,
    StepRecord,
    StepStatus,
    WaitInfo,
    WriteResult,
)
from ._service import Service
from ._serving import AgentStatus
from .store import SQLiteStore, Store

__all__ = [
    "AgentStatus",
    "Budget",
    "Claim",
    "Definition",
    "DivergenceRecord",
    "ErrorInfo",
    "Event",
    "Execution",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionSummary",
    "FinishRecord",
    "ForkOrigin",
    "Heartbeat",
    "InboxDecision",
    "InboxItem",
    "InboxPage",
    "InboxStatus",
    "InboxType",
    "Price",
    "Record",
    "SQLiteStore",
    "Service",
    "Step",
    "StepRecord",
    "StepStatus",
    "Store",
    "WaitInfo",
    "WriteResult",
]
