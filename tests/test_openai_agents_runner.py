"""The drop-in ``Runner`` and tools that need approval, for OpenAI Agents SDK agents."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, MaxTurnsExceeded, RunContextWrapper, RunHooks, RunResult, function_tool
from oa_flows import TurnModel, research

import agentspan.adapters.openai_agents as oa
from agentspan.durable import Runtime
from agentspan.errors import ConfigurationError, InvalidInputError
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.worker import Worker

calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """The drop-in Runner's runtime: embedded, in a fresh SQLite file."""
    found = Runtime(db=tmp_path / "runner.db", lease_seconds=30)
    oa.use_runtime(found)
    try:
        yield found
    finally:
        found.close()


@function_tool
def search(query: str) -> str:
    """Search for information."""
    calls[query] += 1
    return f"results for {query}"


@function_tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    calls[f"refund {amount}"] += 1
    return f"refunded {amount}"


def researcher(model: TurnModel, name: str = "researcher") -> Agent[Any]:
    return Agent(name=name, instructions="Research.", model=model, tools=[search])


# --- the drop-in Runner -----------------------------------------------------------------------------------
def test_run_sync_returns_the_sdks_result_and_records_every_call(runtime: Runtime) -> None:
    model = research(3)
    result = oa.Runner.run_sync(researcher(model), "compare")
    assert isinstance(result, RunResult)
    assert result.final_output == "compared"
    assert result.last_agent.name == "researcher"
    execution = runtime.client.get_execution(result.execution_id)
    assert execution.status is ExecutionStatus.COMPLETED
    journal = runtime.client.get_journal(result.execution_id)
    assert [s.kind for s in journal] == ["llm", "tool"] * 3 + ["llm"]
    assert all(s.status is StepStatus.COMPLETED for s in journal)
    assert calls == {"q1": 1, "q2": 1, "q3": 1}


def test_run_is_awaitable_and_hands_context_hooks_and_options_to_the_sdk(runtime: Runtime) -> None:
    seen: list[tuple[str, Any]] = []

    class Hooks(RunHooks[Any]):
        async def on_tool_start(self, context: RunContextWrapper[Any], agent: Any, tool: Any) -> None:
            seen.append((tool.name, context.context))

    result = asyncio.run(oa.Runner.run(researcher(research(2)), "compare", context={"user": "ada"}, hooks=Hooks()))
    assert result.final_output == "compared"
    assert seen == [("search", {"user": "ada"})] * 2
    with pytest.raises(MaxTurnsExceeded):
        oa.Runner.run_sync(researcher(research(5), "limited"), "compare", max_turns=2)
    failed = runtime.client.list_executions(name="limited").items[0]
    assert failed.status is ExecutionStatus.FAILED


def test_run_refuses_sessions_and_run_states_with_a_clear_error(runtime: Runtime) -> None:
    agent = researcher(research(1))
    with pytest.raises(ConfigurationError, match="session"):
        oa.Runner.run_sync(agent, "compare", session=object())
    with pytest.raises(ConfigurationError, match="approve"):
        result = oa.Runner.run_sync(agent, "compare")
        oa.Runner.run_sync(agent, result.to_state())
    with pytest.raises(ConfigurationError, match="event loop"):
        oa.Runner.run_streamed(agent, "compare")


def test_an_unfinished_run_of_the_same_agent_and_input_is_resumed_not_repeated(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run stopped at an approval is unfinished: running the same agent on the same input again
    # continues that execution (and waits for the decision), it does not start another.
    model = TurnModel("a", [[("refund", {"amount": 5})], "refunded"])
    agent = Agent(name="support", instructions="Help.", model=model, tools=[refund])
    first = oa.Runner.run_sync(agent, "I was double charged")
    assert [i.name for i in first.interruptions] == ["refund"]
    assert runtime.client.get_execution(first.execution_id).status is ExecutionStatus.WAITING
    assert calls == {}
    # Run again before the decision: the call says what it waits for, then waits.
    box: dict[str, Any] = {}
    again = threading.Thread(target=lambda: box.update(result=oa.Runner.run_sync(agent, "I was double charged")))
    again.start()
    said = ""
    for _ in range(500):
        said += capsys.readouterr().err
        if "waits for approval" in said:
            break
        time.sleep(0.01)
    call_id = first.interruptions[0].call_id
    assert f'waits for approval of refund({{"amount": 5}}), call id {call_id}' in said
    assert again.is_alive()
    oa.approve(first.execution_id, call_id)
    again.join(timeout=30)
    second = box["result"]
    assert second.execution_id == first.execution_id
    assert second.final_output == "refunded"
    assert second.interruptions == []
    assert calls == {"refund 5": 1}
    assert model.requests == 2, "the first turn was replayed, not asked for again"


# --- approvals under a worker -------------------------------------------------------------------------------
def _support(model: TurnModel) -> Agent[Any]:
    return Agent(name="support", instructions="Help.", model=model, tools=[refund, search])


def _wait_for_approval(service: Service, agent: Agent[Any]) -> str:
    eid = service.create_execution("support", oa.execution_input("I was double charged")).id
    assert Worker(service, [oa.agent_function(agent)]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.WAITING
    return eid


def test_a_tool_that_needs_approval_waits_on_the_server_then_runs_once_approved(service: Service) -> None:
    model = TurnModel("a", [[("search", {"query": "order 7"}), ("refund", {"amount": 5})], "refunded"])
    agent = _support(model)
    eid = _wait_for_approval(service, agent)
    waiting = [s for s in service.get_journal(eid) if s.kind == "approval"]
    assert [(s.status, s.input["tool"], json.loads(s.input["arguments"])) for s in waiting] == [
        (StepStatus.SUSPENDED, "refund", {"amount": 5})
    ]
    assert calls == {"order 7": 1}, "the tool without approval ran; the one that needs it did not"

    service.send_signal(eid, f"approval:{waiting[0].input['call_id']}", {"approved": True})
    assert service.get_execution(eid).status is ExecutionStatus.QUEUED
    assert Worker(service, [oa.agent_function(agent)]).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "refunded"
    assert calls == {"order 7": 1, "refund 5": 1}
    assert model.requests == 2
    assert [c["result"] for c in execution.output["tool_calls"]] == ["results for order 7", "refunded 5"]


def test_a_rejection_reaches_the_model_as_the_tools_result(service: Service) -> None:
    model = TurnModel("a", [[("refund", {"amount": 500})], "sorry"])
    agent = _support(model)
    eid = _wait_for_approval(service, agent)
    call_id = next(s.input["call_id"] for s in service.get_journal(eid) if s.kind == "approval")
    service.send_signal(eid, f"approval:{call_id}", {"approved": False, "reason": "over the refund limit"})
    assert Worker(service, [oa.agent_function(agent)]).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert calls == {}
    outputs = [i for i in model.inputs[-1] if isinstance(i, dict) and i.get("type") == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [(call_id, "over the refund limit")]
    assert execution.output["tool_calls"][0]["result"] == "over the refund limit"


def test_a_malformed_decision_is_refused_on_delivery_and_the_run_keeps_waiting(service: Service) -> None:
    agent = _support(TurnModel("a", [[("refund", {"amount": 5})], "refunded"]))
    eid = _wait_for_approval(service, agent)
    call_id = next(s.input["call_id"] for s in service.get_journal(eid) if s.kind == "approval")
    for payload in ({"approved": "yes"}, {"approved": False, "reason": 3}, None, "maybe"):
        with pytest.raises(InvalidInputError, match="approv"):
            service.send_signal(eid, f"approval:{call_id}", payload)
    assert service.get_execution(eid).status is ExecutionStatus.WAITING
    service.send_signal(eid, f"approval:{call_id}", "approve")
    assert Worker(service, [oa.agent_function(agent)]).run_once()
    assert service.get_execution(eid).output["output"] == "refunded"


# --- streaming --------------------------------------------------------------------------------------------
def _kinds(events: list[Any]) -> list[str]:
    return [e.name if e.type == "run_item_stream_event" else e.type for e in events]


def test_run_streamed_yields_events_and_a_resumed_run_does_not_stream_replayed_steps(runtime: Runtime) -> None:
    model = TurnModel("s", [[("search", {"query": "a"})], [("refund", {"amount": 5})], "refunded"])
    agent = _support(model)

    async def stream() -> tuple[list[Any], Any]:
        streamed = oa.Runner.run_streamed(agent, "I was double charged")
        events = [event async for event in streamed.stream_events()]
        return events, streamed

    first_events, first = asyncio.run(stream())
    assert first.is_complete
    assert [i.name for i in first.interruptions] == ["refund"]
    called = [e.item.raw_item.name for e in first_events if getattr(e, "name", None) == "tool_called"]
    assert called == ["search", "refund"]
    outputs = [e.item.output for e in first_events if getattr(e, "name", None) == "tool_output"]
    assert outputs == ["results for a"], "the refund waits for its approval"
    oa.approve(first.execution_id, first.interruptions[0].call_id)

    second_events, second = asyncio.run(stream())
    assert second.execution_id == first.execution_id
    assert second.final_output == "refunded"
    outputs = [e.item.output for e in second_events if getattr(e, "name", None) == "tool_output"]
    assert outputs == ["refunded 5"], "the replayed search call was not streamed again"
    deltas = [e.data.delta for e in second_events if e.type == "raw_response_event" and e.data.type.endswith(".delta")]
    assert deltas == ["refunded"], "the final answer streamed live"
    assert calls == {"a": 1, "refund 5": 1}
    assert model.requests == 3


# --- the SDK's own documented examples, with only the Runner import changed --------------------------------
EXAMPLES = Path(__file__).parent / "sdk_examples"
HAIKU = "Code calls itself back, each frame a smaller echo, until the base case."
SCRIPTS: dict[str, tuple[list[Any], str, list[str]]] = {
    "hello_world": ([HAIKU], HAIKU, ["llm"]),
    "handoffs": (
        [[("transfer_to_spanish_agent", {})], "¡Hola! Estoy bien, gracias."],
        "¡Hola! Estoy bien, gracias.",
        ["llm", "llm"],
    ),
    "functions": (
        [[("get_weather", {"city": "Tokyo"})], "The weather in Tokyo is sunny."],
        "The weather in Tokyo is sunny.",
        ["llm", "tool", "llm"],
    ),
    "streaming": (["Why did the function return? It had reached its base case."], "", ["llm"]),
}


# The client's kept-alive connections belong to the worker's event loop, which closes with the runtime:
# the sockets the test's client leaves open are collected afterwards (a program just exits).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("example", sorted(SCRIPTS))
def test_the_sdks_documented_examples_run_unchanged_on_the_drop_in_runner(
    example: str, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    import gc
    import runpy

    import openai
    from agents import set_default_openai_api, set_default_openai_client

    from agentspan.testing import FakeOpenAIServer

    script, printed, kinds = SCRIPTS[example]
    with FakeOpenAIServer(script) as fake:
        # One client for every run of the process, with kept-alive connections, as a program has.
        set_default_openai_client(openai.AsyncOpenAI(base_url=fake.base_url, api_key="test"), use_for_tracing=False)
        set_default_openai_api("chat_completions")
        try:
            for _ in range(2):  # twice: the second run is a new execution on the same client
                runpy.run_path(str(EXAMPLES / f"{example}.py"), run_name="__main__")
            requests = fake.request_count
            executions = runtime.client.list_executions().items
            journals = [runtime.client.get_journal(e.id) for e in executions]
        finally:
            set_default_openai_api("responses")
            set_default_openai_client(openai.AsyncOpenAI(api_key="unused"), use_for_tracing=False)
            runtime.close()
            gc.collect()  # the first client's sockets, while this test's warning filter applies
    out = capsys.readouterr().out
    expected = printed or script[0]
    assert out.replace("\n", "").replace(" ", "") == (expected * 2).replace(" ", "")
    assert requests == 2 * len([k for k in kinds if k == "llm"])
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED] * 2, "a finished run is not resumed"
    assert [[s.kind for s in journal] for journal in journals] == [kinds, kinds]


def test_agent_runtime_handles_list_approve_and_reject_pending_tool_calls(tmp_path: Path) -> None:
    from agentspan.agents import AgentRuntime, PendingApproval

    model = TurnModel("h", [[("refund", {"amount": 5}), ("refund", {"amount": 7})], "one refund done"])
    agent = _support(model)
    with AgentRuntime(db=tmp_path / "handles.db", serve_http=False) as runtime:
        handle = runtime.start(agent, "two refunds please")
        for _ in range(200):
            if handle.status is ExecutionStatus.WAITING and len(handle.pending_approvals()) == 2:
                break
            time.sleep(0.02)
        pending = handle.pending_approvals()
        assert pending == [
            PendingApproval("call_h_0_0", "refund", '{"amount": 5}', framework="openai_agents"),
            PendingApproval("call_h_0_1", "refund", '{"amount": 7}', framework="openai_agents"),
        ]
        handle.approve("call_h_0_0")
        assert handle.status is ExecutionStatus.QUEUED or handle.pending_approvals() == pending[1:]
        handle.reject("call_h_0_1", "one refund per order")
        result = handle.wait(timeout=30)
    assert result.is_success, result.error
    assert result.output == "one refund done"
    assert calls == {"refund 5": 1}
    assert [c["result"] for c in result.tool_calls] == ["refunded 5", "one refund per order"]


def test_a_streamed_model_calls_events_reach_the_caller_while_the_call_is_still_running(runtime: Runtime) -> None:
    seen_first = threading.Event()

    class Held(TurnModel):
        async def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            async for event in super().stream_response(*args, **kwargs):
                yield event
                # The call goes on only once the caller, in another thread, has this first word.
                held = event.type == "response.output_text.delta"
                if held and not await asyncio.to_thread(seen_first.wait, 10):
                    raise RuntimeError("the first word did not reach the caller while the call ran")

    model = Held("l", ["words arrive one by one"])
    agent = Agent(name="live", instructions="Talk.", model=model)

    async def stream() -> list[str]:
        streamed = oa.Runner.run_streamed(agent, "talk")
        words = []
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                words.append(event.data.delta)
                seen_first.set()
        assert streamed.final_output == "words arrive one by one"
        return words

    assert asyncio.run(stream()) == ["words", "arrive", "one", "by", "one"]


def test_concurrent_calls_with_the_same_input_are_separate_runs(runtime: Runtime) -> None:
    model = research(2)
    agent = researcher(model, "twins")

    async def both() -> list[Any]:
        return list(await asyncio.gather(oa.Runner.run(agent, "compare"), oa.Runner.run(agent, "compare")))

    first, second = asyncio.run(both())
    assert first.final_output == second.final_output == "compared"
    assert first.execution_id != second.execution_id
    statuses = [e.status for e in runtime.client.list_executions(name="twins").items]
    assert statuses == [ExecutionStatus.COMPLETED] * 2


def test_sdk_checks_of_the_models_type_see_the_model_the_user_gave(runtime: Runtime) -> None:
    # The SDK refuses output guardrails with server-managed history unless the model is a Chat
    # Completions model: inside a run it must see that model, not the durable wrapper around it.
    import openai
    from agents import GuardrailFunctionOutput, OpenAIChatCompletionsModel, output_guardrail

    from agentspan.testing import FakeOpenAIServer

    @output_guardrail
    async def fine(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    with FakeOpenAIServer(["checked"]) as fake:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
        agent = Agent(name="kept", instructions="Answer.", model=model, output_guardrails=[fine])
        result = oa.Runner.run_sync(agent, "hello", previous_response_id="resp_earlier")
        asyncio.run(client.close())
    assert result.final_output == "checked"
