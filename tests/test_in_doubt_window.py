"""The in-doubt mark is truthful for steps whose policy needs it: a CONFIRM or FAIL step's *started*
record is durable before the step runs, so a SIGKILL inside it leaves it in doubt in the journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from processes import TESTS, wait_until

from agentspan.runtime import Service, SQLiteStore, StepStatus

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentspan import durable

    inside = Path(sys.argv[2])

    @durable.step(in_doubt=durable.InDoubt[sys.argv[3]])
    def charge(order: str) -> str:
        inside.touch()
        time.sleep(600)  # killed here
        return "charged"

    @durable.function
    def pay(order: str) -> str:
        return charge(order)

    with durable.Runtime(db=sys.argv[1]) as runtime:
        runtime.run(pay, "o1")
    """
)


@pytest.mark.parametrize("policy", ["CONFIRM", "FAIL"])
def test_a_step_killed_inside_is_in_doubt_in_the_journal(tmp_path: Path, policy: str) -> None:
    script = tmp_path / "pay.py"
    script.write_text(SCRIPT)
    db, inside = tmp_path / "pay.db", tmp_path / "inside"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(inside), policy], env=env)
    try:
        wait_until(inside.exists, "the step to start")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    service = Service(SQLiteStore(db))
    try:
        (execution,) = service.list_executions(name="pay").items
        steps = service.get_journal(execution.id)
        assert [(s.name, s.status, s.attempt) for s in steps] == [("charge", StepStatus.STARTED, 1)]
    finally:
        service.close()
