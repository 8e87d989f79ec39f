"""``agentspan run``: start an agent, show its steps as they run, print its result."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

from ..agents import Agent, AgentRuntime
from ..agents._result import AgentHandle
from ..agents._runtime import is_crewai, is_graph, is_openai_agent
from ._common import command_name, fail, import_target, server_url
from ._follow import Follower, describe_wait, lease_note

__all__ = ["cmd_run"]

_INTERRUPTED = 130  # the shell's code for "stopped by SIGINT"


def _say(text: str) -> None:
    print(f"agentspan: {text}", file=sys.stderr, flush=True)


def _agent(target: str) -> Any:
    agent = import_target(target)
    if not (isinstance(agent, Agent) or is_graph(agent) or is_openai_agent(agent) or is_crewai(agent)):
        fail(
            f"{target} is a {type(agent).__name__}, not an Agent, a compiled LangGraph graph, an OpenAI Agents SDK"
            " Agent, or a CrewAI Crew or Flow instance"
        )
    return agent


def _inputs(args: argparse.Namespace, agent: Any) -> Any:
    """The prompt, or a crew's or flow's --inputs: one clear line when the wrong one is given."""
    crewai = is_crewai(agent)
    if args.inputs is not None:
        if not crewai and not isinstance(agent, str):
            fail("--inputs is for CrewAI crews and flows; give an agent a prompt")
        if args.prompt is not None:
            fail("give either a prompt or --inputs, not both")
        try:
            inputs = json.loads(args.inputs)
        except json.JSONDecodeError as exc:
            fail(f"--inputs is not JSON: {exc}")
        if not isinstance(inputs, dict):
            fail(
                f'--inputs must be a JSON object of placeholder values, e.g. \'{{"topic": "AI"}}\', not {type(inputs).__name__}'
            )
        return inputs
    if crewai:
        if args.prompt is not None:
            fail(f"{args.target} is a CrewAI {type(agent).__name__}: give it --inputs '{{...}}' instead of a prompt")
        return {}
    if args.prompt is None:
        fail(f'{args.target} needs a prompt: agentspan run {args.target} "<prompt>"')
    if is_graph(agent):  # a compiled LangGraph graph: the prompt is the user message
        return {"messages": [("user", args.prompt)]}
    return args.prompt


def cmd_run(args: argparse.Namespace) -> int:
    url = server_url(args)
    local = ":" in args.target
    agent: Any = _agent(args.target) if local else args.target
    prompt = _inputs(args, agent)
    named_inputs = isinstance(agent, str) and args.inputs is not None  # a deployed crew or flow
    with AgentRuntime(url, db=args.db, serve_http=False) as runtime:
        if named_inputs:
            handle = runtime.start(agent, inputs=prompt, idempotency_key=args.idempotency_key)
        else:
            handle = runtime.start(agent, prompt, idempotency_key=args.idempotency_key)
        execution = runtime.client.get_execution(handle.execution_id)
        if execution.status.is_terminal:  # an idempotency key named a finished run: its recorded result
            result = handle.wait()
            result.print_result()
            _say(
                f"this is the recorded result of execution {execution.id}, which {execution.status.value} at"
                f" {execution.updated_at:%Y-%m-%d %H:%M:%S}; nothing ran now. To start fresh: another"
                f" --idempotency-key, or {command_name()} executions retry {execution.id}"
            )
            return 0 if result.is_success else 1
        follower = Follower(runtime.client, handle.execution_id, sys.stderr, prefix="agentspan: ")
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        try:  # from here on a Ctrl-C knows the execution, and says what becomes of it
            _say_what_it_waits_for(runtime, execution.name, handle, local)
            finished = follower.follow(deadline=deadline)
        except KeyboardInterrupt:
            if local:  # leaving the block stops this process's worker: it finishes the step, hands it back
                _say("interrupted: finishing the current step, then handing the execution back")
            interrupted = True
        else:
            interrupted = False
            if finished:
                result = handle.wait()
            else:
                status = handle.status.value
    if interrupted:
        _say_after_interrupt(handle.execution_id, local, args)
        return _INTERRUPTED
    if not finished:
        _say(
            f"execution {handle.execution_id} is still {status} after {args.timeout:g} s; it goes on."
            f" Follow it: {command_name()} executions follow {handle.execution_id}"
        )
        return 1
    result.print_result()
    return 0 if result.is_success else 1


def _say_what_it_waits_for(runtime: AgentRuntime, name: str, handle: AgentHandle, local: bool) -> None:
    """Before following: a run that no worker will pick up soon says so instead of hanging silently."""
    execution = runtime.client.get_execution(handle.execution_id)
    note = lease_note(execution)
    if note is not None and not local:
        _say(f"execution {execution.id} is running, {note}")
    elif execution.wait is not None:
        _say(
            f"execution {execution.id} waits for {describe_wait(execution.wait.model_dump(mode='json'), execution.id)}"
        )
    elif not local and runtime.client.agent_status(name).workers == 0:
        _say(
            f"waiting for a worker that serves {name} (none connected); start one: {command_name()} worker module:agent"
        )


def _say_after_interrupt(execution_id: str, local: bool, args: argparse.Namespace) -> None:
    """Ctrl-C: whether the run goes on without us, and how to get back to it."""
    if local:
        again = f"agentspan run {args.target} " + (
            f"--inputs {shlex.quote(args.inputs)}" if args.inputs is not None else shlex.quote(args.prompt or "")
        )
        if args.idempotency_key:
            again += f" --idempotency-key {args.idempotency_key}"
        _say(
            f"execution {execution_id} is paused, not lost: no worker runs it now. Resume it by running the"
            f" same command again ({again}), or serve it: {command_name()} worker {args.target}"
        )
    else:
        _say(
            f"stopped following; execution {execution_id} goes on in its worker. Reattach: agentspan executions"
            f" follow {execution_id}; stop it: agentspan executions cancel {execution_id}"
        )
