"""Implicit resume (same agent, same input, no idempotency key) attaches only to abandoned executions,
and a dead local worker is recognised by a lock its live process holds, not by its process id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from processes import TESTS

from agentspan.runtime import ExecutionStatus, Service, SQLiteStore
from agentspan.worker._liveness import worker_gone, worker_id_for_process

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentspan.agents import Agent, AgentRuntime, tool
    from agentspan.testing import ScriptedModel

    barrier = Path(sys.argv[2])

    @tool
    def meet(who: str) -> str:
        \"\"\"Wait until both copies of this script are inside this tool call.\"\"\"
        (barrier / str(__import__("os").getpid())).touch()
        deadline = time.monotonic() + 30
        while len(list(barrier.iterdir())) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the other copy never got here: the two runs were not separate")
            time.sleep(0.02)
        return "met"

    agent = Agent(name="twin", model=ScriptedModel([[("meet", {"who": "other"})], "done"]), tools=[meet])
    with AgentRuntime(db=sys.argv[1], serve_http=False) as runtime:
        result = runtime.run(agent, "same input")
    print(result.execution_id, result.output)
    """
)


@pytest.mark.slow
def test_two_copies_of_a_script_started_together_run_separate_executions(tmp_path: Path) -> None:
    script = tmp_path / "twin.py"
    script.write_text(SCRIPT)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    db = tmp_path / "twin.db"
    Service(SQLiteStore(db)).close()  # the schema exists before either copy opens the file
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))}
    copies = [
        subprocess.Popen([sys.executable, str(script), str(db), str(barrier)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [copy.communicate(timeout=90) for copy in copies]
    for copy, (_out, err) in zip(copies, outputs, strict=True):
        assert copy.returncode == 0, err.decode()
        assert b"resuming" not in err, "nothing crashed, so nothing resumes"
    ids = {out.split()[0] for out, _ in outputs}
    assert len(ids) == 2, "each copy ran its own execution"
    service = Service(SQLiteStore(db))
    try:
        executions = service.list_executions(name="twin").items
        assert sorted(e.status for e in executions) == [ExecutionStatus.COMPLETED] * 2
    finally:
        service.close()


LIVE = (
    "from agentspan.worker._liveness import worker_id_for_process; print(worker_id_for_process(), flush=True); input()"
)


def test_a_worker_is_alive_while_its_process_lives_and_gone_once_it_is_killed(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTSPAN_LOCK_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", LIVE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    worker_id = proc.stdout.readline().decode().strip()
    os.environ["AGENTSPAN_LOCK_DIR"] = str(tmp_path)
    try:
        assert worker_gone(worker_id) is False
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.stdout.close()
        assert worker_gone(worker_id) is True
    finally:
        del os.environ["AGENTSPAN_LOCK_DIR"]


def test_a_reused_process_id_does_not_make_a_dead_worker_look_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a container every start is PID 1: a dead worker's id names a PID that is alive again."""
    monkeypatch.setenv("AGENTSPAN_LOCK_DIR", str(tmp_path))
    (tmp_path / "0123456789abcdef.lock").touch()  # left behind by a SIGKILLed process: nobody holds it
    assert worker_gone(f"{socket.gethostname()}:{os.getpid()}:0123456789abcdef.a1b2c3") is True
    assert worker_gone(f"{socket.gethostname()}:1:0123456789abcdef.a1b2c3") is True


def test_this_process_and_other_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSPAN_LOCK_DIR", str(tmp_path))
    assert worker_gone(worker_id_for_process()) is False
    assert worker_gone("some-other-host:1:0123456789abcdef.a1b2c3") is None


def test_a_run_this_processs_own_worker_holds_is_resumed_not_duplicated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an approval, this process's worker claims the run at once; calling again attaches to it."""
    from agentspan.durable._runtime import find_unfinished

    monkeypatch.setenv("AGENTSPAN_LOCK_DIR", str(tmp_path))
    service = Service(SQLiteStore(tmp_path / "own.db"))
    try:
        execution = service.create_execution("own", {"prompt": "same"})
        assert service.claim(worker_id_for_process(), ["own"]) is not None
        found = find_unfinished(service, "own", {"prompt": "same"})
        assert found is not None and found.id == execution.id
        assert find_unfinished(service, "own", {"prompt": "same"}, exclude={execution.id}) is None
    finally:
        service.close()
