"""The fake OpenAI-compatible server run from a shell: a chosen port, a reply file, the export line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from processes import TESTS, free_port
from test_cli import agentspan


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _export_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the server has printed it: it is listening by then
        if line.startswith("export OPENAI_BASE_URL="):
            return line.strip()
    raise AssertionError(f"no export line; stderr: {proc.stderr.read() if proc.stderr else ''}")


@pytest.mark.parametrize("command", [["-m", "agentspan.testing.fake_openai"], ["-m", "agentspan", "fake-openai"]])
def test_the_fake_server_runs_from_a_shell_with_a_reply_file(tmp_path: Path, command: list[str]) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([{"error": 429, "message": "slow down"}, [["search", {"q": "x"}]], "the answer"]))
    port = free_port()
    proc = _start(*command, "--port", str(port), "--script", str(replies))
    try:
        assert _export_line(proc) == f"export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1"
        first = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert first.status_code == 429 and first.json()["error"]["message"] == "slow down"
        # The exported URL is all an agent run in another process needs.
        url = first.url.copy_with(path="/v1")
        done = agentspan(
            "run", "cli_agents:researcher", "find", "--db", str(tmp_path / "run.db"),
            env={"OPENAI_BASE_URL": str(url), "OPENAI_API_KEY": "fake-key"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "the answer" in done.stdout and "tool calls: 1" in done.stdout
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped after 3 request(s)" in out
    assert "Traceback" not in err


def test_a_bad_reply_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["ok", {"tool": "x"}]))
    done = subprocess.run(
        [sys.executable, "-m", "agentspan", "fake-openai", "--port", "0", "--script", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith("fake-openai: reply 1: expected a text answer")
    missing = subprocess.run(
        [sys.executable, "-m", "agentspan.testing.fake_openai", "--script", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "no reply file" in missing.stderr and "Traceback" not in missing.stderr
