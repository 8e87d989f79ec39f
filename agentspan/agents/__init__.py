"""Native agents: ``Agent``, ``@tool`` and ``AgentRuntime``, durable by default.

```python
from agentspan.agents import Agent, AgentRuntime, tool

@tool
def search_web(query: str) -> str:
    \"\"\"Search the web for information.\"\"\"
    return f"Results for: {query}"

agent = Agent(name="research-agent", model="openai/gpt-4o-mini",
              instructions="Research the topic thoroughly.", tools=[search_web])

with AgentRuntime() as runtime:
    runtime.run(agent, "Compare the top workflow orchestration tools").print_result()
```
"""

from ..runtime import Budget, Price
from ._agent import Agent
from ._guardrail import Guardrail, GuardrailResult, LLMGuardrail, OnFail, Position, RegexGuardrail, guardrail
from ._result import AgentHandle, AgentResult, PendingApproval
from ._runtime import AgentRuntime
from ._tool import ToolContext, ToolDefinition, ToolError, tool
from ._types import Message, ModelRequest, ModelResponse, ModelSettings, ToolCall, ToolSpec, Usage

__all__ = [
    "Agent",
    "AgentHandle",
    "AgentResult",
    "AgentRuntime",
    "Budget",
    "Guardrail",
    "GuardrailResult",
    "LLMGuardrail",
    "Message",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "OnFail",
    "PendingApproval",
    "Position",
    "Price",
    "RegexGuardrail",
    "ToolCall",
    "ToolContext",
    "ToolDefinition",
    "ToolError",
    "ToolSpec",
    "Usage",
    "guardrail",
    "tool",
]
