"""Run an existing compiled LangGraph graph durably, model call by model call and tool call by tool call.

```python
from agentspan.agents import AgentRuntime

graph = create_react_agent(model, tools)        # or any StateGraph(...).compile()
with AgentRuntime() as runtime:
    result = runtime.run(graph, {"messages": [("user", "compare the offers")]})
```

LangGraph's own runner executes the graph. Inside an Agentspan run, every chat-model call
(``invoke``, ``stream`` and their async forms) and every tool call becomes a durable step: after a
crash, the rerun returns the recorded results of completed calls instantly and continues with the
first call that had not finished. Outside an Agentspan run the graph behaves exactly as before.

Or change one line and keep the rest of the code: ``app = durable(graph)`` has the graph's own
``invoke``/``ainvoke``/``stream``/``astream``, returning exactly what LangGraph returns (LangChain
message objects), each call a durable execution (see :func:`durable`).
"""

try:
    import langchain_core  # noqa: F401
    import langgraph  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    from ..._install import install_hint

    raise ImportError(f"the LangGraph adapter needs langgraph and langchain-core; {install_hint('langgraph')}") from exc

from .._default_runtime import use_runtime
from ._dropin import DurableGraph, durable
from ._graph import graph_function, graph_input, graph_name
from ._patch import install

__all__ = ["DurableGraph", "durable", "graph_function", "graph_input", "graph_name", "install", "use_runtime"]
