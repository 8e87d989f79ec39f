"""``GET /api/agents/{name}``: whether a name can run (deployed, served by workers), for clients that
start executions by name and want to say so before waiting on one nobody will run."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from .._service import Service
from .._serving import AgentStatus
from ._routes import _DEFINITION_NAME

__all__ = ["agents_router"]

agents_router = APIRouter()


@agents_router.get("/agents/{name:path}", response_model=AgentStatus, tags=["definitions"])
async def agent_status(name: _DEFINITION_NAME, request: Request) -> Response:
    """Whether ``name`` is deployed, how many workers serve it and how many executions of it are queued."""
    service: Service = request.app.state.service
    status = await asyncio.to_thread(service.agent_status, name)  # store reads: off the event loop
    return Response(status.model_dump_json(), media_type="application/json")
