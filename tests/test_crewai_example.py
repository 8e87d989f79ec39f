"""The CrewAI example runs against the fake OpenAI-compatible server, and waits for a human's review."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from processes import wait_until

from agentspan.runtime import ExecutionStatus, Service, SQLiteStore
from agentspan.testing import FakeOpenAIServer

EXAMPLE = Path(__file__).parent.parent / "examples" / "crewai_research.py"


def _start(fake: FakeOpenAIServer, db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "AGENTSPAN_DB": str(db)}
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_the_crewai_example_waits_for_the_review_and_finishes_once_it_is_accepted(tmp_path: Path) -> None:
    routes = {
        "You are researcher": [[("search_web", {"query": "durable execution"})], "findings: it resumes"],
        "You are writer": ["Durable execution resumes agents where they stopped."],
    }
    db = tmp_path / "example.db"
    with FakeOpenAIServer(routes=routes) as fake:
        proc = _start(fake, db)
        store = SQLiteStore(db)
        service = Service(store)
        try:
            wait_until(lambda: service.list_executions(status=ExecutionStatus.WAITING).items, "the review")
            waiting = service.list_executions(status=ExecutionStatus.WAITING).items[0]
            assert waiting.wait is not None
            service.send_signal(waiting.id, waiting.wait.signal, "")  # accept the draft
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()
    assert proc.returncode == 0, err
    assert out.strip() == "Durable execution resumes agents where they stopped."
    assert f"agentspan executions respond {waiting.id}" in err
    assert fake.request_count == 3
