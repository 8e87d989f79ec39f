"""A program written against the drop-in ``Runner`` (run as ``python adk_runner_program.py``): an ADK
agent on ADK's default Gemini model (at ``GOOGLE_GEMINI_BASE_URL``) that makes 20 tool calls, each
appending ``<query>\\t<idempotency key>\\t<pid>`` to the file named by ``AGENT_LOG`` and recording the query in the
session state. Its session is kept by ADK's ``SqliteSessionService`` in the file ``ADK_SESSIONS`` (or by
its ``DatabaseSessionService`` at the database URL ``ADK_SESSIONS_URL``, when set); its executions by the
embedded runtime in ``AGENTSPAN_DB``. Run again after a SIGKILL, it resumes the run."""

from __future__ import annotations

import asyncio
import os

from google.adk.agents import LlmAgent
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from processes import log_call

from agentspan.adapters.google_adk import Runner
from agentspan.durable import current_step


def search(query: str, tool_context: ToolContext) -> dict[str, str]:
    """Search for information."""
    step = current_step()
    log_call(f"{query}\t{step.idempotency_key if step else '-'}")
    tool_context.state["searched"] = [*tool_context.state.get("searched", []), query]
    return {"results": f"results for {query}"}


def session_service() -> BaseSessionService:
    """ADK's session service the program keeps its session in (see the module documentation)."""
    url = os.environ.get("ADK_SESSIONS_URL")
    if url:
        from google.adk.sessions.database_session_service import DatabaseSessionService

        return DatabaseSessionService(url)
    return SqliteSessionService(os.environ["ADK_SESSIONS"])


async def main() -> None:
    agent = LlmAgent(name="adk_runner_program", model="gemini-2.5-flash", instruction="Research.", tools=[search])
    sessions = session_service()
    runner = Runner(agent=agent, app_name="adk-runner-program", session_service=sessions)
    if await sessions.get_session(app_name=runner.app_name, user_id="u1", session_id="s1") is None:
        await sessions.create_session(app_name=runner.app_name, user_id="u1", session_id="s1")
    message = types.Content(role="user", parts=[types.Part(text="compare")])
    final = ""
    async for event in runner.run_async(user_id="u1", session_id="s1", new_message=message):
        if event.is_final_response() and event.content and event.content.parts:
            final = "".join(part.text or "" for part in event.content.parts)
    await agent.canonical_model.api_client.aio.aclose()
    if hasattr(sessions, "close"):
        await sessions.close()
    print(final)


if __name__ == "__main__":
    asyncio.run(main())
