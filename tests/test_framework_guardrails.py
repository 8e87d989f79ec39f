"""Guardrails on framework runs (LangGraph graphs, OpenAI Agents SDK agents): the run's final answer is
checked inside the execution, each check a recorded step; retry asks the framework again in the same
execution, fix replaces the answer, raise fails the run with ``finish_reason="guardrail"``.

The models are the frameworks' real OpenAI clients (``ChatOpenAI``, ``OpenAIChatCompletionsModel``)
against a :class:`FakeOpenAIServer`, which answers by turn (the number of assistant messages so far).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from processes import TESTS, wait_until

from agentspan.agents import AgentRuntime, Guardrail, GuardrailResult, RegexGuardrail
from agentspan.errors import ConfigurationError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import FakeOpenAIServer

CARD = r"\b\d{4}(?:[ -]?\d{4}){3}\b"
LEAK = "Your card 4111 1111 1111 1111 is on file."
CLEAN = "Your card ending in the last four digits is on file."
ASKED_AGAIN = "Your answer was not accepted: Do not write card numbers. Answer again."


def card_guard(on_fail: str, name: str = "no_card", **kwargs: Any) -> RegexGuardrail:
    return RegexGuardrail(CARD, name=name, on_fail=on_fail, message="Do not write card numbers.", **kwargs)


def chat_graph(fake: FakeOpenAIServer, **compile_args: Any) -> Any:
    """A one-node chat graph calling ``ChatOpenAI`` (LangGraph's ``MessagesState``)."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]

    def chat(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(name="card-chat", **compile_args)


def sdk_agent(fake: FakeOpenAIServer, name: str = "card-agent") -> Agent[Any]:
    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
    return Agent(
        name=name, instructions="Help.", model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    )


def guardrail_steps(runtime: AgentRuntime, execution_id: str) -> list[Any]:
    return [s for s in runtime.client.get_journal(execution_id) if s.kind == "guardrail"]


def user_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


# --- LangGraph ---------------------------------------------------------------------------------------------
def test_langgraph_retry_asks_the_model_again_with_the_message_and_returns_the_clean_answer(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK, CLEAN]) as fake:
        graph = chat_graph(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "what card do I have?", guardrails=[card_guard("retry")], timeout=30)
            checks = guardrail_steps(runtime, result.execution_id)
            execution = runtime.client.get_execution(result.execution_id)
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == CLEAN
    assert len(requests) == 2, "one model call, then one more after the failed check"
    assert user_texts(requests[1]) == ["what card do I have?", ASKED_AGAIN]
    assert [m["role"] for m in requests[1]["messages"]] == ["user", "assistant", "user"]
    assert [(s.name, s.output["passed"]) for s in checks] == [("no_card", False), ("no_card", True)]
    assert execution.input["guardrails"] == ["no_card"]


def test_langgraph_retry_on_a_checkpointed_thread_continues_the_thread(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK, CLEAN]) as fake:
        graph = chat_graph(fake, checkpointer=InMemorySaver())
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(
                graph, "what card?", config={"configurable": {"thread_id": "t1"}},
                guardrails=[card_guard("retry")], timeout=30,
            )  # fmt: skip
        requests = fake.requests
        thread = graph.get_state({"configurable": {"thread_id": "t1"}}).values["messages"]
    assert result.is_success, result.error
    assert result.output == CLEAN and len(requests) == 2
    assert [m["role"] for m in requests[1]["messages"]] == ["user", "assistant", "user"]
    assert [type(m).__name__ for m in thread] == ["HumanMessage", "AIMessage", "HumanMessage", "AIMessage"]


def test_langgraph_fix_redacts_the_answer_in_the_output_and_the_final_state(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        graph = chat_graph(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "what card?", guardrails=[card_guard("fix")], timeout=30)
        requests = fake.request_count
    assert result.is_success, result.error
    assert result.output == "Your card [REDACTED] is on file."
    assert result.messages[-1]["data"]["content"] == result.output
    assert "4111" not in str(result.structured)
    assert requests == 1


@pytest.mark.parametrize("framework", ["langgraph", "openai_agents"])
def test_raise_fails_the_run_with_finish_reason_guardrail(tmp_path: Path, framework: str) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        target = chat_graph(fake) if framework == "langgraph" else sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(target, "what card?", guardrails=[card_guard("raise")], timeout=30)
    assert result.status is ExecutionStatus.FAILED
    assert result.finish_reason == "guardrail"
    assert result.error is not None and "GuardrailError" in result.error and "no_card" in result.error
    assert result.output == ""


def test_langgraph_spent_retries_fail_the_run_after_max_retries_more_model_calls(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK, LEAK, LEAK]) as fake:
        graph = chat_graph(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "what card?", guardrails=[card_guard("retry", max_retries=2)], timeout=30)
        requests = fake.request_count
    assert result.finish_reason == "guardrail"
    assert result.error is not None and "after 2 retries" in result.error
    assert requests == 3


def test_langgraph_input_guardrail_fixes_the_prompt_before_the_model_sees_it(tmp_path: Path) -> None:
    guard = RegexGuardrail(CARD, name="no_card_in", position="input", on_fail="fix")
    with FakeOpenAIServer([CLEAN]) as fake:
        graph = chat_graph(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "my card is 4111 1111 1111 1111", guardrails=[guard], timeout=30)
        requests = fake.requests
    assert result.is_success, result.error
    assert user_texts(requests[0]) == ["my card is [REDACTED]"]


def test_guardrails_on_a_graph_without_messages_are_refused_at_start(tmp_path: Path) -> None:
    from typing import TypedDict

    class Count(TypedDict):
        n: int

    builder = StateGraph(Count)
    builder.add_node("inc", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "inc")
    graph = builder.compile()
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        with pytest.raises(ConfigurationError, match="no messages channel"):
            runtime.start(graph, {"n": 1}, guardrails=[card_guard("fix")])
        assert runtime.client.list_executions().items == [], "nothing was started"


# --- OpenAI Agents SDK -------------------------------------------------------------------------------------
def test_openai_agent_retry_runs_the_agent_again_on_its_items_plus_the_message(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK, CLEAN]) as fake:
        agent = sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "what card?", guardrails=[card_guard("retry")], timeout=30)
            checks = guardrail_steps(runtime, result.execution_id)
            llm = [s for s in runtime.client.get_journal(result.execution_id) if s.kind == "llm"]
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == CLEAN
    assert len(requests) == 2 and len(llm) == 2
    assert [m["role"] for m in requests[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert user_texts(requests[1]) == ["what card?", ASKED_AGAIN]
    assert [s.output["passed"] for s in checks] == [False, True]
    assert result.token_usage.total_tokens == sum(s.usage["total_tokens"] for s in llm if s.usage)


def test_openai_agent_fix_redacts_the_final_output(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        agent = sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "what card?", guardrails=[card_guard("fix")], timeout=30)
    assert result.is_success, result.error
    assert result.output == "Your card [REDACTED] is on file."


def test_openai_agent_input_guardrail_raise_stops_the_run_before_any_model_call(tmp_path: Path) -> None:
    guard = RegexGuardrail(CARD, name="no_card_in", position="input", on_fail="retry")
    with FakeOpenAIServer([CLEAN]) as fake:
        agent = sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "card 4111 1111 1111 1111", guardrails=[guard], timeout=30)
        requests = fake.request_count
    assert result.finish_reason == "guardrail", "retry on a prompt acts as raise: nothing can be asked again"
    assert requests == 0


def test_runs_with_other_guardrails_are_other_executions(tmp_path: Path) -> None:
    with FakeOpenAIServer([CLEAN], by_turn=True) as fake:
        agent = sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            plain = runtime.run(agent, "hi", timeout=30)
            fixed = runtime.run(agent, "hi", guardrails=[card_guard("fix")], timeout=30)
            raising = runtime.run(agent, "hi", guardrails=[card_guard("raise", name="strict")], timeout=30)
            inputs = [runtime.client.get_execution(r.execution_id).input for r in (plain, fixed, raising)]
    assert inputs == [
        {"prompt": "hi"},
        {"prompt": "hi", "guardrails": ["no_card"]},
        {"prompt": "hi", "guardrails": ["strict"]},
    ]
    assert len({plain.execution_id, fixed.execution_id, raising.execution_id}) == 3


def test_an_execution_naming_guardrails_this_process_lacks_fails_saying_so(tmp_path: Path) -> None:
    with FakeOpenAIServer([CLEAN]) as fake:
        agent = sdk_agent(fake, name="lacking")
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            execution = runtime.client.create_execution("lacking", {"prompt": "hi", "guardrails": ["elsewhere"]})
            from agentspan.adapters.openai_agents import agent_function

            runtime._runtime.ensure_worker(agent_function(agent))
            final = runtime.handle(execution.id).wait(timeout=30)
        requests = fake.request_count
    assert final.status is ExecutionStatus.FAILED
    assert final.error is not None and "elsewhere" in final.error and "guardrails=" in final.error
    assert requests == 0


def test_bad_guardrails_and_guardrails_on_a_native_agent_are_refused(tmp_path: Path) -> None:
    from agentspan.agents import Agent as NativeAgent

    with FakeOpenAIServer([CLEAN]) as fake, AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        with pytest.raises(ConfigurationError, match="Guardrail objects"):
            runtime.start(sdk_agent(fake), "hi", guardrails=["no_card"])  # type: ignore[list-item]
        with pytest.raises(ConfigurationError, match="two guardrails are named"):
            runtime.start(sdk_agent(fake), "hi", guardrails=[card_guard("fix"), card_guard("raise")])
        with pytest.raises(ConfigurationError, match="native Agent"):
            runtime.start(NativeAgent(name="n", model="openai/gpt-4o-mini"), "hi", guardrails=[card_guard("fix")])
        assert runtime.client.list_executions().items == []


def test_an_async_guardrail_function_and_a_bool_verdict_work_on_a_framework_run(tmp_path: Path) -> None:
    async def short(text: str) -> GuardrailResult:
        return GuardrailResult(passed=len(text) < 40, message="Answer in under 40 characters.")

    with FakeOpenAIServer([CLEAN, "On file."]) as fake:
        agent = sdk_agent(fake)
        guards = [
            Guardrail(short, name="short"),
            Guardrail(lambda t: "file" in t, name="mentions_file", on_fail="raise"),
        ]
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "what card?", guardrails=guards, timeout=30)
            checks = [(s.name, s.output["passed"]) for s in guardrail_steps(runtime, result.execution_id)]
    assert result.output == "On file."
    assert checks == [("short", False), ("short", True), ("mentions_file", True)]


# --- a real crash -------------------------------------------------------------------------------------------
def test_killed_after_two_failed_checks_the_rerun_repeats_no_check_and_no_model_call(tmp_path: Path) -> None:
    """The program's guardrail fails twice; the third answer calls a tool that blocks until the test
    has killed the process (SIGKILL). Run again, the program resumes: the two checks and three model
    calls are replayed, only the tool in flight runs again, then one more model call and one check."""
    log, db, gate = tmp_path / "guard.log", tmp_path / "program.db", tmp_path / "gate"
    script: list[Any] = [LEAK, LEAK, [("lookup", {"account": "a1"})], CLEAN]
    with FakeOpenAIServer(script) as fake:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        env.update(OPENAI_BASE_URL=fake.base_url, AGENT_LOG=str(log), AGENTSPAN_DB=str(db), GATE=str(gate))
        env.update(OPENAI_AGENTS_DISABLE_TRACING="1")
        env.pop("OPENAI_API_KEY", None)
        env.pop("AGENTSPAN_SERVER_URL", None)
        program = [sys.executable, str(TESTS / "guarded_program.py")]
        first = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: log.exists() and "lookup a1" in log.read_text(), "the tool call of the third answer", 120)
        first.send_signal(signal.SIGKILL)
        first.wait()
        requests_at_kill = fake.request_count
        gate.touch()
        second = subprocess.run(program, env=env, capture_output=True, text=True, timeout=120)
        service = Service(SQLiteStore(db))
        try:
            executions = service.list_executions(name="guarded-agent").items
            journal = service.get_journal(executions[0].id)
        finally:
            service.close()
        resumed = fake.requests[requests_at_kill:]
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == CLEAN
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    checks = [(label, pid) for label, pid in lines if label.startswith("check")]
    assert [label for label, _ in checks] == ["check fail", "check fail", "check pass"]
    assert checks[0][1] == checks[1][1] == str(first.pid) and checks[2][1] != str(first.pid)
    assert requests_at_kill == 3 and len(resumed) == 1, "only the model call after the tool was asked for again"
    guards = [s for s in journal if s.kind == "guardrail"]
    assert [s.output["passed"] for s in guards] == [False, False, True]
    assert all(s.status is StepStatus.COMPLETED for s in journal)


def test_the_react_agent_retry_keeps_each_tool_call_once(tmp_path: Path) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    ran: list[str] = []

    @tool
    def lookup(account: str) -> str:
        """Look up an account."""
        ran.append(account)
        return f"account {account}: card 4111 1111 1111 1111"

    script: list[Any] = [[("lookup", {"account": "a1"})], LEAK, CLEAN]
    with FakeOpenAIServer(script) as fake:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = create_react_agent(model, [lookup], name="react-card")
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "what card?", guardrails=[card_guard("retry")], timeout=30)
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == CLEAN
    assert ran == ["a1"], "the tool ran once: the retry asks the model again, it does not rerun the graph's work"
    assert len(requests) == 3
    assert [m["role"] for m in requests[2]["messages"]] == ["user", "assistant", "tool", "assistant", "user"]


# --- human, and async graphs -------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", ["langgraph", "openai_agents"])
def test_human_guardrail_waits_and_a_persons_edit_becomes_the_output(tmp_path: Path, framework: str) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        target = chat_graph(fake) if framework == "langgraph" else sdk_agent(fake)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            handle = runtime.start(target, "what card?", guardrails=[card_guard("human")])
            wait_until(lambda: handle.pending_approvals(), "the guardrail's wait")
            pending = handle.pending_approvals()
            assert runtime.client.get_execution(handle.execution_id).status is ExecutionStatus.WAITING
            handle.approve(arguments={"output": "Card on file."})
            result = handle.wait(timeout=30)
            approvals = [s for s in runtime.client.get_journal(handle.execution_id) if s.kind == "approval"]
        requests = fake.request_count
    assert [(p.tool, p.arguments) for p in pending] == [("guardrail:no_card", {"output": LEAK})]
    assert result.is_success, result.error
    assert result.output == "Card on file."
    assert requests == 1, "the model was not asked again after the person's decision"
    assert approvals[0].input["framework"] == framework


def test_an_async_graph_retries_like_a_sync_one(tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    with FakeOpenAIServer([LEAK, CLEAN]) as fake:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]

        async def chat(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        builder = StateGraph(MessagesState)
        builder.add_node("chat", chat)
        builder.add_edge(START, "chat")
        graph = builder.compile(name="async-card-chat")
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, "what card?", guardrails=[card_guard("retry")], timeout=30)
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == CLEAN and len(requests) == 2
    assert user_texts(requests[1]) == ["what card?", ASKED_AGAIN]


class Crash(BaseException):
    """Stands for the process dying in a tool: it unwinds the worker without recording anything."""


def test_a_graph_crashed_after_two_failed_checks_resumes_without_repeating_them(service: Service) -> None:
    """A ReAct graph whose guardrail fails twice; the third answer's tool crashes the worker. A fresh
    worker replays the three model calls and the two checks, runs the tool again, and finishes."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    from agentspan.adapters._guardrails import guarded_input
    from agentspan.adapters.langgraph import graph_function
    from agentspan.adapters.langgraph._graph import execution_input
    from agentspan.worker import Worker

    checked: list[bool] = []
    crashes = [True]

    def no_card(text: str) -> GuardrailResult:
        checked.append("4111" not in text)
        return GuardrailResult(passed=checked[-1], message="Do not write card numbers.")

    @tool
    def lookup(account: str) -> str:
        """Look up an account."""
        if crashes.pop() if crashes else False:
            raise Crash(account)
        return f"account {account} has a card on file"

    script: list[Any] = [LEAK, LEAK, [("lookup", {"account": "a1"})], CLEAN]
    with FakeOpenAIServer(script) as fake:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = create_react_agent(model, [lookup], name="crash-card")
        fn = graph_function(graph)
        data = guarded_input(execution_input("what card?"), [Guardrail(no_card)], function_name="crash-card")
        eid = service.create_execution("crash-card", data).id
        first = Worker(service, [fn], lease_seconds=30)
        with pytest.raises(Crash):
            first.run_once()
        assert service.expire_leases([first.worker_id])
        requests_at_crash, checks_at_crash = fake.request_count, list(checked)
        assert Worker(service, [fn], lease_seconds=30).run_once()
        requests = fake.request_count
    final = service.get_execution(eid)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["messages"][-1]["data"]["content"] == CLEAN
    assert checks_at_crash == [False, False] and checked == [False, False, True], "no check ran twice"
    assert (requests_at_crash, requests) == (3, 4), "the resumed run asked only for the answer after the tool"
    guards = [s for s in service.get_journal(eid) if s.kind == "guardrail"]
    assert [s.output["passed"] for s in guards] == [False, False, True]
