"""The LangGraph adapter, in-process: existing compiled graphs run durably call by call.

A "crash" is a BaseException raised by a tool: it unwinds the worker without recording anything and
leaves the lease held, as a killed process would; the lease is then expired and a fresh worker
resumes (as in test_durable.py). The same story with real processes and SIGKILL is in
test_langgraph_crash.py.
"""

from __future__ import annotations

import collections
import operator
import threading
import time
import warnings
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import RetryPolicy, Send

import agentspan.adapters.langgraph as lg
from agentspan.adapters.langgraph._graph import execution_input
from agentspan.agents import AgentRuntime
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker


class Crash(BaseException):
    """Stands for the process dying."""


class Flaky(Exception):
    """A tool error a RetryPolicy retries."""


calls: collections.Counter[str] = collections.Counter()
crash_at: set[str] = set()
fail_once: set[str] = set()
delays: dict[str, float] = {}
settings: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    crash_at.clear()
    fail_once.clear()
    delays.clear()
    settings.clear()


@tool
def search(query: str) -> str:
    """Search for information."""
    calls[f"tool:{query}"] += 1
    time.sleep(delays.get(query, 0.0))
    if query in crash_at:
        crash_at.discard(query)
        raise Crash(query)
    if query in fail_once:
        fail_once.discard(query)
        raise Flaky(f"{query} failed")
    return f"results for {query}"


def react_turns(model: Any, messages: list[BaseMessage]) -> list[BaseMessage]:
    """A hand-written ReAct loop inside one node: model, then its ``search`` calls, until an answer;
    returns the messages it added."""
    added: list[BaseMessage] = []
    while True:
        reply = model.invoke(messages)
        messages.append(reply)
        added.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return added
        for call in reply.tool_calls:
            result = search.invoke({**call, "type": "tool_call"})
            messages.append(result)
            added.append(result)


class TurnModel(FakeMessagesListChatModel):
    """LangChain's fake list model, answering by turn (the number of AI messages in the conversation),
    so a resumed run gets the reply its turn needs whatever was asked before; supports tool binding."""

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        calls["model"] += 1
        calls[f"model:turn{turn}"] += 1
        return ChatResult(generations=[ChatGeneration(message=self.responses[turn])])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def _usage(i: int) -> dict[str, int]:
    return {"input_tokens": 10 * i, "output_tokens": i, "total_tokens": 11 * i}


def research(n: int, answer: str = "compared") -> TurnModel:
    """``n`` turns that each call search once (ids ``call_1``...), then the answer."""
    replies: list[BaseMessage] = [
        AIMessage(
            "",
            tool_calls=[{"name": "search", "args": {"query": f"q{i}"}, "id": f"call_{i}"}],
            usage_metadata=_usage(i),  # type: ignore[arg-type]
        )
        for i in range(1, n + 1)
    ]
    replies.append(AIMessage(answer, usage_metadata=_usage(n + 1)))  # type: ignore[arg-type]
    return TurnModel(responses=replies)


def loop_graph(model: BaseChatModel, name: str = "loop") -> Any:
    """A custom StateGraph whose single agent node loops over model and tool calls itself."""

    def agent(state: MessagesState) -> dict[str, Any]:
        messages = list(state["messages"])
        if "system" in settings:
            messages.insert(0, SystemMessage(settings["system"]))
        return {"messages": react_turns(model, messages)}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    return builder.compile(name=name)


def tool_node_graph(model: BaseChatModel, name: str = "tools-graph", **compile_args: Any) -> Any:
    """The classic agent ↔ ToolNode loop."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name=name, **compile_args)


class FanState(TypedDict):
    topics: list[str]
    notes: Annotated[list[str], operator.add]


PROMPT = {"messages": [("user", "compare the offers")]}


def start(service: Service, graph: Any, value: Any = PROMPT, *, key: str | None = None) -> str:
    name = lg.graph_name(graph)
    return service.create_execution(name, execution_input(value), idempotency_key=key).id


def work(service: Service, graph: Any, *, crash: bool = False) -> None:
    """One worker run: to the end, or to a crash after which its lease is expired."""
    worker = Worker(service, [lg.graph_function(graph)], lease_seconds=30)
    if crash:
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
    else:
        assert worker.run_once()


def without_ids(state: Any) -> Any:
    """The final state with the random message ids (uuid4 from add_messages) removed."""
    messages = [{**m, "data": {k: v for k, v in m["data"].items() if k != "id"}} for m in state["messages"]]
    return {**state, "messages": messages}


def uninterrupted(service: Service, graph: Any, value: Any = PROMPT) -> Any:
    saved = collections.Counter(calls)
    eid = start(service, graph, value, key="calm")
    work(service, graph)
    calls.clear()
    calls.update(saved)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    return execution.output


# --- the adapter's surface ------------------------------------------------------------------------------
def test_public_exports_are_frozen_and_sorted() -> None:
    assert (
        lg.__all__
        == sorted(lg.__all__)
        == [
            "DurableGraph",
            "durable",
            "graph_function",
            "graph_input",
            "graph_name",
            "install",
            "use_runtime",
        ]
    )


def test_graph_names_and_input_conversion() -> None:
    assert lg.graph_name(loop_graph(research(1))) == "loop"
    assert lg.graph_name(StateGraph(MessagesState).add_node("a", lambda s: s).set_entry_point("a").compile()) == (
        "langgraph"
    )
    assert lg.graph_name(loop_graph(research(1)), "mine") == "mine"
    assert lg.graph_input(PROMPT) == {
        "messages": [
            {
                "type": "human",
                "data": {
                    "content": "compare the offers",
                    "additional_kwargs": {},
                    "response_metadata": {},
                    "type": "human",
                    "name": None,
                    "id": None,
                },
            }
        ]
    }


# --- crash and resume -----------------------------------------------------------------------------------
def test_custom_agent_node_resumes_without_repeating_model_or_tool_calls(service: Service) -> None:
    graph = loop_graph(research(6))
    crash_at.add("q4")
    eid = start(service, graph)
    work(service, graph, crash=True)
    assert calls["model"] == 4 and calls["tool:q3"] == 1
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    # Turns 1-4 were answered before the crash and replayed after it; q4 was in doubt and ran again.
    assert all(calls[f"model:turn{turn}"] == 1 for turn in range(7)), calls
    assert calls["model"] == 7
    assert {q: calls[f"tool:{q}"] for q in ("q1", "q2", "q3", "q4", "q5", "q6")} == {
        "q1": 1, "q2": 1, "q3": 1, "q4": 2, "q5": 1, "q6": 1,
    }  # fmt: skip
    assert without_ids(execution.output) == without_ids(uninterrupted(service, graph))
    messages = execution.output["messages"]
    assert messages[-1]["data"]["content"] == "compared"
    assert messages[1]["data"]["tool_calls"][0]["id"] == "call_1"
    assert messages[1]["data"]["usage_metadata"] == _usage(1)
    journal = service.get_journal(eid)
    llm = [s for s in journal if s.kind == "llm" and s.status is StepStatus.COMPLETED]
    assert len(llm) == 7 and llm[0].usage == {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    assert not [e for e in service.get_events(eid) if e.type == "divergence"]


def test_create_react_agent_resumes_without_repeating_calls(service: Service) -> None:
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # create_react_agent is deprecated in LangGraph 1.x (still supported)
        warnings.simplefilter("ignore")
        graph = create_react_agent(research(5), [search], name="react")
    crash_at.add("q3")
    eid = start(service, graph)
    work(service, graph, crash=True)
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls["model"] == 6 and all(calls[f"model:turn{turn}"] == 1 for turn in range(6))
    assert [calls[f"tool:q{i}"] for i in range(1, 6)] == [1, 1, 2, 1, 1]
    assert without_ids(execution.output) == without_ids(uninterrupted(service, graph))
    assert execution.output["messages"][-1]["data"]["content"] == "compared"


def test_subgraph_and_retry_policy_are_replayed_faithfully(service: Service) -> None:
    """A flaky tool fails attempt 1 of the inner node; the RetryPolicy's attempt 2 is a new step, and a
    resume replays both attempts without running them again."""
    model = research(3)

    def agent(state: MessagesState) -> dict[str, Any]:
        messages = list(state["messages"])
        return {"messages": react_turns(model, messages)}

    inner = StateGraph(MessagesState)
    inner.add_node("agent", agent, retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
    inner.add_edge(START, "agent")
    outer = StateGraph(MessagesState)
    outer.add_node("research", inner.compile())
    outer.add_edge(START, "research")
    graph = outer.compile(name="nested")

    fail_once.add("q1")
    crash_at.add("q3")
    eid = start(service, graph)
    work(service, graph, crash=True)
    assert calls["tool:q1"] == 2 and calls["model:turn0"] == 2  # attempt 1 failed at q1, attempt 2 went on
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls["tool:q1"] == 2 and calls["tool:q2"] == 1 and calls["tool:q3"] == 2
    assert calls["model:turn0"] == 2 and calls["model:turn1"] == 1 and calls["model:turn3"] == 1
    failed = [s for s in service.get_journal(eid) if s.status is StepStatus.FAILED]
    assert [s.name for s in failed] == ["search"]
    assert not [e for e in service.get_events(eid) if e.type == "divergence"]
    assert execution.output["messages"][-1]["data"]["content"] == "compared"


def test_send_fan_out_resumes_each_branch_by_its_own_key(service: Service) -> None:
    model = TurnModel(responses=[AIMessage("summary")])

    def fan_out(state: FanState) -> list[Send]:
        return [Send("summarise", {"topics": [topic], "notes": []}) for topic in state["topics"]]

    def summarise(state: FanState) -> dict[str, Any]:
        topic = state["topics"][0]
        found = search.invoke({"query": topic})
        reply = model.invoke([("user", f"summarise {topic}: {found}")])
        return {"notes": [f"{topic}: {reply.content}"]}

    builder = StateGraph(FanState)
    builder.add_node("summarise", summarise)
    builder.add_conditional_edges(START, fan_out, ["summarise"])
    builder.add_edge("summarise", END)
    graph = builder.compile(name="fan-out")

    value = {"topics": ["a", "b", "c", "d"], "notes": []}
    delays.update({"a": 0.2, "b": 0.0, "c": 0.1, "d": 0.05})
    crash_at.add("c")
    eid = start(service, graph, value)
    work(service, graph, crash=True)
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert sorted(execution.output["notes"]) == [f"{t}: summary" for t in "abcd"]
    assert [calls[f"tool:{t}"] for t in "abcd"] == [1, 1, 2, 1]
    assert calls["model"] == 4


# --- keys -----------------------------------------------------------------------------------------------
def _tool_keys(service: Service, eid: str) -> dict[str, str]:
    return {
        s.input["tool_call_id"]: s.key
        for s in service.get_journal(eid)
        if s.kind == "tool" and s.status is StepStatus.COMPLETED
    }


def test_parallel_tool_calls_keep_their_keys_whatever_order_they_finish_in(service: Service) -> None:
    many = AIMessage(
        "", tool_calls=[{"name": "search", "args": {"query": f"p{i}"}, "id": f"call_{i}"} for i in range(4)]
    )
    graph = tool_node_graph(TurnModel(responses=[many, AIMessage("read them all")]), name="parallel")

    delays.update({"p0": 0.15, "p1": 0.0, "p2": 0.1, "p3": 0.05})
    first = start(service, graph, key="first")
    work(service, graph)
    delays.update({"p0": 0.0, "p1": 0.15, "p2": 0.05, "p3": 0.1})
    second = start(service, graph, key="second")
    work(service, graph)
    assert _tool_keys(service, first) == _tool_keys(service, second)
    assert len(set(_tool_keys(service, first).values())) == 4

    calls.clear()
    crash_at.add("p2")
    third = start(service, graph, key="third")
    work(service, graph, crash=True)
    work(service, graph)
    execution = service.get_execution(third)
    assert execution.status is ExecutionStatus.COMPLETED
    assert [calls[f"tool:p{i}"] for i in range(4)] == [1, 1, 2, 1]
    assert calls["model"] == 2
    assert _tool_keys(service, third) == _tool_keys(service, first)
    tools = [m for m in execution.output["messages"] if m["type"] == "tool"]
    assert [m["data"]["tool_call_id"] for m in tools] == [f"call_{i}" for i in range(4)]


def test_a_changed_prompt_after_a_crash_is_a_divergence(service: Service) -> None:
    graph = loop_graph(research(4), name="prompted")
    settings["system"] = "Be thorough."
    crash_at.add("q3")
    eid = start(service, graph)
    work(service, graph, crash=True)
    settings["system"] = "Be brief."
    work(service, graph)
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED
    assert [e for e in service.get_events(eid) if e.type == "divergence"]
    assert calls["model:turn0"] == 2, "the first model call was asked again with the new prompt"


# --- streaming, async, checkpointer ----------------------------------------------------------------------
def test_streamed_model_calls_are_recorded_and_replayed_chunk_by_chunk(service: Service) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("one two three")]))
    seen: list[list[str]] = []

    def writer(state: MessagesState) -> dict[str, Any]:
        chunks = list(model.stream(state["messages"]))
        seen.append([str(c.content) for c in chunks])
        merged: AIMessageChunk = chunks[0]
        for chunk in chunks[1:]:
            merged = merged + chunk
        return {"messages": [AIMessage(str(merged.content))]}

    def finish(state: MessagesState) -> dict[str, Any]:
        search.invoke({"query": "done"})
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("writer", writer)
    builder.add_node("finish", finish)
    builder.add_edge(START, "writer")
    builder.add_edge("writer", "finish")
    graph = builder.compile(name="streaming")
    crash_at.add("done")
    eid = start(service, graph)
    work(service, graph, crash=True)
    work(service, graph)  # the model's iterator is exhausted: a second real call would fail
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert seen[0] == seen[1] == ["one", " ", "two", " ", "three"]
    assert execution.output["messages"][-1]["data"]["content"] == "one two three"


def test_async_graph_with_async_tools_runs_durably(service: Service) -> None:
    @tool
    async def lookup(query: str) -> str:
        """Look something up."""
        calls[f"tool:{query}"] += 1
        if query in crash_at:
            crash_at.discard(query)
            raise Crash(query)
        return f"found {query}"

    replies: list[BaseMessage] = [
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"query": f"a{i}"}, "id": f"call_{i}"}]) for i in (1, 2)
    ]
    model = TurnModel(responses=[*replies, AIMessage("done")])

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(name="async-graph")
    crash_at.add("a2")
    eid = start(service, graph)
    work(service, graph, crash=True)
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert (calls["model"], calls["tool:a1"], calls["tool:a2"]) == (3, 1, 2)
    assert execution.output["messages"][-1]["data"]["content"] == "done"


def test_a_graph_with_its_own_checkpointer_resumes_from_the_run_start(service: Service) -> None:
    saver = InMemorySaver()
    graph = tool_node_graph(research(3), name="saved", checkpointer=saver)
    crash_at.add("q2")
    eid = start(service, graph)
    work(service, graph, crash=True)
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls["model"] == 4 and [calls[f"tool:q{i}"] for i in (1, 2, 3)] == [1, 2, 1]
    thread = graph.get_state({"configurable": {"thread_id": eid}})
    assert len(thread.values["messages"]) == len(execution.output["messages"]) == 8
    assert thread.next == ()


# --- outside a run, and the AgentRuntime entry point -----------------------------------------------------
def test_outside_an_agentspan_run_the_hooks_are_inert() -> None:
    lg.install()
    lg.install()  # idempotent
    assert vars(BaseChatModel)["_generate_with_cache"]._self_wrapper.__module__ == "agentspan.adapters.langgraph._patch"
    graph = loop_graph(research(2))
    first = graph.invoke(PROMPT)
    second = graph.invoke(PROMPT)
    assert calls["model"] == 6 and calls["tool:q1"] == 2, "nothing is memoised outside a run"
    assert [m.content for m in first["messages"]] == [m.content for m in second["messages"]]
    assert isinstance(first["messages"][2], ToolMessage) and first["messages"][-1].content == "compared"
    with pytest.raises(Crash):  # errors pass through untouched
        crash_at.add("q1")
        graph.invoke(PROMPT)


def test_agent_runtime_runs_a_compiled_graph(tmp_path: Path) -> None:
    graph = loop_graph(research(2), name="researcher-graph")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        result = runtime.run(graph, PROMPT, timeout=30)
        renamed = runtime.run(graph, PROMPT, name="other", timeout=30)
    assert result.is_success and result.output == "compared"
    assert [m["type"] for m in result.messages] == ["human", "ai", "tool", "ai", "tool", "ai"]
    assert [c["result"] for c in result.tool_calls] == ["results for q1", "results for q2"]
    assert result.token_usage.total_tokens == 11 + 22 + 33
    assert result.structured["messages"] == result.messages
    assert renamed.output == "compared" and renamed.execution_id != result.execution_id


def test_agent_runtime_runs_a_react_agent_with_chat_openai(tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    script = FakeOpenAIServer.research_script(3, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    with FakeOpenAIServer(script) as fake:
        model = ChatOpenAI(model="gpt-4o-mini", base_url=fake.base_url, api_key="test", max_retries=0)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = create_react_agent(model, [search])
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(graph, PROMPT, timeout=30)
            eid = result.execution_id
            journal = runtime.client.get_journal(eid)
        requests = fake.request_count
    assert result.is_success and result.output == "compared"
    assert requests == 4 and [calls[f"tool:q{i}"] for i in (1, 2, 3)] == [1, 1, 1]
    llm = [s for s in journal if s.kind == "llm"]
    assert [s.name for s in llm] == ["gpt-4o-mini"] * 4
    assert all(s.usage and s.usage["total_tokens"] > 0 for s in llm)
    ai = [m for m in result.messages if m["type"] == "ai"]
    assert ai[0]["data"]["tool_calls"][0]["id"] == "call_1"
    assert result.token_usage.total_tokens == sum(s.usage["total_tokens"] for s in llm if s.usage)


def test_threads_do_not_share_an_active_run() -> None:
    """A graph invoked from a thread of its own while nothing durable runs stays plain."""
    graph = loop_graph(research(1))
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(graph.invoke(PROMPT)))
    thread.start()
    thread.join()
    assert out[0]["messages"][-1].content == "compared" and calls["model"] == 2
