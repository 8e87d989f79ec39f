"""A program that runs an ADK agent with ``AgentRuntime(db=...).run(agent, prompt)`` (run as ``python
adk_runtime_program.py``): an ``LlmAgent`` on ADK's default Gemini model (at ``GOOGLE_GEMINI_BASE_URL``) that
makes 20 tool calls, each appending ``<query>\\t<idempotency key>\\t<pid>`` to the file named by ``AGENT_LOG``
and recording the query in the session state. Its executions are kept by the embedded runtime in
``AGENTSPAN_DB``. It prints the run's output, execution id and session state as JSON. Run again after a
SIGKILL, it resumes the unfinished run."""

from __future__ import annotations

import json
import os

from google.adk.agents import LlmAgent
from google.adk.tools.tool_context import ToolContext
from processes import log_call

from agentspan.agents import AgentRuntime
from agentspan.durable import current_step

PROMPT = "Research durable execution, then compare."


def search(query: str, tool_context: ToolContext) -> dict[str, str]:
    """Search for information."""
    step = current_step()
    log_call(f"{query}\t{step.idempotency_key if step else '-'}")
    tool_context.state["searched"] = [*tool_context.state.get("searched", []), query]
    return {"results": f"results for {query}"}


def main() -> None:
    agent = LlmAgent(name="adk_runtime_program", model="gemini-2.5-flash", instruction="Research.", tools=[search])
    with AgentRuntime(db=os.environ["AGENTSPAN_DB"], serve_http=False) as runtime:
        result = runtime.run(agent, PROMPT)
        execution = runtime.client.get_execution(result.execution_id)
    print(
        json.dumps({"output": result.output, "execution_id": result.execution_id, "state": execution.output["state"]})
    )


if __name__ == "__main__":
    main()
