"""Token and cost budgets: enforced before each model call from the usage on the journal's model steps
(replayed steps once), failing the run or waiting for a raise over HTTP; costs from the price table or
the budget's prices; bad budgets and raises refused."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentspan.agents import Agent, AgentRuntime, Budget, ModelResponse, Price, Usage, tool
from agentspan.agents._loop import agent_function
from agentspan.errors import BudgetExceededError, ConfigurationError, ConflictError, InvalidInputError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import ScriptedModel
from agentspan.testing._scripted import scripted_responses
from agentspan.worker import Worker

calls: collections.Counter[str] = collections.Counter()
crash_on: set[str] = set()


class Crash(BaseException):
    """Stands for the process dying."""


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    crash_on.clear()


@tool
def search(query: str) -> str:
    """Search for something."""
    calls[query] += 1
    if query in crash_on:
        crash_on.discard(query)
        raise Crash(query)
    return f"results for {query}"


def fixed_usage(replies: list[Any], prompt: int = 60, completion: int = 40) -> list[ModelResponse]:
    """The replies, each reporting ``prompt`` + ``completion`` tokens."""
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return [r.model_copy(update={"usage": usage}) for r in scripted_responses(replies)]


def research(turns: int) -> list[ModelResponse]:
    """``turns`` model calls asking for one search each, then the answer: 100 tokens a call."""
    return fixed_usage(ScriptedModel.research_script(turns, "search", lambda i: {"query": f"q{i + 1}"}, answer="done"))


def agent(model: ScriptedModel, name: str = "budgeted", budget: Budget | None = None) -> Agent:
    return Agent(name=name, model=model, instructions="Research.", tools=[search], max_turns=30, budget=budget)


def gpt(replies: list[ModelResponse]) -> ScriptedModel:
    return ScriptedModel(replies, provider="openai", name="gpt-4o-mini")


# --- construction -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_cost_usd": -0.5}, "max_cost_usd"),
        ({}, "needs max_tokens, max_cost_usd or both"),
        ({"max_tokens": 10, "on_exhausted": "retry"}, "on_exhausted"),
        ({"max_tokens": 10, "prices": {"m": {"input": -1, "output": 1}}}, "prices.m.input"),
    ],
)
def test_a_bad_budget_is_refused_at_construction(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Budget(**kwargs)


def test_an_agent_describes_its_default_budget() -> None:
    described = agent(gpt([]), budget=Budget(max_tokens=1000)).describe()
    assert described["budget"]["max_tokens"] == 1000
    assert described["budget"]["on_exhausted"] == "fail"


# --- fail ---------------------------------------------------------------------------------------------
def test_a_spent_budget_fails_the_run_before_the_next_model_call(db_path: Path) -> None:
    model = gpt(research(10))
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(agent(model), "research", budget=Budget(max_tokens=450))
    assert result.status is ExecutionStatus.FAILED
    assert result.finish_reason == "budget"
    assert result.error is not None and "BudgetExceededError" in result.error
    assert len(model.requests) == 5, "calls 1-5 start under 450 tokens; the sixth would start at 500"
    assert result.token_usage.total_tokens == 500
    assert sorted(calls) == ["q1", "q2", "q3", "q4", "q5"]


def test_the_agent_level_budget_applies_when_the_run_gives_none(db_path: Path) -> None:
    model = gpt(research(10))
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(agent(model, budget=Budget(max_tokens=200)), "research")
    assert result.finish_reason == "budget"
    assert len(model.requests) == 2


def test_a_budget_large_enough_lets_the_run_finish_with_its_cost(db_path: Path) -> None:
    model = gpt(research(3))
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(agent(model), "research", budget=Budget(max_tokens=10_000))
    assert result.is_success and result.output == "done"
    assert result.token_usage.total_tokens == 400
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens; 4 calls of 60 + 40 tokens.
    assert result.cost_usd == pytest.approx(4 * (60 * 0.15 + 40 * 0.60) / 1e6)
    assert result.cost_note is None


def test_user_prices_override_the_table_and_count_toward_max_cost(db_path: Path) -> None:
    model = gpt(research(10))
    prices = {"gpt-4o-mini": Price(input=1000.0, output=1000.0)}  # $0.10 per call of 100 tokens
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(agent(model), "research", budget=Budget(max_cost_usd=0.25, prices=prices))
    assert result.finish_reason == "budget"
    assert len(model.requests) == 3, "after 3 calls $0.30 >= $0.25 is spent"
    assert result.cost_usd == pytest.approx(0.30)


def test_an_unknown_model_counts_tokens_and_reports_its_cost_as_unknown(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = ScriptedModel(research(10), provider="local", name="my-finetune")
    caplog.set_level("INFO", logger="agentspan.budget")
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(agent(model), "research", budget=Budget(max_tokens=300, max_cost_usd=1.0))
    assert result.finish_reason == "budget"
    assert len(model.requests) == 3, "the token limit holds though the cost is unknown"
    assert result.token_usage.total_tokens == 300
    assert result.cost_usd is None
    assert result.cost_note is not None and "local/my-finetune" in result.cost_note
    said = [r for r in caplog.records if "no price for model 'local/my-finetune'" in r.getMessage()]
    assert len(said) == 1, "said once per execution, not once per call"


def test_sub_agent_model_calls_count_in_the_budget_and_the_usage(db_path: Path) -> None:
    helper_model = gpt(fixed_usage([[("search", {"query": "deep"})], "deep answer"]))
    helper = Agent(name="helper", model=helper_model, instructions="Help.", tools=[search])
    lead_model = gpt(fixed_usage([[("helper", {"request": "dig"})], "all done"]))
    lead = Agent(name="lead", model=lead_model, instructions="Lead.", agents=[helper])
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(lead, "go", budget=Budget(max_tokens=350))
    # lead call 1 (100), helper calls 1 and 2 (200): 300 < 350, so lead call 2 starts; 400 in all.
    assert result.is_success
    assert result.token_usage.total_tokens == 400
    with AgentRuntime(db=db_path.with_name("b.db"), serve_http=False) as runtime:
        helper_model.requests.clear()
        lead_model.requests.clear()
        tight = runtime.run(lead, "go", budget=Budget(max_tokens=250))
    assert tight.finish_reason == "budget"
    assert len(helper_model.requests) == 2 and len(lead_model.requests) == 1
    assert tight.token_usage.total_tokens == 300


# --- replay ----------------------------------------------------------------------------------------
def test_replayed_model_steps_are_not_counted_twice(db_path: Path) -> None:
    """A crash after 4 model calls (400 tokens): the resumed run replays them and stops at the same
    point an uninterrupted run with a budget of 650 does, after 6 model calls."""
    crash_on.add("q4")
    model = gpt(research(10))
    budgeted = agent(model, name="crashy")
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("crashy", {"prompt": "research"}, budget=Budget(max_tokens=650))
    dying = Worker(service, [agent_function(budgeted)])
    with pytest.raises(Crash):
        dying.run_once()  # the "process" dies inside tool call 4
    service.expire_leases([dying.worker_id])
    service.close()
    assert len(model.requests) == 4

    with AgentRuntime(db=db_path, serve_http=False) as again:
        result = again.run(budgeted, "research", budget=Budget(max_tokens=650))
        journal = again.client.get_journal(execution.id)
    assert result.execution_id == execution.id
    assert result.finish_reason == "budget"
    assert len(model.requests) == 7, "4 before the crash, calls 5-7 after it (7 starts at 600 < 650)"
    assert result.token_usage.total_tokens == 700
    assert sum(1 for s in journal if s.kind == "llm") == 7


# --- wait and raise -------------------------------------------------------------------------------------
def _wait_for(handle: Any, status: ExecutionStatus) -> None:
    for _ in handle.events():
        if handle.status is status:
            return
    assert handle.status is status


def test_a_waiting_run_is_raised_over_http_once_and_finishes(db_path: Path) -> None:
    from processes import free_port

    model = gpt(research(4))
    with AgentRuntime(db=db_path, http_port=free_port()) as runtime:
        assert runtime.http_url is not None
        handle = runtime.start(agent(model), "research", budget=Budget(max_tokens=300, on_exhausted="wait"))
        _wait_for(handle, ExecutionStatus.WAITING)
        waiting = runtime.client.get_execution(handle.execution_id)
        assert waiting.worker_id is None and waiting.lease_expires_at is None, "no process holds it"
        assert waiting.wait is not None and waiting.wait.signal == "budget:1"
        assert len(model.requests) == 3
        pending = [s for s in runtime.client.get_journal(handle.execution_id) if s.kind == "budget"]
        assert [s.status for s in pending] == [StepStatus.SUSPENDED]
        assert pending[0].input["spent_tokens"] == 300 and pending[0].input["max_tokens"] == 300

        base = runtime.http_url
        bad = httpx.post(f"{base}/executions/{handle.execution_id}/budget", json={"tokens": -5})
        assert bad.status_code == 422 and "greater than 0" in bad.text
        bad_signal = httpx.post(
            f"{base}/executions/{handle.execution_id}/signals/budget:1", json={"payload": {"tokens": "many"}}
        )
        assert bad_signal.status_code == 400 and "positive" in bad_signal.json()["error"]["message"]
        empty = httpx.post(f"{base}/executions/{handle.execution_id}/budget", json={})
        assert empty.status_code == 400 and "positive" in empty.json()["error"]["message"]
        assert runtime.client.get_execution(handle.execution_id).status is ExecutionStatus.WAITING, "nothing recorded"

        raised = httpx.post(f"{base}/executions/{handle.execution_id}/budget", json={"tokens": 1000})
        assert raised.status_code == 200, raised.text
        result = handle.wait(30)
        again = httpx.post(f"{base}/executions/{handle.execution_id}/budget", json={"tokens": 5})
        journal = runtime.client.get_journal(handle.execution_id)
    assert result.is_success and result.output == "done"
    assert len(model.requests) == 5
    assert again.status_code == 409 and "not waiting on its budget" in again.json()["error"]["message"]
    waits = [s for s in journal if s.kind == "budget"]
    assert [(s.status, s.output) for s in waits] == [(StepStatus.COMPLETED, {"tokens": 1000})]


def test_a_second_different_raise_for_the_same_wait_is_a_conflict(db_path: Path) -> None:
    model = gpt(research(6))
    service = Service(SQLiteStore(db_path))
    budgeted = agent(model)
    execution = service.create_execution(
        "budgeted", {"prompt": "research"}, budget=Budget(max_tokens=100, on_exhausted="wait")
    )
    Worker(service, [agent_function(budgeted)]).run_once()
    assert service.get_execution(execution.id).status is ExecutionStatus.WAITING
    service.send_signal(execution.id, "budget:1", {"tokens": 100})
    with pytest.raises(ConflictError, match="already delivered"):
        service.send_signal(execution.id, "budget:1", {"tokens": 500})
    # The run goes on with the first raise: one more call, then it waits again on budget:2.
    Worker(service, [agent_function(budgeted)]).run_once()
    waiting = service.get_execution(execution.id)
    assert waiting.status is ExecutionStatus.WAITING and waiting.wait is not None
    assert waiting.wait.signal == "budget:2"
    assert len(model.requests) == 2
    service.close()


def test_a_raise_for_a_run_not_waiting_on_its_budget_is_a_conflict(service: Service) -> None:
    execution = service.create_execution("nobody-serves-this", {"prompt": "x"})
    with pytest.raises(ConflictError, match="not waiting on its budget"):
        service.raise_budget(execution.id, tokens=10)
    with pytest.raises(InvalidInputError):
        service.raise_budget(execution.id)


def test_cancelling_a_run_waiting_on_its_budget_cancels_it(db_path: Path) -> None:
    model = gpt(research(4))
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        handle = runtime.start(agent(model), "research", budget=Budget(max_tokens=100, on_exhausted="wait"))
        _wait_for(handle, ExecutionStatus.WAITING)
        handle.cancel()
        result = handle.wait(30)
    assert result.status is ExecutionStatus.CANCELLED
    assert len(model.requests) == 1


def test_the_error_carries_the_spend() -> None:
    error = BudgetExceededError("spent", tokens=5, cost_usd=0.1)
    assert (error.tokens, error.cost_usd) == (5, 0.1)


# --- the command line ----------------------------------------------------------------------------------
def test_budget_show_and_raise_on_the_command_line(db_path: Path) -> None:
    from test_cli import agentspan

    model = gpt(research(6))
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution(
        "budgeted", {"prompt": "research"}, budget=Budget(max_tokens=200, on_exhausted="wait")
    )
    Worker(service, [agent_function(agent(model))]).run_once()
    service.close()
    db = ("--db", str(db_path))

    shown = agentspan("budget", "show", execution.id, *db)
    assert shown.returncode == 0, shown.stderr
    assert "waiting for a raise" in shown.stdout
    assert "tokens     200 of 200, 0 left" in shown.stdout
    journal = agentspan("executions", "show", execution.id, *db)
    assert f"waiting for a budget raise: 200 tokens spent (agentspan budget raise {execution.id}" in " ".join(
        journal.stdout.split()
    )

    nothing = agentspan("budget", "raise", execution.id, *db)
    assert nothing.returncode == 2 and nothing.stderr.strip().startswith("agentspan: say how much")
    negative = agentspan("budget", "raise", execution.id, "--tokens", "-5", *db)
    assert negative.returncode == 2 and len(negative.stderr.strip().splitlines()) == 1
    assert "positive" in negative.stderr
    unknown = agentspan("budget", "raise", "nope", "--tokens", "5", *db)
    assert unknown.returncode == 1 and unknown.stderr.strip() == "agentspan: no execution with id 'nope'"

    raised = agentspan("budget", "raise", execution.id, "--tokens", "500", *db)
    assert raised.returncode == 0, raised.stderr
    assert raised.stdout.strip() == f"{execution.id} queued"
    twice = agentspan("budget", "raise", execution.id, "--tokens", "700", *db)
    assert twice.returncode == 1 and "not waiting on its budget" in twice.stderr
    assert len(twice.stderr.strip().splitlines()) == 1
    after = agentspan("budget", "show", execution.id, *db)
    assert "tokens     200 of 700, 500 left" in after.stdout


def test_a_bad_budget_over_http_is_refused_and_nothing_is_created(http_server: Any, service: Service) -> None:
    for budget in ({"max_tokens": -1}, {}, {"max_tokens": 5, "on_exhausted": "later"}):
        answer = httpx.post(f"{http_server.url}/executions", json={"name": "x", "budget": budget})
        assert answer.status_code == 422, answer.text
        assert "budget" in answer.text
    assert service.list_executions().items == []
    made = httpx.post(f"{http_server.url}/executions", json={"name": "x", "budget": {"max_tokens": 5}})
    assert made.status_code == 201 and made.json()["budget"]["max_tokens"] == 5
