"""The ``agentspan`` command tells the truth while it works: progress, waits, interrupts, paging, mistakes.

Each test runs the real command in a subprocess, on a real SQLite file or against a real server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import _env, start_worker, stop
from test_cli import agentspan

from agentspan.client import HttpClient
from agentspan.runtime import ErrorInfo, ExecutionStatus, FinishRecord, Service, SQLiteStore, StepRecord, StepStatus
from agentspan.testing import FakeOpenAIServer


def _popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", *args], env={**_env(), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _read_until(stream: Iterator[str] | None, text: str) -> list[str]:
    """Lines of ``stream`` up to the first that contains ``text`` (blocks until the process prints it)."""
    assert stream is not None
    seen = []
    for line in stream:
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never printed; got {''.join(seen)}")


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    script = FakeOpenAIServer.research_script(3, "search", lambda i: {"query": f"q{i + 1}"}, answer="the answer")
    with FakeOpenAIServer(script) as server:
        yield server


# --- the command line itself ----------------------------------------------------------------------------------
def test_version_and_a_validated_log_level() -> None:
    from agentspan import __version__

    version = agentspan("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"agentspan {__version__}"
    bad = agentspan("--log-level", "loud", "executions", "list")
    assert bad.returncode == 2 and "invalid choice: 'loud'" in bad.stderr and "Traceback" not in bad.stderr
    upper = agentspan("--log-level", "INFO", "--version")
    assert upper.returncode == 0


def test_a_server_url_without_api_gets_a_hint(server: str) -> None:
    root = server.removesuffix("/api")
    done = agentspan("executions", "list", "--server", root)
    assert f"hint: the server URL {root} does not end in /api, where the API lives; try {root}/api" in done.stderr
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert agentspan("executions", "list", "--server", server).returncode == 0


def test_start_takes_a_json_object_only(db_path: Path) -> None:
    for text, kind in (("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")):
        done = agentspan("start", "echo", "--input", text, "--db", str(db_path))
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().startswith("agentspan: --input must be a JSON object of arguments")
        assert done.stderr.strip().endswith(f"not {kind}")
    started = agentspan("start", "echo", "--input", "{}", "--db", str(db_path))
    assert started.returncode == 0
    assert "no agent or function named 'echo' is deployed and no worker serves it now" in started.stderr


@pytest.mark.parametrize(
    "command",
    [["executions", "list"], ["executions", "show", "x"], ["executions", "follow", "x"],
     ["executions", "cancel", "x"], ["executions", "retry", "x"], ["executions", "delete", "x"],
     ["signal", "x", "go"]],
)  # fmt: skip
def test_reading_commands_do_not_create_a_missing_database(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "typo.db"
    done = agentspan(*command, "--db", str(db))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"agentspan: no database at {db} (--db): nothing has run with it yet; check the path, or pass --server URL"
    )
    assert not db.exists()


def test_run_reports_import_errors_in_one_line(tmp_path: Path) -> None:
    missing = agentspan("run", "no_such_module:agent", "hi", "--db", str(tmp_path / "x.db"))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("agentspan: cannot import 'no_such_module': No module named")
    (tmp_path / "broken_agents.py").write_text("raise RuntimeError('boom at import')\n")
    broken = agentspan(
        "run", "broken_agents:agent", "hi", "--db", str(tmp_path / "x.db"),
        env={"PYTHONPATH": f"{tmp_path}:{_env()['PYTHONPATH']}"},
    )  # fmt: skip
    assert broken.returncode == 2
    assert broken.stderr.strip() == "agentspan: importing 'broken_agents' failed: RuntimeError: boom at import"
    attr = agentspan("run", "cli_agents:nope", "hi", "--db", str(tmp_path / "x.db"))
    assert attr.returncode == 2 and attr.stderr.strip() == "agentspan: module 'cli_agents' has no attribute 'nope'"


# --- listing, showing, retrying, deleting ------------------------------------------------------------------------
def test_list_says_how_many_and_how_to_page(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    for i in range(25):
        service.create_execution("echo", {"i": i})
    service.close()
    first = agentspan("executions", "list", "--db", str(db_path))
    assert first.returncode == 0
    footer = first.stdout.strip().splitlines()[-1]
    assert footer.startswith("20 of 25 executions; next page: agentspan executions list --limit 20 --cursor ")
    cursor = footer.rsplit(" ", 1)[-1]
    second = agentspan("executions", "list", "--db", str(db_path), "--cursor", cursor)
    assert second.stdout.strip().splitlines()[-1] == "5 of 25 executions (last page)"
    assert sum("echo" in line for line in second.stdout.splitlines()) == 5
    filtered = agentspan("executions", "list", "--db", str(db_path), "--status", "queued", "--limit", "10")
    assert "--status queued --limit 10 --cursor" in filtered.stdout


def test_retry_starts_fresh_and_delete_removes(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    old = service.create_execution("echo", {"text": "again"})
    early = agentspan("executions", "retry", old.id, "--db", str(db_path))
    assert early.returncode == 1 and f"execution {old.id} is still queued" in early.stderr
    service.cancel_execution(old.id)
    retried = agentspan("executions", "retry", old.id, "--db", str(db_path))
    assert retried.returncode == 0, retried.stderr
    new_id = retried.stdout.strip()
    new = service.get_execution(new_id)
    assert new_id != old.id and (new.name, new.input, new.status) == ("echo", {"text": "again"}, ExecutionStatus.QUEUED)
    deleted = agentspan("executions", "delete", old.id, "--db", str(db_path))
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"{old.id} deleted"
    gone = agentspan("executions", "show", old.id, "--db", str(db_path))
    assert gone.returncode == 1 and gone.stderr.strip() == f"agentspan: no execution with id '{old.id}'"
    service.close()


def test_show_full_prints_whole_inputs_and_outputs(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    db = tmp_path / "run.db"
    long_prompt = "research " + "very " * 40 + "thoroughly"
    done = agentspan(
        "run", "cli_agents:researcher", long_prompt, "--db", str(db), env={"OPENAI_BASE_URL": fake.base_url}
    )
    assert done.returncode == 0, done.stderr
    execution_id = done.stdout.strip().rsplit("execution: ", 1)[-1]
    short = agentspan("executions", "show", execution_id, "--db", str(db))
    assert long_prompt not in short.stdout
    full = agentspan("executions", "show", execution_id, "--full", "--db", str(db))
    assert full.returncode == 0
    assert long_prompt in full.stdout and "results for q1" in full.stdout and "idempotency key" in full.stdout


def test_a_running_step_is_running_and_a_dead_ones_step_is_in_doubt(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("echo", {})
    claim = service.claim("w1", ["echo"], lease_seconds=60)
    assert claim is not None
    record = StepRecord(key="tool:slow", kind="tool", name="slow", status=StepStatus.STARTED)
    service.write_records(execution.id, "w1", claim.epoch, [record])
    running = agentspan("executions", "show", execution.id, "--db", str(db_path))
    assert "tool slow (running)" in running.stdout and "in doubt" not in running.stdout
    service.expire_leases(["w1"])  # its worker died
    dead = agentspan("executions", "show", execution.id, "--db", str(db_path))
    assert "tool slow (in doubt: its process stopped inside it" in dead.stdout
    service.close()


# --- running and following ---------------------------------------------------------------------------------------
def test_run_shows_steps_as_they_run(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    done = agentspan(
        "run", "cli_agents:researcher", "find", "--db", str(tmp_path / "run.db"), env={"OPENAI_BASE_URL": fake.base_url}
    )
    assert done.returncode == 0, done.stderr
    progress = [line.removeprefix("agentspan: ") for line in done.stderr.splitlines()]
    assert progress[0].startswith("queued execution ") and progress[1].endswith("claimed it")
    assert progress.count("  ✓ tool search") == 3 and progress.count("  ✓ llm openai/gpt-4o-mini") == 4
    assert progress[-1] == "completed"
    assert "the answer" in done.stdout


def test_ctrl_c_on_a_local_run_hands_it_back_and_says_how_to_resume(tmp_path: Path, fake: FakeOpenAIServer) -> None:
    db = tmp_path / "run.db"
    env = {"OPENAI_BASE_URL": fake.base_url, "AGENT_TOOL_DELAY": "0.5"}
    run = _popen("run", "cli_agents:researcher", "find", "--db", str(db), env=env)
    _read_until(run.stderr, "… tool search running")
    run.send_signal(signal.SIGINT)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "is paused, not lost: no worker runs it now. Resume it by running the same command again" in err
    assert "Traceback" not in err
    service = Service(SQLiteStore(db))
    [execution] = service.list_executions().items
    assert execution.status is ExecutionStatus.QUEUED, "handed back, not left leased"
    service.close()
    again = agentspan("run", "cli_agents:researcher", "find", "--db", str(db), env={"OPENAI_BASE_URL": fake.base_url})
    assert again.returncode == 0, again.stderr
    assert f"resuming execution {execution.id}" in again.stderr and "the answer" in again.stdout


def test_ctrl_c_on_a_remote_run_says_it_goes_on_and_how_to_reattach(server: str) -> None:
    with HttpClient(server) as client:
        client.put_definition("cli-researcher", kind="agent")
        run = _popen("run", "cli-researcher", "find", "--server", server)
        _read_until(run.stderr, "waiting for a worker")
        run.send_signal(signal.SIGINT)
        _out, err = run.communicate(timeout=60)
        [execution] = client.list_executions().items
    assert run.returncode == 130
    assert (
        f"stopped following; execution {execution.id} goes on in its worker. Reattach: agentspan executions"
        f" follow {execution.id}"
    ) in err
    assert execution.status is ExecutionStatus.QUEUED


def test_follow_tails_a_run_live(server: str, fake: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpClient(server) as client:
        execution = client.create_execution("cli-researcher", {"prompt": "find"})
        follow = _popen("executions", "follow", execution.id, "--server", server)
        _read_until(follow.stdout, f"following execution {execution.id} of cli-researcher (queued)")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        worker = start_worker(server=server, target="cli_agents:researcher")
        try:
            out, err = follow.communicate(timeout=120)
        finally:
            stop(worker)
    assert follow.returncode == 0, err
    lines = out.splitlines()
    assert any(line.endswith("claimed it") for line in lines)
    assert lines.count("  ✓ tool search") == 3 and lines[-1] == "completed"


def test_a_run_waiting_on_a_dead_workers_lease_says_so(server: str) -> None:
    with HttpClient(server) as client:
        client.put_definition("cli-researcher", kind="agent")
        execution = client.create_execution("cli-researcher", {"prompt": "find"}, idempotency_key="k1")
        assert client.claim("vanished-worker", ["cli-researcher"], lease_seconds=60) is not None
        run = _popen("run", "cli-researcher", "find", "--idempotency-key", "k1", "--server", server)
        seen = _read_until(run.stderr, "lease runs out")
        client.cancel_execution(execution.id)
        _out, err = run.communicate(timeout=60)
    assert f"execution {execution.id} is running, held by worker vanished-worker; if that worker died" in seen[-1]
    assert run.returncode == 1 and "cancelled" in err


def test_a_replayed_failure_says_it_is_recorded_and_how_to_start_fresh(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    with FakeOpenAIServer([FakeOpenAIServer.error(400, "bad request: model not found")]) as fake:
        args = ("run", "cli_agents:researcher", "find", "--idempotency-key", "once", "--db", str(db))
        first = agentspan(*args, env={"OPENAI_BASE_URL": fake.base_url})
        assert first.returncode == 1 and "model not found" in first.stdout
        requests = fake.request_count
        second = agentspan(*args, env={"OPENAI_BASE_URL": fake.base_url})
        assert fake.request_count == requests, "nothing ran again"
    assert second.returncode == 1
    assert "this is the recorded result of execution" in second.stderr
    assert "nothing ran now. To start fresh: another --idempotency-key, or agentspan executions retry" in second.stderr


def test_show_says_a_failure_was_replayed_from_an_earlier_attempt(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("charge", {})
    first = service.claim("w1", ["charge"], lease_seconds=60)
    assert first is not None
    error = ErrorInfo(type="builtins.ValueError", message="card declined")
    failed = StepRecord(key="step:charge", kind="step", name="charge", status=StepStatus.FAILED, error=error)
    service.write_records(execution.id, "w1", first.epoch, [failed])
    service.expire_leases(["w1"])  # the worker died after recording the failure
    second = service.claim("w2", ["charge"], lease_seconds=60)
    assert second is not None  # replays the recorded failure and fails with it
    service.write_records(execution.id, "w2", second.epoch, [FinishRecord(status="failed", error=error)])
    service.close()
    shown = agentspan("executions", "show", execution.id, "--db", str(db_path))
    assert (
        "note:   this failure is the recorded result of step charge from attempt #1; attempt #2 replayed it"
        " (a recorded failure is raised again, not retried). To start fresh: agentspan executions retry"
    ) in shown.stdout


def test_bad_values_and_unusable_paths_are_one_line(tmp_path: Path, db_path: Path) -> None:
    Service(SQLiteStore(db_path)).close()
    status = agentspan("executions", "list", "--status", "bogus", "--db", str(db_path))
    assert status.returncode == 2
    assert status.stderr.strip().startswith("agentspan: unknown status 'bogus'; use one of queued, running")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    for command in (["start", "x"], ["run", "cli_agents:researcher", "hi"]):
        done = agentspan(*command, "--db", str(blocked / "x.db"))
        assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and str(blocked) in done.stderr


@pytest.mark.slow
def test_an_unreachable_server_is_retried_then_reported_in_one_line() -> None:
    from processes import free_port

    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    done = agentspan("executions", "list", "--server", url, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert any("retrying in" in line for line in lines[:-1]), "the retries are said while they happen"
    assert lines[-1].startswith(f"agentspan: cannot reach the Agentspan server at {url}")
    assert "Traceback" not in done.stderr


def test_hints_name_the_cli_as_it_was_called(db_path: Path) -> None:
    """Called as .venv/bin/agentspan without an activated venv, the hints say .venv/bin/agentspan."""
    script = Path(sys.executable).parent / "agentspan"
    service = Service(SQLiteStore(db_path))
    for i in range(3):
        service.create_execution("echo", {"i": i})
    service.close()
    env = {**_env(), "PATH": "/usr/bin:/bin"}  # no venv on the PATH: `agentspan` alone would not be found
    listed = subprocess.run(
        [str(script), "executions", "list", "--db", str(db_path), "--limit", "2"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"next page: {script} executions list --limit 2 --cursor " in listed.stdout
