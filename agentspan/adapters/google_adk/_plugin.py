"""A plugin that makes the runs of an ``App`` durable when ADK's own ``Runner`` runs it inside a durable
function: ``App(name=..., root_agent=..., plugins=[DurablePlugin()])``.

```python
from google.adk.apps import App
from google.adk.runners import Runner
from agentspan.adapters.google_adk import DurablePlugin
from agentspan.durable import durable

app = App(name="weather", root_agent=root_agent, plugins=[DurablePlugin()])

@durable
async def answer(question: str) -> str:
    runner = Runner(app=app, session_service=InMemorySessionService())
    ...  # create a session, then: async for event in runner.run_async(...)
```

What it does, and only inside a durable function (an execution run by a worker): when the run starts
(``before_run_callback``) it puts the adapter's patches in place and marks the rest of the run as part
of the execution, so every model call and tool call becomes a step of it and the ids ADK draws from
then on (function-call ids, event ids) are deterministic. Outside a durable function, and in a run that
already is one (``runtime.run(app, ...)``, the drop-in :class:`~._runner.Runner`), it does nothing.

What it cannot do, being a plugin: ADK draws the invocation id and the user message's event id before
any plugin runs, so those stay random; and ADK appends every event to the runner's session service as
it goes, so a session service that outlives the attempt (``DatabaseSessionService``) gets the events of
replayed calls again after a resume. Use a session service made inside the durable function (as above),
or the drop-in ``Runner``, which keeps a persistent session free of duplicates.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from typing import Any

from google.adk.agents.invocation_context import InvocationContext
from google.adk.platform import uuid as platform_uuid
from google.adk.plugins.base_plugin import BasePlugin
from google.genai import types

from ...durable._context import current_context
from ._patch import install
from ._scope import _RUN, RunState, run_tag

__all__ = ["DurablePlugin"]

_lock = threading.Lock()
# Per attempt (its durable context) and enclosing step: how many plugin runs started so far, so the
# n-th run of an attempt draws the same ids on every attempt, and differs from the other runs.
_runs: weakref.WeakKeyDictionary[Any, dict[str | None, int]] = weakref.WeakKeyDictionary()
# The run state this plugin set up in the calling context (only that one is undone after the run).
_OWN: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("agentspan_google_adk_plugin", default=None)


class DurablePlugin(BasePlugin):
    """Makes the app's runs durable inside a durable function: see the module documentation."""

    def __init__(self, name: str = "agentspan_durable") -> None:
        super().__init__(name=name)

    async def before_run_callback(self, *, invocation_context: InvocationContext) -> types.Content | None:
        found = current_context()
        if found is None or _RUN.get() is not None:
            return None
        install()
        context, parent = found
        with _lock:
            counts = _runs.setdefault(context, {})
            n = counts[parent] = counts.get(parent, 0) + 1
        place = f"{context.execution_id}/{parent or ''}/{n}"
        tag = run_tag(context.execution_id) if n == 1 and parent is None else run_tag(place)
        state = RunState(tag)
        _OWN.set(state)
        # Set in the run's own context (plugins are awaited in it): what the run does next sees them.
        _RUN.set(state)
        platform_uuid.set_id_provider(state.new_id)
        return None

    async def after_run_callback(self, *, invocation_context: InvocationContext) -> None:
        state = _OWN.get()
        if state is None or state is not _RUN.get():
            return
        _OWN.set(None)
        _RUN.set(None)
        platform_uuid.reset_id_provider()
