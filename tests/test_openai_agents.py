"""The OpenAI Agents SDK adapter: the SDK's Runner runs the agent, every model and tool call is a step.

A "crash" is a BaseException raised by a tool: it unwinds the worker without recording anything, and
the test then expires the worker's lease and lets a fresh worker resume the execution.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from typing import Any

import httpx
import openai
import pytest
from agents import Agent, ModelResponse, OpenAIChatCompletionsModel, RunConfig, Runner, function_tool
from agents.models.interface import Model
from agents.tool_guardrails import ToolGuardrailFunctionOutput, tool_input_guardrail
from oa_flows import TurnModel, research
from processes import wait_until
from pydantic import BaseModel, TypeAdapter

import agentspan.adapters.openai_agents as oa
from agentspan.adapters.openai_agents._agent import agent_name
from agentspan.agents import AgentRuntime
from agentspan.agents._runtime import is_openai_agent
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker


class Crash(BaseException):
    """Stands for the process dying."""


calls: collections.Counter[str] = collections.Counter()
crash_at: set[str] = set()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    crash_at.clear()


@function_tool
def search(query: str) -> str:
    """Search for information."""
    calls[query] += 1
    if query in crash_at:
        crash_at.discard(query)
        raise Crash(query)
    return f"results for {query}"


def researcher(model: Model, name: str = "researcher") -> Agent[Any]:
    return Agent(name=name, instructions="Research.", model=model, tools=[search])


# --- helpers ---------------------------------------------------------------------------------------------
def start(service: Service, agent: Agent[Any], prompt: Any = "compare the offers", *, key: str | None = None) -> str:
    return service.create_execution(agent_name(agent), oa.execution_input(prompt), idempotency_key=key).id


def work(service: Service, agent: Agent[Any], *, crash: bool = False) -> None:
    """One worker run: to the end, or to a crash after which its lease is expired."""
    worker = Worker(service, [oa.agent_function(agent)], lease_seconds=30)
    if crash:
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
    else:
        assert worker.run_once()


def steps(service: Service, eid: str, kind: str) -> list[Any]:
    return [s for s in service.get_journal(eid) if s.kind == kind]


# --- tests -----------------------------------------------------------------------------------------------
def test_sdk_agents_are_detected_by_type_without_importing_the_sdk_in_the_core() -> None:
    assert is_openai_agent(Agent(name="a"))
    assert not is_openai_agent(object())
    assert agent_name(Agent(name="Triage agent")) == "Triage-agent"


def test_model_response_round_trips_losslessly_through_json() -> None:
    from agentspan.adapters.openai_agents._model import _GET

    response = asyncio.run(research(1).get_response(None, "hi", None, [], None, [], None))
    # openai>=3 (SDK 0.21 and later) only: ResponseFunctionToolCall.async_, stored by its alias "async".
    aliased_fields = "async_" in type(response.output[0]).model_fields
    if aliased_fields:
        aliased = response.output[0].model_copy(update={"async_": False})
        aliased.model_fields_set.add("async_")
        response.output.append(aliased)
    data = _GET.encode(response, "response")
    assert json.loads(json.dumps(data)) == data
    if aliased_fields:
        assert data["output"][1]["async"] is False, "openai's aliased fields are stored by their alias"
    rebuilt = _GET.decode(data)
    assert rebuilt == response
    assert TypeAdapter(ModelResponse).validate_python(data) == response
    assert [o.model_fields_set for o in rebuilt.output] == [o.model_fields_set for o in response.output]
    assert oa.DurableModel(research(1)).name == "TurnModel"


def test_recorded_tool_outputs_keep_their_pydantic_type() -> None:
    from agents import ToolOutputText

    from agentspan.adapters.openai_agents._tools import _OUTPUT

    for value in ["text", {"a": [1, 2]}, ToolOutputText(text="hi")]:
        data = _OUTPUT.encode(value, "output")
        assert json.loads(json.dumps(data)) == data
        assert _OUTPUT.decode(data).value == value
        assert type(_OUTPUT.decode(data).value) is type(value)


def test_crashed_run_resumes_without_repeating_model_or_tool_calls(service: Service) -> None:
    model = research(5)
    agent = researcher(model)
    eid = start(service, agent)
    crash_at.add("q4")
    work(service, agent, crash=True)
    assert model.requests == 4
    assert calls == {"q1": 1, "q2": 1, "q3": 1, "q4": 1}
    work(service, agent)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert model.requests == 6, "turns 0-3 were recorded: only turns 4 and 5 were asked for again"
    assert calls == {"q1": 1, "q2": 1, "q3": 1, "q4": 2, "q5": 1}
    assert execution.output["output"] == "compared"
    assert [s.status for s in steps(service, eid, "llm")] == [StepStatus.COMPLETED] * 6
    assert [s.status for s in steps(service, eid, "tool")] == [StepStatus.COMPLETED] * 5

    calm = research(5)
    calm_agent = researcher(calm)
    cid = start(service, calm_agent, key="calm")
    work(service, calm_agent)
    assert service.get_execution(cid).output == execution.output
    assert execution.output["usage"]["total_tokens"] == 6 * 15


# --- handoffs and agents as tools --------------------------------------------------------------------------
def crew() -> tuple[Agent[Any], dict[str, TurnModel]]:
    """A triage agent that asks a translator agent (as a tool), then hands off to a specialist."""
    models = {
        "translator": TurnModel("t", [[("search", {"query": "word"})], "bonjour"]),
        "specialist": TurnModel("s", [[("search", {"query": "deep"})], [("search", {"query": "deeper"})], "done"]),
        "triage": TurnModel("g", [[("translate", {"input": "hello"})], [("transfer_to_specialist", {})]]),
    }
    translator = Agent(name="translator", instructions="Translate.", model=models["translator"], tools=[search])
    specialist = Agent(name="specialist", instructions="Go deep.", model=models["specialist"], tools=[search])
    triage = Agent(
        name="triage",
        instructions="Route.",
        model=models["triage"],
        tools=[translator.as_tool(tool_name="translate", tool_description="Translate a text.")],
        handoffs=[specialist],
    )
    return triage, models


def test_handoffs_and_agents_as_tools_resume_without_repeating_calls(service: Service) -> None:
    triage, models = crew()
    eid = start(service, triage)
    crash_at.add("deeper")
    work(service, triage, crash=True)
    assert {name: m.requests for name, m in models.items()} == {"translator": 2, "specialist": 2, "triage": 2}
    work(service, triage)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "done"
    assert execution.output["last_agent"] == "specialist"
    assert {name: m.requests for name, m in models.items()} == {"translator": 2, "specialist": 3, "triage": 2}
    assert calls == {"word": 1, "deep": 1, "deeper": 2}
    journal = service.get_journal(eid)
    translate = next(s for s in journal if s.kind == "tool" and s.name == "translate")
    nested = [s for s in journal if s.parent == translate.key]
    assert sorted(s.kind for s in nested) == ["llm", "llm", "tool"], "the agent-as-tool's calls are its children"
    # Each model call records the agent whose turn it was (the UI groups turns and shows the handoff).
    turns = [(s.input["agent"], s.parent is not None) for s in journal if s.kind == "llm"]
    assert (
        turns
        == [("triage", False), ("translator", True), ("translator", True), ("triage", False)]
        + [("specialist", False)] * 3
    )

    calm, _ = crew()
    cid = start(service, calm, key="calm")
    work(service, calm)
    assert service.get_execution(cid).output == execution.output


# --- parallel tool calls --------------------------------------------------------------------------------
def test_parallel_tool_calls_are_keyed_by_call_id(service: Service) -> None:
    model = TurnModel("p", [[("search", {"query": f"p{i}"}) for i in range(4)], "all done"])
    agent = researcher(model, "parallel")
    eid = start(service, agent)
    crash_at.add("p2")
    work(service, agent, crash=True)
    done = {s.input["call_id"] for s in steps(service, eid, "tool") if s.status is StepStatus.COMPLETED}
    work(service, agent)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "all done"
    assert model.requests == 2
    for i in range(4):
        expected = 2 if f"call_p_0_{i}" not in done else 1
        assert calls[f"p{i}"] == expected
    assert calls["p2"] == 2
    tools = steps(service, eid, "tool")
    assert sorted(s.input["call_id"] for s in tools) == [f"call_p_0_{i}" for i in range(4)]
    assert [c["result"] for c in execution.output["tool_calls"]] == [f"results for p{i}" for i in range(4)]


class _Order:
    """Who reaches its tool step first in each attempt of the start-order test below."""

    def __init__(self) -> None:
        self.attempt = 0
        self.service: Service | None = None
        self.b_started = threading.Event()


order = _Order()


@tool_input_guardrail
async def _b_first_on_the_rerun(data: Any) -> ToolGuardrailFunctionOutput:
    # On the rerun, call "a" waits at its guardrail (before its step) until call "b" is inside its step.
    if order.attempt == 2 and json.loads(data.context.tool_arguments)["query"] == "a":
        await asyncio.to_thread(order.b_started.wait, 10)
    return ToolGuardrailFunctionOutput.allow()


@function_tool(tool_input_guardrails=[_b_first_on_the_rerun])
async def gated(query: str) -> str:
    """Search, in the order the test needs."""
    calls[query] += 1
    if query == "b" and order.attempt == 1:
        service, execution_id = order.service, current_step_execution()

        def a_recorded() -> bool:
            assert service is not None
            return any(s.input.get("call_id") == "call_g_0_0" and s.status is StepStatus.COMPLETED
                       for s in service.get_journal(execution_id) if s.kind == "tool")  # fmt: skip

        await asyncio.to_thread(wait_until, a_recorded, "call a to be recorded")
        raise Crash("b")  # the process dies in call b, after call a was recorded
    if query == "b":
        order.b_started.set()
    return f"results for {query}"


def current_step_execution() -> str:
    from agentspan.durable import current_step

    info = current_step()
    assert info is not None
    return info.execution_id


def test_tool_calls_are_matched_by_call_id_whatever_order_they_start_in(service: Service) -> None:
    """Calls start in listing order on the first attempt and in another order on the rerun (a slow
    input guardrail): a recorded result goes to the call with its id, not to whichever starts first."""
    model = TurnModel("g", [[("gated", {"query": "a"}), ("gated", {"query": "b"})], "both done"])
    agent = Agent(name="gated", instructions="Search.", model=model, tools=[gated])
    order.service = service
    eid = start(service, agent)
    order.attempt = 1
    work(service, agent, crash=True)
    order.attempt = 2
    work(service, agent)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert calls == {"a": 1, "b": 2}
    results = {c["id"]: c["result"] for c in execution.output["tool_calls"]}
    assert results == {"call_g_0_0": "results for a", "call_g_0_1": "results for b"}


# --- outside an Agentspan run ---------------------------------------------------------------------------
def test_outside_an_agentspan_run_the_sdk_behaves_as_before(service: Service) -> None:
    oa.install()
    model = research(2)
    agent = researcher(model)
    result = asyncio.run(Runner.run(agent, "compare", run_config=oa.durable_run_config(RunConfig())))
    assert result.final_output == "compared"
    assert model.requests == 3
    assert calls == {"q1": 1, "q2": 1}
    assert service.list_executions().items == []
    result = asyncio.run(Runner.run(agent, "compare"))
    assert result.final_output == "compared"
    assert model.requests == 6
    assert calls == {"q1": 2, "q2": 2}


# --- a real Chat Completions model over HTTP ------------------------------------------------------------
def http_client(fake: FakeOpenAIServer) -> openai.AsyncOpenAI:
    # The worker runs each execution in its own event loop: pooled connections would outlive theirs.
    pool = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_keepalive_connections=0))
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, http_client=pool)


def http_agent(fake: FakeOpenAIServer, name: str = "http-researcher") -> Agent[Any]:
    client = http_client(fake)
    return researcher(OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client), name)


def test_chat_completions_model_resumes_without_new_requests_for_completed_turns(service: Service) -> None:
    script = FakeOpenAIServer.research_script(4, "search", lambda i: {"query": f"h{i + 1}"}, answer="compared")
    with FakeOpenAIServer(script) as fake:
        agent = http_agent(fake)
        eid = start(service, agent)
        crash_at.add("h3")
        work(service, agent, crash=True)
        assert fake.request_count == 3, [(r["messages"], r.get("stream")) for r in fake.requests]
        work(service, agent)
        execution = service.get_execution(eid)
        turns = [sum(m.get("role") == "assistant" for m in r["messages"]) for r in fake.requests]
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "compared"
    assert turns == [0, 1, 2, 3, 4], "each turn was requested once"
    assert calls == {"h1": 1, "h2": 1, "h3": 2, "h4": 1}
    usage = execution.output["usage"]
    assert usage["total_tokens"] > 0


def test_agent_runtime_runs_sdk_agents_with_structured_output(tmp_path: Any) -> None:
    class Verdict(BaseModel):
        winner: str

    script = ['{"winner": "b"}']
    with FakeOpenAIServer(script) as fake:
        model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=http_client(fake))
        agent = Agent(name="judge", instructions="Judge.", model=model, output_type=Verdict)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "which offer?", timeout=30)
            execution_id = runtime.client.list_executions(name="judge").items[0].id
            again = runtime.handle(execution_id, agent).wait(timeout=5)
    assert again.structured == {"winner": "b"}, "a handle rebuilt with the SDK agent reads the same result"
    assert result.is_success, result.error
    assert result.structured == {"winner": "b"}
    assert json.loads(result.output) == {"winner": "b"}
    assert result.token_usage.total_tokens > 0


# --- streamed model calls -------------------------------------------------------------------------------
def test_streamed_model_calls_are_recorded_and_replayed(service: Service) -> None:
    from agentspan import durable
    from agentspan.adapters.openai_agents._scope import agentspan_run

    script = FakeOpenAIServer.research_script(2, "search", lambda i: {"query": f"s{i + 1}"}, answer="streamed")
    deltas: list[str] = []
    with FakeOpenAIServer(script) as fake:
        agent = http_agent(fake, "streamer")

        @durable.function(name="streamer")
        async def streamer(prompt: str) -> str:
            with agentspan_run():
                result = Runner.run_streamed(agent, prompt, run_config=oa.durable_run_config())
                async for event in result.stream_events():
                    if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                        deltas.append(event.data.delta)
            return str(result.final_output)

        eid = service.create_execution("streamer", {"prompt": "go"}).id
        crash_at.add("s2")
        worker = Worker(service, [streamer], lease_seconds=30)
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
        assert Worker(service, [streamer], lease_seconds=30).run_once()
        execution = service.get_execution(eid)
        requests = fake.requests
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert [sum(m.get("role") == "assistant" for m in r["messages"]) for r in requests] == [0, 1, 2]
    assert execution.output == "streamed"
    assert "".join(deltas) == "streamed"
    assert calls == {"s1": 1, "s2": 2}
    assert [s.status for s in steps(service, eid, "llm")] == [StepStatus.COMPLETED] * 3


# --- guardrails and ModelSettings.retry -------------------------------------------------------------------
def test_guardrail_model_calls_are_steps_and_are_not_repeated_on_resume(service: Service) -> None:
    from agents import GuardrailFunctionOutput, input_guardrail, output_guardrail

    class Check(BaseModel):
        flagged: bool

    checker_model = TurnModel("c", ['{"flagged": false}'])
    checker = Agent(name="checker", instructions="Flag abuse.", model=checker_model, output_type=Check)

    async def check(ctx: Any, text: Any) -> GuardrailFunctionOutput:
        result = await Runner.run(checker, text if isinstance(text, str) else json.dumps(text), context=ctx.context)
        return GuardrailFunctionOutput(output_info=result.final_output, tripwire_triggered=result.final_output.flagged)

    @input_guardrail
    async def screen_input(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return await check(ctx, text)

    @output_guardrail
    async def screen_output(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
        return await check(ctx, output)

    model = research(3)
    agent = Agent(
        name="guarded", instructions="Research.", model=model, tools=[search],
        input_guardrails=[screen_input], output_guardrails=[screen_output],
    )  # fmt: skip
    eid = start(service, agent)
    crash_at.add("q3")
    work(service, agent, crash=True)
    assert checker_model.requests == 1, "the input guardrail ran"
    work(service, agent)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "compared"
    assert checker_model.requests == 2, "the input check was replayed; only the output check ran now"
    assert model.requests == 4, "turns 0-2 were recorded: only turn 3 was asked for"
    checks = [s for s in steps(service, eid, "llm") if s.name == "TurnModel" and "Flag abuse." in str(s.input)]
    assert len(checks) == 2


def test_model_retries_are_steps_and_a_replayed_failure_is_retried_from_the_journal(service: Service) -> None:
    from agents import ModelRetrySettings, ModelSettings

    class Flaky(TurnModel):
        failures = 1

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            if self.failures:
                self.failures -= 1
                self.requests += 1
                raise ConnectionError("the connection dropped")
            return await super().get_response(*args, **kwargs)

    model = Flaky("f", [[("search", {"query": "q1"})], [("search", {"query": "q2"})], "compared"])
    settings = ModelSettings(retry=ModelRetrySettings(max_retries=2, policy=lambda context: True))
    agent = Agent(name="flaky", instructions="Research.", model=model, tools=[search], model_settings=settings)
    eid = start(service, agent)
    crash_at.add("q2")
    work(service, agent, crash=True)
    assert model.requests == 3, "one failed request, its retry, and turn 1"
    work(service, agent)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert model.requests == 4, "the failure, its retry and turn 1 were replayed: only turn 2 was asked for"
    first = [s.status for s in steps(service, eid, "llm")][:2]
    assert first == [StepStatus.FAILED, StepStatus.COMPLETED]


def test_the_sdks_tracing_is_off_in_agentspan_runs_unless_asked_for(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents import set_trace_processors, set_tracing_disabled
    from agents.tracing.processor_interface import TracingProcessor
    from agents.tracing.processors import default_processor

    class Collector(TracingProcessor):
        def __init__(self) -> None:
            self.traces: list[str] = []

        def on_trace_start(self, trace: Any) -> None:
            self.traces.append(trace.name)

        def on_trace_end(self, trace: Any) -> None: ...
        def on_span_start(self, span: Any) -> None: ...
        def on_span_end(self, span: Any) -> None: ...
        def shutdown(self) -> None: ...
        def force_flush(self) -> None: ...

    collector = Collector()
    set_trace_processors([collector])  # in place of the SDK's exporter: nothing leaves this machine
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-a-real-key")
    # The SDK reads its own variable once per process: its switch is set by hand for this test.
    set_tracing_disabled(False)
    try:
        for setting, runs in ((None, "quiet"), ("1", "off"), ("0", "traced")):
            if setting is None:
                monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
            else:
                monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", setting)
            agent = researcher(research(1), runs)
            start(service, agent)
            work(service, agent)
    finally:
        set_tracing_disabled(True)
        set_trace_processors([default_processor()])
    assert collector.traces == ["Agent workflow"], "only the run that asked for tracing was traced"


def test_model_steps_record_only_the_items_added_since_the_previous_call(service: Service) -> None:
    model = research(4)
    agent = researcher(model)
    eid = start(service, agent)
    work(service, agent)
    llm = steps(service, eid, "llm")
    assert [s.input.get("input_from") for s in llm] == [None, 1, 3, 5, 7]
    assert [len(s.input["input"]) for s in llm] == [1, 2, 2, 2, 2], "a call and its result per turn"
    assert all(s.input["system"] == "Research." for s in llm)
    # Replaying from these compact records gives the same run: keys come from the whole request.
    calm = researcher(research(4))
    cid = start(service, calm, key="calm")
    work(service, calm)
    assert [s.key for s in steps(service, cid, "llm")] == [s.key for s in llm]
