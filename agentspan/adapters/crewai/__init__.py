"""Run CrewAI crews and flows durably, model call by model call and tool call by tool call.

```python
from agentspan.adapters.crewai import durable

result = durable(crew).kickoff(inputs={"topic": "AI agents"})   # CrewAI's own CrewOutput
```

or hand the crew to a runtime: ``AgentRuntime().run(crew, {"topic": "AI agents"})``, ``agentspan worker
myapp.crews:crew``. CrewAI's own ``kickoff`` runs the crew. Inside an Agentspan run every model call
(every LLM class, whoever calls it), every tool call (native function calling and the ReAct path) and
every task's execution becomes a durable step: after a crash, the rerun returns the recorded results
of completed calls instantly and continues with the first call that had not finished. Outside an
Agentspan run everything behaves as CrewAI normally does.
"""

from ._telemetry import quiet_by_default

quiet_by_default()  # before CrewAI is imported here: see ._telemetry

try:
    import crewai  # noqa: F401
    import wrapt  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..._install import install_hint

    raise ImportError(f"the CrewAI adapter needs crewai and wrapt; {install_hint('crewai')}") from exc

from .._default_runtime import use_runtime  # noqa: E402
from ._crew import crew_function, execution_input  # noqa: E402
from ._dropin import DurableCrew, durable  # noqa: E402
from ._patch import install  # noqa: E402

__all__ = ["DurableCrew", "crew_function", "durable", "execution_input", "install", "use_runtime"]
