"""A guarded native agent's worker killed between the second and third model answer: the re-run
replays the guardrail verdicts (checks and judges are not run again) and the calls before them."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from processes import TESTS, stop, wait_until

from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow


class HoldingServer(FakeOpenAIServer):
    """The fake model server, holding the ``hold``-th request (1-based) unanswered until released:
    the worker is inside that model call when the test kills it."""

    def __init__(self, *args: Any, hold: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = hold
        self.release = threading.Event()

    def _answer(self, body: dict[str, Any]) -> Any:
        answer = super()._answer(body)
        if self.request_count == self.hold:
            self.release.wait(30)
        return answer


def _worker(url: str, fake: FakeOpenAIServer, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "guardrail_agents:agents", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _kill_while_held_and_resume(client: HttpClient, execution_id: str, fake: HoldingServer, log: Path) -> Any:
    first = _worker(client.base_url, fake, log)
    try:
        wait_until(lambda: fake.request_count >= fake.hold, "the held model request")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        fake.release.set()
    second = _worker(client.base_url, fake, log)
    wait_until(lambda: client.get_execution(execution_id).status.is_terminal, "the resumed run")
    stop(second)
    stop(first)
    return client.get_execution(execution_id)


def _ran(log: Path) -> collections.Counter[str]:
    return collections.Counter(line.split("\t")[0] for line in log.read_text().splitlines())


def test_killed_before_the_third_answer_the_rerun_does_not_repeat_checks_or_calls(server: str, tmp_path: Path) -> None:
    script = [[("lookup", {"order": "A-1"})], "rude one", "rude two", "Shipped, thank you."]
    log = tmp_path / "ran.log"
    # Requests: the tool turn, two refused answers, then the third answer (held: the worker dies in it).
    with HoldingServer(script, hold=4) as fake, HttpClient(server) as client:
        execution = client.create_execution("guarded", {"prompt": "where is A-1?"})
        final = _kill_while_held_and_resume(client, execution.id, fake, log)
        requests = fake.requests
        journal = client.get_journal(execution.id)
    assert final.status is ExecutionStatus.COMPLETED and final.output["output"] == "Shipped, thank you."
    # Only the model call in flight at the kill is asked again.
    assert len(requests) == 5
    assert requests[3]["messages"] == requests[4]["messages"]
    assert _ran(log) == {"tool A-1": 1, "check rude one": 1, "check rude two": 1, "check Shipped, thank you.": 1}
    checks = [s for s in journal if s.kind == "guardrail"]
    assert [(s.input["text"], s.output["passed"], s.attempt) for s in checks] == [
        ("rude one", False, 1),
        ("rude two", False, 1),
        ("Shipped, thank you.", True, 1),
    ]
    assert all(s.status is StepStatus.COMPLETED for s in journal)
    assert sum(s.kind == "llm" for s in journal) == 4


def test_an_llm_guardrails_verdict_is_replayed_after_a_crash_not_judged_again(server: str, tmp_path: Path) -> None:
    routes = {
        "TEXT:\nWe will refund you.": ['{"passed": false, "reason": "it promises a refund"}'],
        "TEXT:\nWe will look into it.": ['{"passed": true}'],
    }
    script = ["We will refund you.", "We will look into it."]
    # Requests: the answer, its judge, then the second answer (held).
    with HoldingServer(script, routes=routes, hold=3) as fake, HttpClient(server) as client:
        execution = client.create_execution("judged", {"prompt": "refund?"})
        final = _kill_while_held_and_resume(client, execution.id, fake, tmp_path / "ran.log")
        requests = fake.requests
    assert final.status is ExecutionStatus.COMPLETED and final.output["output"] == "We will look into it."
    texts = [" ".join(str(m.get("content")) for m in r["messages"]) for r in requests]
    judged = collections.Counter(
        "refund" if "TEXT:\nWe will refund you." in text else "look" for text in texts if "POLICY:" in text
    )
    assert judged == {"refund": 1, "look": 1}, "the first verdict was replayed, its judge not asked again"
    assert len(requests) == 5
