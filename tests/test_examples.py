"""The README's quickstart runs unchanged against the fake OpenAI-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentspan.testing import FakeOpenAIServer

EXAMPLES = Path(__file__).parent.parent / "examples"


def _run(
    example: str, fake: FakeOpenAIServer, tmp_path: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "AGENTSPAN_DB": str(tmp_path / "examples.db")}
    env.pop("OPENAI_API_KEY", None)
    env.update(extra)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_quickstart_runs_unchanged(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(
        3, "search_web", lambda i: {"query": f"orchestration tool {i}"}, answer="Temporal vs DBOS vs Agentspan"
    )
    with FakeOpenAIServer(script) as fake:
        done = _run("quickstart.py", fake, tmp_path)
        assert done.returncode == 0, done.stderr
        assert fake.request_count == 4
        assert fake.requests[0]["model"] == "gpt-4o-mini"
        assert fake.requests[0]["tools"][0]["function"]["name"] == "search_web"
    assert "Temporal vs DBOS vs Agentspan" in done.stdout
    assert "tool calls: 3" in done.stdout


@pytest.mark.parametrize(
    ("example", "script", "expected"),
    [
        ("structured_output.py", ['{"winner": "Agentspan", "reasons": ["durable steps"]}'], "winner: Agentspan"),
        (
            "sub_agents.py",
            [[("researcher", {"request": "what is durability?"})], "it resumes after crashes", "durable: it resumes"],
            "durable: it resumes",
        ),
    ],
)
def test_the_examples_run_against_the_fake_server(
    tmp_path: Path, example: str, script: list[object], expected: str
) -> None:
    with FakeOpenAIServer(script, by_turn=False) as fake:
        done = _run(example, fake, tmp_path)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_the_langgraph_example_runs_against_the_fake_server(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(2, "search_web", lambda i: {"query": f"tool {i}"}, answer="graph answer")
    with FakeOpenAIServer(script) as fake:
        # ChatOpenAI insists on a key; the fake server ignores it.
        done = _run("langgraph_research.py", fake, tmp_path, OPENAI_API_KEY="test-key")
        assert fake.request_count == 3
    assert done.returncode == 0, done.stderr
    assert "graph answer" in done.stdout


def test_the_openai_agents_example_waits_for_the_refund_approval_then_goes_on(tmp_path: Path) -> None:
    script = [
        [("lookup_order", {"order_id": "A-17"})],
        [("refund", {"order_id": "A-17", "amount": 20})],
        "Refunded the extra 20 EUR for order A-17.",
    ]
    env = {"OPENAI_API_KEY": "test-key", "OPENAI_AGENTS_DISABLE_TRACING": "1"}
    with FakeOpenAIServer(script) as fake:
        done = _run("openai_agents_support.py", fake, tmp_path, "--approve", **env)
        turns = [sum(m.get("role") == "assistant" for m in r["messages"]) for r in fake.requests]
    assert done.returncode == 0, done.stderr
    assert 'waiting for approval: refund({"order_id": "A-17", "amount": 20})' in done.stdout
    assert "Refunded the extra 20 EUR for order A-17." in done.stdout
    assert turns == [0, 1, 2], "the turns answered before the approval were not asked for again"


def test_the_approvals_example_waits_for_the_refund_then_runs_it(tmp_path: Path) -> None:
    script = [[("refund", {"order_id": "A-17", "amount": 20})], "Refunded 20 EUR for order A-17."]
    with FakeOpenAIServer(script) as fake:
        done = _run("approvals.py", fake, tmp_path)
        tool_results = [m["content"] for r in fake.requests for m in r["messages"] if m.get("role") == "tool"]
    assert done.returncode == 0, done.stderr
    assert "waiting for approval: refund({'order_id': 'A-17', 'amount': 20}) [call call_1]" in done.stdout
    assert tool_results == ["refunded 20 EUR for order A-17"]
    assert "Refunded 20 EUR for order A-17." in done.stdout


def test_the_guardrails_example_asks_again_and_keeps_the_card_number_out(tmp_path: Path) -> None:
    script = ["You pay with 4111 1111 1111 1111.", "You pay with your Visa card."]
    with FakeOpenAIServer(script) as fake:
        done = _run("guardrails.py", fake, tmp_path)
        assert fake.request_count == 2
        assert "card number" in fake.requests[1]["messages"][-1]["content"]
    assert done.returncode == 0, done.stderr
    assert "You pay with your Visa card." in done.stdout
    assert "4111" not in done.stdout
    assert "guardrail no_card_numbers: failed, model asked again" in done.stdout
    assert "guardrail no_card_numbers: passed" in done.stdout


def test_the_budgets_example_fails_one_run_and_raises_the_other(tmp_path: Path) -> None:
    from agentspan.agents import Usage
    from agentspan.testing._scripted import scripted_responses

    usage = Usage(prompt_tokens=60, completion_tokens=40, total_tokens=100)
    replies = FakeOpenAIServer.research_script(5, "search_web", lambda i: {"query": f"engine {i}"}, answer="surveyed")
    script = [reply.model_copy(update={"usage": usage}) for reply in scripted_responses(replies)]
    with FakeOpenAIServer(script) as fake:
        done = _run("budgets.py", fake, tmp_path)
        assert done.returncode == 0, done.stderr
        assert fake.request_count == 3 + 6, "3 calls until the first budget is spent; the raised run makes all 6"
    assert "fail: finish=budget tokens=300 cost=$0.000099" in done.stdout
    assert "wait: waiting; raising the budget by 1000 tokens" in done.stdout
    assert "wait: finish=stop tokens=600 output='surveyed'" in done.stdout
