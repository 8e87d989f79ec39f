"""Guardrails on native agents: every check a recorded step; retry asks the model again in the same
execution; fix, human and raise; tool guardrails; LLM guardrails; bad configuration."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import wait_until

from agentspan.agents import (
    Agent,
    AgentRuntime,
    Guardrail,
    GuardrailResult,
    LLMGuardrail,
    RegexGuardrail,
    tool,
)
from agentspan.agents.models import OpenAIModel
from agentspan.errors import ConfigurationError, InvalidInputError
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer, ScriptedModel

CARD = r"\b(?:\d[ -]?){13,16}\b"
LEAK = "Your card is 4111 1111 1111 1111."

calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@pytest.fixture
def runtime(db_path: Path) -> Iterator[AgentRuntime]:
    rt = AgentRuntime(db=db_path, serve_http=False, lease_seconds=5)
    yield rt
    rt.close()


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    calls[order] += 1
    return f"order {order}: shipped"


def _fails_twice() -> Guardrail:
    seen: list[str] = []

    def polite(text: str) -> GuardrailResult:
        seen.append(text)
        return GuardrailResult(passed=len(seen) > 2, message=f"attempt {len(seen)} is rude")

    return Guardrail(polite, name="polite")


def _guardrail_steps(runtime: AgentRuntime, execution_id: str) -> list[Any]:
    return [s for s in runtime.client.get_journal(execution_id) if s.kind == "guardrail"]


# --- output guardrails ------------------------------------------------------------------------------------
def test_an_output_guardrail_failing_twice_asks_again_in_the_same_execution(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("lookup", {"order": "A-1"})], "rude one", "rude two", "Your order has shipped."])
    agent = Agent(name="support", model=model, tools=[lookup], guardrails=[_fails_twice()])
    result = runtime.run(agent, "where is A-1?")
    assert result.is_success and result.output == "Your order has shipped."
    # One tool turn, then three answers: exactly three model calls answer, the tool runs once.
    assert len(model.requests) == 4
    assert calls == {"A-1": 1}
    retried = model.requests[2].messages
    assert retried[-2].role == "assistant" and retried[-2].content == "rude one"
    assert retried[-1].role == "user"
    assert retried[-1].content == "Your answer was not accepted: attempt 1 is rude. Answer again."
    steps = _guardrail_steps(runtime, result.execution_id)
    assert [(s.name, s.output["passed"], s.attempt) for s in steps] == [
        ("polite", False, 1),
        ("polite", False, 1),
        ("polite", True, 1),
    ]
    assert [s.input["text"] for s in steps] == ["rude one", "rude two", "Your order has shipped."]
    assert len({r.execution_id for r in [result]}) == 1


def test_a_regex_guardrail_with_retry_keeps_a_leaked_card_number_out_of_the_output(runtime: AgentRuntime) -> None:
    model = ScriptedModel([LEAK, "I cannot share card numbers."])
    agent = Agent(name="billing", model=model, guardrails=[RegexGuardrail(CARD, name="no_cards")])
    result = runtime.run(agent, "what is my card number?")
    assert result.is_success and result.output == "I cannot share card numbers."
    assert "4111" not in result.output
    assert len(model.requests) == 2
    assert "not allowed" in (model.requests[1].messages[-1].content or "")


def test_a_regex_guardrail_with_fix_redacts_the_card_number(runtime: AgentRuntime) -> None:
    model = ScriptedModel([LEAK])
    guard = RegexGuardrail(CARD, name="no_cards", on_fail="fix", redaction="[card]")
    result = runtime.run(Agent(name="billing", model=model, guardrails=[guard]), "card?")
    assert result.is_success and result.output == "Your card is [card]."
    assert result.messages[-1]["content"] == "Your card is [card]."
    assert len(model.requests) == 1


def test_spent_retries_fail_the_run_with_finish_reason_guardrail(runtime: AgentRuntime) -> None:
    model = ScriptedModel([LEAK, LEAK, LEAK])
    guard = RegexGuardrail(CARD, name="no_cards", max_retries=2)
    result = runtime.run(Agent(name="billing", model=model, guardrails=[guard]), "card?")
    assert result.status is ExecutionStatus.FAILED
    assert result.finish_reason == "guardrail" and result.output == ""
    assert result.error is not None and "no_cards" in result.error and "after 2 retries" in result.error
    assert len(model.requests) == 3


def test_retries_stop_at_max_turns(runtime: AgentRuntime) -> None:
    model = ScriptedModel([LEAK, LEAK])
    agent = Agent(name="billing", model=model, max_turns=2, guardrails=[RegexGuardrail(CARD, name="no_cards")])
    result = runtime.run(agent, "card?")
    assert result.finish_reason == "max_turns" and result.output == ""
    assert len(model.requests) == 2


def test_raise_fails_the_run_naming_the_guardrail(runtime: AgentRuntime) -> None:
    guard = Guardrail(lambda text: GuardrailResult(passed=False, message="off topic"), name="topic", on_fail="raise")
    model = ScriptedModel(["about cats"])
    result = runtime.run(Agent(name="focused", model=model, guardrails=[guard]), "tell me")
    assert result.status is ExecutionStatus.FAILED and result.finish_reason == "guardrail"
    assert result.error is not None and "guardrail topic failed on the answer: off topic" in result.error
    assert [s.status for s in _guardrail_steps(runtime, result.execution_id)] == [StepStatus.COMPLETED]


def test_a_plain_bool_guardrail_and_a_guardrail_passing_leave_the_answer(runtime: AgentRuntime) -> None:
    model = ScriptedModel(["fine"])
    guard = Guardrail(lambda text: "fine" in text, name="has_fine")
    result = runtime.run(Agent(name="ok", model=model, guardrails=[guard]), "go")
    assert result.is_success and result.output == "fine"


# --- human -------------------------------------------------------------------------------------------------
def _human_run(runtime: AgentRuntime, name: str) -> Any:
    guard = RegexGuardrail(CARD, name="no_cards", on_fail="human")
    agent = Agent(name=name, model=ScriptedModel([LEAK]), guardrails=[guard])
    handle = runtime.start(agent, "card?")
    waiting = _wait_for_approval(handle)
    assert waiting.tool == "guardrail:no_cards" and waiting.arguments == {"output": LEAK}
    return handle, waiting


def _wait_for_approval(handle: Any) -> Any:
    wait_until(lambda: handle.pending_approvals(), "the run to wait for a person")
    return handle.pending_approvals()[0]


def test_human_approve_keeps_the_answer(runtime: AgentRuntime) -> None:
    handle, waiting = _human_run(runtime, "human_ok")
    wait_until(lambda: handle.status is ExecutionStatus.WAITING, "the run to wait, holding no worker")
    handle.approve(waiting.call_id)
    result = handle.wait(timeout=30)
    assert result.is_success and result.output == LEAK


def test_human_edit_replaces_the_answer(runtime: AgentRuntime) -> None:
    handle, waiting = _human_run(runtime, "human_edit")
    with pytest.raises(InvalidInputError):  # the edit must be {"output": text}: refused, still waiting
        handle.approve(waiting.call_id, arguments={"text": "Your card ends in 1111."})
    assert handle.pending_approvals() == [waiting]
    handle.approve(waiting.call_id, arguments={"output": "Your card ends in 1111."})
    result = handle.wait(timeout=30)
    assert result.is_success and result.output == "Your card ends in 1111."


def test_human_reject_fails_the_run(runtime: AgentRuntime) -> None:
    handle, waiting = _human_run(runtime, "human_no")
    handle.reject(waiting.call_id, "never show card numbers")
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.FAILED and result.finish_reason == "guardrail"
    assert result.error is not None and "never show card numbers" in result.error


# --- input guardrails ---------------------------------------------------------------------------------------
def test_an_input_guardrail_with_fix_replaces_the_prompt_the_model_sees(runtime: AgentRuntime) -> None:
    model = ScriptedModel(["noted"])
    guard = RegexGuardrail(CARD, name="no_cards_in", position="input", on_fail="fix", redaction="[card]")
    result = runtime.run(Agent(name="intake", model=model, guardrails=[guard]), "my card is 4111111111111111")
    assert result.is_success
    assert model.requests[0].messages[-1].content == "my card is [card]"


def test_an_input_guardrail_with_retry_fails_the_run_before_any_model_call(runtime: AgentRuntime) -> None:
    model = ScriptedModel(["never"])
    guard = RegexGuardrail(CARD, name="no_cards_in", position="input")
    result = runtime.run(Agent(name="intake2", model=model, guardrails=[guard]), "4111111111111111")
    assert result.finish_reason == "guardrail"
    assert result.error is not None and "no_cards_in failed on the prompt" in result.error
    assert model.requests == []


# --- tool guardrails ----------------------------------------------------------------------------------------
@tool(guardrails=[RegexGuardrail(r"DROP", name="no_drop", position="input")])
def query_db(sql: str) -> str:
    """Run a query."""
    calls[sql] += 1
    return f"rows for {sql}"


@tool(guardrails=[RegexGuardrail(r"secret", name="no_secret_args", position="input", on_fail="fix", redaction="x")])
def fetch_note(topic: str) -> str:
    """Fetch a note."""
    calls[topic] += 1
    return f"note on {topic}"


@tool(
    guardrails=[
        RegexGuardrail(CARD, name="result_cards", on_fail="fix", redaction="[card]"),
        RegexGuardrail(r"password", name="result_password"),
    ]
)
def profile(user: str) -> str:
    """Read a user's profile."""
    calls[user] += 1
    if user == "pw":
        return "password: hunter2"
    return f"{user} pays with 4111 1111 1111 1111"


def test_a_tool_input_guardrail_refuses_arguments_and_the_model_calls_again(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("query_db", {"sql": "DROP TABLE users"})], [("query_db", {"sql": "SELECT 1"})], "done"])
    result = runtime.run(Agent(name="dba", model=model, tools=[query_db]), "clean up")
    assert result.is_success
    assert calls == {"SELECT 1": 1}, "the refused call never ran"
    refused = result.tool_calls[0]["result"]
    assert refused.startswith("Error: guardrail no_drop refused these arguments:")
    assert "Call query_db again with other arguments." in refused
    assert result.tool_calls[1]["result"] == "rows for SELECT 1"


def test_a_tool_input_guardrail_with_fix_runs_the_tool_with_the_fixed_arguments(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("fetch_note", {"topic": "secret plans"})], "ok"])
    result = runtime.run(Agent(name="notes", model=model, tools=[fetch_note]), "go")
    assert calls == {"x plans": 1}
    assert result.tool_calls[0]["result"] == "note on x plans"
    tool_step = next(s for s in runtime.client.get_journal(result.execution_id) if s.kind == "tool")
    assert tool_step.input["arguments"] == {"topic": "x plans"}


def test_a_tool_output_guardrail_fixes_or_withholds_the_result(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("profile", {"user": "ann"}), ("profile", {"user": "pw"})], "summarised"])
    result = runtime.run(Agent(name="profiles", model=model, tools=[profile]), "go")
    assert result.is_success
    by_user = {json.loads(c["arguments"])["user"]: c["result"] for c in result.tool_calls}
    assert by_user["ann"] == "ann pays with [card]"
    assert by_user["pw"].startswith("Error: guardrail result_password withheld the result of profile:")
    assert "hunter2" not in json.dumps(model.requests[1].model_dump())
    assert calls == {"ann": 1, "pw": 1}
    steps = _guardrail_steps(runtime, result.execution_id)
    assert sorted(s.name for s in steps) == ["result_cards", "result_cards", "result_password", "result_password"]


def test_a_tool_guardrail_that_raises_fails_the_run(runtime: AgentRuntime) -> None:
    @tool(guardrails=[RegexGuardrail(r"rm -rf", name="no_rm", position="input", on_fail="raise")])
    def shell(command: str) -> str:
        """Run a shell command."""
        calls[command] += 1
        return "ok"

    model = ScriptedModel([[("shell", {"command": "rm -rf /"})], "never"])
    result = runtime.run(Agent(name="ops", model=model, tools=[shell]), "go")
    assert result.status is ExecutionStatus.FAILED and result.finish_reason == "guardrail"
    assert result.error is not None and "no_rm failed on the arguments of shell" in result.error
    assert calls == {} and len(model.requests) == 1


def test_a_fix_that_breaks_a_tools_arguments_fails_the_run_saying_so(runtime: AgentRuntime) -> None:
    @tool(guardrails=[RegexGuardrail(r'"topic"', name="mangler", position="input", on_fail="fix", redaction="?")])
    def note(topic: str) -> str:
        """Fetch a note."""
        calls[topic] += 1
        return "note"

    model = ScriptedModel([[("note", {"topic": "a"})], "never"])
    result = runtime.run(Agent(name="mangled", model=model, tools=[note]), "go")
    assert result.finish_reason == "guardrail" and calls == {}
    assert result.error is not None and "mangler fixed the arguments of note into ones the tool does not take" in (
        result.error
    )


# --- sub-agents and structured output --------------------------------------------------------------------------
def test_a_sub_agents_guardrails_check_inside_its_step(runtime: AgentRuntime) -> None:
    sub_model = ScriptedModel([LEAK, "no numbers here"])
    sub = Agent(name="clerk", model=sub_model, guardrails=[RegexGuardrail(CARD, name="no_cards")])
    model = ScriptedModel([[("clerk", {"request": "card?"})], "the clerk says no numbers here"])
    result = runtime.run(Agent(name="boss", model=model, agents=[sub]), "go")
    assert result.is_success and result.tool_calls[0]["result"] == "no numbers here"
    steps = _guardrail_steps(runtime, result.execution_id)
    agent_step = next(s for s in runtime.client.get_journal(result.execution_id) if s.kind == "agent")
    assert len(steps) == 2 and all(s.parent == agent_step.key for s in steps)


def test_structured_output_is_checked_as_text_and_then_parsed(runtime: AgentRuntime) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    model = ScriptedModel(['{"text": "' + LEAK + '"}'])
    guard = RegexGuardrail(CARD, name="no_cards", on_fail="fix", redaction="[card]")
    agent = Agent(name="typed", model=model, output_type=Answer, guardrails=[guard])
    result = runtime.run(agent, "go")
    assert result.structured == Answer(text="Your card is [card].")


# --- LLM guardrails ----------------------------------------------------------------------------------------------
def test_an_llm_guardrail_asks_the_judge_and_retries_on_its_reason(runtime: AgentRuntime) -> None:
    judge = [
        '{"passed": false, "reason": "it promises a refund"}',
    ]
    judge_passes = ['{"passed": true}']
    script = ["We will refund you.", "We will look into it."]
    routes = {"TEXT:\nWe will refund you.": judge, "TEXT:\nWe will look into it.": judge_passes}
    with FakeOpenAIServer(script, routes=routes) as fake, OpenAIModel("gpt-4o-mini", base_url=fake.base_url) as model:
        guard = LLMGuardrail(model, "Never promise refunds.", name="no_refunds")
        agent = Agent(name="careful", model=model, guardrails=[guard])
        result = runtime.run(agent, "refund?")
        assert result.is_success and result.output == "We will look into it."
        assert fake.request_count == 4
    journal = runtime.client.get_journal(result.execution_id)
    checks = [s for s in journal if s.kind == "guardrail"]
    assert [s.output["passed"] for s in checks] == [False, True]
    assert checks[0].output["message"] == "it promises a refund"
    judged = [s for s in journal if s.kind == "llm" and s.parent is not None]
    assert [s.parent for s in judged] == [c.key for c in checks]
    assert result.token_usage.total_tokens > 0


def _plain(x: str) -> str:
    """A function to make a tool of."""
    return x


# --- configuration -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Guardrail(str.isalpha, position="input", on_fail="human"), "checks outputs only"),
        (lambda: Guardrail(str.isalpha, on_fail="ignore"), "on_fail must be one of retry, raise, fix, human"),
        (lambda: Guardrail(str.isalpha, position="middle"), "position must be 'input' or 'output'"),
        (lambda: Agent(name="a", model="openai/x", guardrails=[str.isalpha]), "takes Guardrail objects"),
        (
            lambda: Agent(name="a", model="openai/x", guardrails=[RegexGuardrail("x"), RegexGuardrail("y")]),
            "two guardrails are named 'regex'",
        ),
        (lambda: Agent(name="a", model="openai/x", guardrails=RegexGuardrail("x")), "takes a list"),
        (lambda: tool(guardrails=["nope"])(_plain), "tool _plain: guardrails= takes Guardrail objects"),
        (lambda: RegexGuardrail("(", name="broken"), "invalid pattern"),
    ],
)
def test_bad_configuration_is_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert message in str(caught.value)


def test_the_agent_description_lists_its_guardrails() -> None:
    agent = Agent(name="a", model="openai/x", guardrails=[RegexGuardrail(CARD, name="no_cards", on_fail="fix")])
    assert agent.describe()["guardrails"] == [{"name": "no_cards", "position": "output", "on_fail": "fix"}]


def test_executions_show_tells_a_failed_check_from_a_passed_one(
    runtime: AgentRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentspan.cli._format import print_execution

    model = ScriptedModel([LEAK, "I cannot share card numbers."])
    result = runtime.run(Agent(name="shown", model=model, guardrails=[RegexGuardrail(CARD, name="no_cards")]), "?")
    monkeypatch.setenv("COLUMNS", "200")
    print_execution(runtime.client.get_execution(result.execution_id), runtime.client.get_journal(result.execution_id))
    lines = [line for line in capsys.readouterr().out.splitlines() if "guardrail no_cards" in line]
    assert len(lines) == 2
    assert "failed: The answer contains text that is not allowed" in lines[0]
    assert "→ passed" in lines[1]


def test_a_followed_run_shows_a_refused_check_as_refused(runtime: AgentRuntime) -> None:
    import io

    from agentspan.cli._follow import Follower

    model = ScriptedModel([LEAK, "I cannot share card numbers."])
    result = runtime.run(Agent(name="followed", model=model, guardrails=[RegexGuardrail(CARD, name="no_cards")]), "?")
    out = io.StringIO()
    Follower(runtime.client, result.execution_id, out).replay()
    lines = [line.strip() for line in out.getvalue().splitlines() if "guardrail no_cards" in line and "…" not in line]
    assert lines[0].startswith("✗ guardrail no_cards refused: The answer contains text that is not allowed")
    assert lines[1] == "✓ guardrail no_cards"


class Crash(BaseException):
    """Stands for the process dying."""


checked: collections.Counter[str] = collections.Counter()


def no_passwords(text: str) -> GuardrailResult:
    checked[text] += 1
    return GuardrailResult(passed="password" not in text, message="no passwords")


@tool(guardrails=[Guardrail(no_passwords, name="no_passwords")])
def account(user: str) -> str:
    """Read an account."""
    calls[user] += 1
    return f"{user}: password 1234" if user == "root" else f"{user}: fine"


@tool
def explode() -> str:
    """Fails the first time, as a dying process would."""
    calls["explode"] += 1
    if calls["explode"] == 1:
        raise Crash("the process died")
    return "ok"


def test_parallel_tool_checks_replay_by_call_after_a_crash(db_path: Path) -> None:
    from agentspan.agents._loop import agent_function
    from agentspan.runtime import Service, SQLiteStore
    from agentspan.worker import Worker

    checked.clear()
    users = ["ann", "root", "bob", "cy"]
    model = ScriptedModel([[("account", {"user": u}) for u in users], [("explode", {})], "done"])
    agent = Agent(name="accounts", model=model, tools=[account, explode])
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("accounts", {"prompt": "audit"})
    dying = Worker(service, [agent_function(agent)])
    with pytest.raises(Crash):
        dying.run_once()
    service.expire_leases([dying.worker_id])
    service.close()

    with AgentRuntime(db=db_path, serve_http=False) as again:
        result = again.run(agent, "audit")
        journal = again.client.get_journal(execution.id)
    assert result.execution_id == execution.id and result.output == "done"
    assert calls == {"ann": 1, "root": 1, "bob": 1, "cy": 1, "explode": 2}
    assert set(checked.values()) == {1}, "no check ran again after the crash"
    assert len(model.requests) == 3
    steps = [s for s in journal if s.kind == "guardrail"]
    assert len(steps) == 4 and all(s.attempt == 1 and not s.superseded for s in steps)
    assert not any(s.superseded for s in journal), "the replay matched every recorded step"
    withheld = [c["result"] for c in result.tool_calls if c["name"] == "account" and "root" in c["arguments"]]
    assert withheld == ["Error: guardrail no_passwords withheld the result of account: no passwords"]
