"""Model calls as durable steps: a ``Model`` wrapper and the ``ModelProvider`` that hands it out.

Inside an Agentspan run, each ``get_response`` and ``stream_response`` is a step of kind ``llm``.
The step records the :class:`~agents.items.ModelResponse` as JSON (pydantic's ``by_alias`` form, which
the SDK's types need to round-trip losslessly) and a rerun returns it without calling the model.
Outside an Agentspan run the wrapper calls the model it wraps and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agents.items import ModelResponse
from agents.models.interface import Model, ModelProvider
from openai.types.responses import Response, ResponseCompletedEvent
from pydantic import TypeAdapter

from ...durable import run_step_async
from ...durable._codec import Codec, to_json
from ._scope import active, run_usage

__all__ = ["DurableModel", "DurableModelProvider", "durable_model"]

_RESPONSE = TypeAdapter(ModelResponse)


class _ResponseCodec(Codec):
    """A ``ModelResponse`` (or, for streamed calls, a ``Response``) as JSON and back."""

    __slots__ = ("_type",)

    def __init__(self, streamed: bool) -> None:
        super().__init__(None)
        self._type: TypeAdapter[Any] = TypeAdapter(Response) if streamed else _RESPONSE

    def encode(self, value: Any, what: str) -> Any:
        # by_alias: openai's ``ResponseFunctionToolCall.async_`` is stored as "async"; without the alias
        # the response would not come back equal. exclude_unset: the SDK builds the next turn's input
        # from these items with exclude_unset, so a rebuilt item must have the same fields set as the
        # original, or the next model call would not match its recorded step.
        return to_json(self._type.dump_python(value, mode="json", by_alias=True, exclude_unset=True), what)

    def decode(self, data: Any) -> Any:
        return self._type.validate_python(data)


_DONE = object()
_GET = _ResponseCodec(streamed=False)
_STREAM = _ResponseCodec(streamed=True)


def _usage(response: Any) -> dict[str, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    return {
        "prompt_tokens": int(getattr(usage, "input_tokens", 0) or 0),
        "completion_tokens": int(getattr(usage, "output_tokens", 0) or 0),
        "total_tokens": int(getattr(usage, "total_tokens", 0) or 0),
    }


def _model_name(model: Model, name: str | None) -> str:
    found = name or getattr(model, "model", None)
    return found if isinstance(found, str) and found else type(model).__name__


def _request(
    system_instructions: str | None, input: Any, tools: list[Any], output_schema: Any, handoffs: list[Any]
) -> dict[str, Any]:
    """What identifies a model call: the conversation, the tools and handoffs offered, the output type."""
    return {
        "system": system_instructions,
        "input": input,
        "tools": sorted(str(getattr(t, "name", type(t).__name__)) for t in tools),
        "handoffs": sorted(str(getattr(h, "tool_name", "")) for h in handoffs),
        "output_schema": None if output_schema is None else output_schema.name(),
    }


class DurableModel(Model):
    """Wraps a ``Model`` so that, inside an Agentspan run, each of its calls is a durable step.

    Args:
        model: The model that makes the calls.
        name: The step name (default: the model's ``model`` attribute, else its class name).
        agent: The name of the agent whose turns call it, recorded with each call (the UI groups an
            agent's turns by it, and shows a handoff where it changes); not part of the step's key.
    """

    def __init__(self, model: Model, name: str | None = None, *, agent: str | None = None) -> None:
        self.model = model
        self.name = _model_name(model, name)
        self.agent = agent

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        """The recorded response inside an Agentspan run when there is one; else the model's."""

        async def call() -> ModelResponse:
            return await self.model.get_response(
                system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kwargs
            )

        if not active():
            return await call()

        request = _request(system_instructions, input, tools, output_schema, handoffs)
        recorded = self._with_agent(run_usage().recorded(request))
        response = await run_step_async("llm", self.name, recorded, call, codec=_GET, usage_of=_usage, identity=request)
        run_usage().add(_usage(response))
        return response

    def _with_agent(self, recorded: dict[str, Any]) -> dict[str, Any]:
        return recorded if self.agent is None else {**recorded, "agent": self.agent}

    async def stream_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """The model's stream events; inside an Agentspan run the call is a step whose output is the
        completed ``Response``. A live call's events are yielded as the model sends them; a replayed
        call yields only its ``response.completed`` event (its parts are not streamed twice)."""
        stream = self.model.stream_response(
            system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **kwargs
        )
        if not active():
            async for event in stream:
                yield event
            return
        events: asyncio.Queue[Any] = asyncio.Queue()

        async def call() -> Response:
            completed: Response | None = None
            async for event in stream:
                events.put_nowait(event)
                if isinstance(event, ResponseCompletedEvent):
                    completed = event.response
            if completed is None:
                raise RuntimeError(f"the stream of model {self.name!r} ended without a response.completed event")
            return completed

        request = _request(system_instructions, input, tools, output_schema, handoffs)
        recorded = self._with_agent(run_usage().recorded(request))
        # The step runs as a task (in this context) so that its events reach the caller while it runs.
        step = asyncio.ensure_future(
            run_step_async("llm", self.name, recorded, call, codec=_STREAM, usage_of=_usage, identity=request)
        )
        step.add_done_callback(lambda _: events.put_nowait(_DONE))
        live = False
        try:
            while (event := await events.get()) is not _DONE:
                live = True
                yield event
            response = await step
        finally:
            if not step.done():
                step.cancel()
        run_usage().add(_usage(response))
        if not live:  # replayed
            yield ResponseCompletedEvent(type="response.completed", response=response, sequence_number=0)

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.model._cleanup_on_run_end(owner)

    async def close(self) -> None:
        """Close the wrapped model."""
        await self.model.close()


def durable_model(model: Model, agent: str | None = None) -> Model:
    """``model`` wrapped in a :class:`DurableModel` (once), recording ``agent`` as the caller's name."""
    if not isinstance(model, DurableModel):
        return DurableModel(model, agent=agent)
    if agent is None or model.agent == agent:
        return model
    return DurableModel(model.model, model.name, agent=agent)  # from the provider: named, not yet by agent


class DurableModelProvider(ModelProvider):
    """Hands out the models of ``provider`` wrapped in :class:`DurableModel`.

    Pass it as ``RunConfig(model_provider=...)``: agents whose model is a name (and handoff targets,
    and agents run as tools, which inherit the run config) then call models through durable steps.
    """

    def __init__(self, provider: ModelProvider) -> None:
        self.provider = provider

    def get_model(self, model_name: str | None) -> Model:
        """The provider's model for ``model_name``, wrapped."""
        return durable_model(self.provider.get_model(model_name))

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.provider.aclose()
