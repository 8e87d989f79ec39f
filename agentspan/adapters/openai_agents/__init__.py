"""Run OpenAI Agents SDK agents durably, model call by model call and tool call by tool call.

```python
from agents import Agent
from agentspan.agents import AgentRuntime

agent = Agent(name="researcher", instructions="...", tools=[search])
with AgentRuntime() as runtime:
    result = runtime.run(agent, "compare the offers")
```

The SDK's own ``Runner`` executes the agent. Inside an Agentspan run, every model call
(``get_response`` and ``stream_response``) and every function-tool call, also those of handoff targets
and of agents run as tools, becomes a durable step: after a crash, the rerun returns the recorded
results of completed calls instantly and continues with the first call that had not finished.
Outside an Agentspan run everything behaves as the SDK normally does.
"""

try:
    import agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..._install import install_hint

    raise ImportError(f"the OpenAI Agents SDK adapter needs openai-agents; {install_hint('openai-agents')}") from exc

from ._agent import agent_function, durable_run_config, execution_input
from ._model import DurableModel, DurableModelProvider
from ._patch import install
from ._runner import DurableStreamedRun, Runner, approve, reject, use_runtime

__all__ = [
    "DurableModel",
    "DurableModelProvider",
    "DurableStreamedRun",
    "Runner",
    "agent_function",
    "approve",
    "durable_run_config",
    "execution_input",
    "install",
    "reject",
    "use_runtime",
]
