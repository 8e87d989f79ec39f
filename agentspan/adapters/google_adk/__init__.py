"""Run Google ADK agents and apps durably, model call by model call and tool call by tool call.

```python
from google.adk.agents import LlmAgent
from agentspan.agents import AgentRuntime

root_agent = LlmAgent(name="weather", model="gemini-2.5-flash", tools=[get_weather])
with AgentRuntime() as runtime:
    result = runtime.run(root_agent, "Weather in Paris?")
```

or serve it: ``agentspan worker myapp.agents:root_agent``. ADK's own ``Runner`` runs the agent (or the
``App``, with its plugins). Inside an Agentspan run every model call and every tool call becomes a
durable step, below ADK's callbacks and plugins (they run on replayed calls as on live ones); a tool's
changes to session state and its other actions are recorded with its result; ADK's ids are
deterministic. After a crash, the rerun returns the recorded results of completed calls instantly and
continues with the first call that had not finished. Outside an Agentspan run everything behaves as
ADK normally does.
"""

try:
    import google.adk  # noqa: F401
    import wrapt  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..._install import install_hint

    raise ImportError(f"the Google ADK adapter needs google-adk and wrapt; {install_hint('google-adk')}") from exc

from ._agent import agent_function, execution_input, is_adk
from ._patch import install
from ._plugin import DurablePlugin
from ._runner import InMemoryRunner, Runner, use_runtime

__all__ = [
    "DurablePlugin",
    "InMemoryRunner",
    "Runner",
    "agent_function",
    "execution_input",
    "install",
    "is_adk",
    "use_runtime",
]
