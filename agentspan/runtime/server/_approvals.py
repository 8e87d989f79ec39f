"""The approvals inbox over HTTP: ``/api/approvals``, every wait for a person, decided one way.

``GET /api/approvals`` lists the pending waits across executions (filter by execution, agent,
framework); ``POST /api/approvals/{id}/approve | reject | respond`` decides one. Each handler makes
one :class:`~agentspan.runtime.Service` call in a thread, like the other routes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from .._inbox import InboxDecision, InboxItem, InboxPage
from .._service import Service
from ._bodies import ApproveBody, BodyReader, RejectBody, RespondBody, body_doc

__all__ = ["approvals_router"]

approvals_router = APIRouter()

_APPROVE = BodyReader(ApproveBody, optional=True)
_REJECT = BodyReader(RejectBody, optional=True)
_RESPOND = BodyReader(RespondBody)
_JSON = "application/json"
_ID = Annotated[str, Path(description="The inbox id (12 characters)")]
_Framework = Literal["native", "openai_agents", "langgraph", "crewai", "google_adk"]


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _item(item: InboxItem) -> Response:
    return Response(item.model_dump_json(), media_type=_JSON)


@approvals_router.get("/approvals", response_model=InboxPage, tags=["approvals"])
async def list_approvals(
    request: Request,
    execution: Annotated[str | None, Query(min_length=1, max_length=200, description="Only this execution's")] = None,
    agent: Annotated[str | None, Query(min_length=1, max_length=200, description="Only this agent's")] = None,
    framework: Annotated[_Framework | None, Query(description="Only this framework's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="The previous page's next_cursor")
    ] = None,
) -> Response:
    """The waits for a person not yet decided, across executions and frameworks, oldest first."""
    page = await asyncio.to_thread(
        _service(request).list_approvals, execution_id=execution, agent=agent, framework=framework,
        limit=limit, cursor=cursor,
    )  # fmt: skip
    return Response(page.model_dump_json(), media_type=_JSON)


@approvals_router.get("/approvals/{approval_id}", response_model=InboxItem, tags=["approvals"])
async def get_approval(approval_id: _ID, request: Request) -> Response:
    """One wait, pending or decided."""
    return _item(await asyncio.to_thread(_service(request).get_approval, approval_id))


async def _decide(request: Request, approval_id: str, decision: InboxDecision) -> Response:
    return _item(await asyncio.to_thread(_service(request).decide_approval, approval_id, decision))


@approvals_router.post(
    "/approvals/{approval_id}/approve",
    response_model=InboxItem,
    openapi_extra=body_doc(ApproveBody, required=False),
    tags=["approvals"],
)
async def approve(approval_id: _ID, request: Request) -> Response:
    """Approve: the tool call runs (with ``arguments``, the edited call), the draft is accepted, the
    interrupt gets ``{"approved": true}``. 409 if it was decided otherwise."""
    body = await _APPROVE.read(request)
    return await _decide(request, approval_id, InboxDecision(action="approve", arguments=body.arguments))


@approvals_router.post(
    "/approvals/{approval_id}/reject",
    response_model=InboxItem,
    openapi_extra=body_doc(RejectBody, required=False),
    tags=["approvals"],
)
async def reject(approval_id: _ID, request: Request) -> Response:
    """Reject with a ``reason``: the model sees it as the tool's result; human input gets it as
    feedback. 409 if it was decided otherwise."""
    body = await _REJECT.read(request)
    return await _decide(request, approval_id, InboxDecision(action="reject", reason=body.reason))


@approvals_router.post(
    "/approvals/{approval_id}/respond",
    response_model=InboxItem,
    openapi_extra=body_doc(RespondBody),
    tags=["approvals"],
)
async def respond(approval_id: _ID, request: Request) -> Response:
    """Answer with a ``value``: feedback text for human input, any JSON as an interrupt's resume value."""
    body = await _RESPOND.read(request)
    return await _decide(request, approval_id, InboxDecision(action="respond", value=body.value))
