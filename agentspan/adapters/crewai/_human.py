"""Human input inside an Agentspan run: a durable wait on the server instead of a read from stdin.

:func:`ask_human` suspends the execution until the answer arrives as the signal it names (holding no
process); the answer is the feedback text, an empty answer accepting the draft. The wait records
what it waits for (``details``: the task, the agent, its draft) for whoever answers.

Tasks with ``human_input=True`` ask through CrewAI's human-input provider (a context variable that
both of CrewAI's agent executors read); :func:`human_input` installs :class:`DurableHumanInput` as
that provider for the run. Each round of feedback is a wait: the agent's draft, the feedback, the
agent's next draft, until an empty answer accepts it. A resumed run replays the answered rounds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crewai.core.providers.human_input import (
    AsyncExecutorContext,
    ExecutorContext,
    SyncHumanInputProvider,
    reset_provider,
    set_provider,
)

from ...durable._codec import to_json
from ...durable._context import current_context
from ...errors import ConfigurationError
from ...runtime._human import HUMAN_PREFIX, feedback_of
from ._scope import current_run

__all__ = ["HUMAN_PREFIX", "DurableHumanInput", "ask_human", "feedback_of", "human_input"]


def ask_human(details: dict[str, Any]) -> str:
    """Wait durably for a human's answer to ``details`` (JSON) and return it.

    The signal is ``human:<digest>`` of the enclosing step and ``details`` (``.1``, ``.2``... when the
    same question is asked again in the run), so a resumed run waits for the same signal.
    """
    found = current_context()
    state = current_run()
    if found is None or state is None:
        raise ConfigurationError("ask_human() is only available inside an Agentspan run")
    ctx, parent = found
    recorded = to_json(details, "what the human input is asked for", check=False)
    seed = json.dumps([parent, recorded], sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
    with state.lock:
        n = state.asked.get(digest, 0)
        state.asked[digest] = n + 1
    signal = f"{HUMAN_PREFIX}{digest}" + (f".{n}" if n else "")
    # The framework is recorded for the approvals inbox, after the signal is named (so names stay).
    return feedback_of(ctx.wait_for_signal(signal, kind="human", details={**recorded, "framework": "crewai"}))


def _draft(answer: Any) -> str:
    output = answer.output
    return output if isinstance(output, str) else str(output.model_dump_json())


def _details(answer: Any, context: ExecutorContext, round_: int) -> dict[str, Any]:
    task = context.task
    return {
        "task": None if task is None else str(task.description),
        "expected_output": None if task is None else str(task.expected_output),
        "agent": str(getattr(context.agent, "role", "") or ""),
        "draft": _draft(answer),
        "round": round_,
    }


class DurableHumanInput(SyncHumanInputProvider):
    """CrewAI's human-input provider for Agentspan runs: feedback is a durable wait, not ``input()``.

    Outside an Agentspan run (and in CrewAI's training mode) it is CrewAI's own terminal provider.
    """

    def handle_feedback(self, formatted_answer: Any, context: ExecutorContext) -> Any:
        """Ask for feedback on the draft until an empty answer accepts it; each round re-runs the agent."""
        if current_run() is None or context._is_training_mode():
            return super().handle_feedback(formatted_answer, context)
        answer, round_ = formatted_answer, 0
        while context.ask_for_human_input:
            feedback = ask_human(_details(answer, context, round_))
            if not feedback.strip():
                context.ask_for_human_input = False
                break
            context.messages.append(context._format_feedback_message(feedback))
            answer = context._invoke_loop()
            round_ += 1
        return answer

    async def handle_feedback_async(self, formatted_answer: Any, context: AsyncExecutorContext) -> Any:
        """:meth:`handle_feedback` on CrewAI's async path."""
        if current_run() is None or context._is_training_mode():
            return await super().handle_feedback_async(formatted_answer, context)
        answer, round_ = formatted_answer, 0
        while context.ask_for_human_input:
            feedback = ask_human(_details(answer, context, round_))
            if not feedback.strip():
                context.ask_for_human_input = False
                break
            context.messages.append(context._format_feedback_message(feedback))
            answer = await context._ainvoke_loop()
            round_ += 1
        return answer


@contextmanager
def human_input() -> Iterator[None]:
    """Answer CrewAI's requests for human input durably while the enclosed code runs (the provider is
    a context variable: the threads and tasks the run starts inherit it)."""
    token = set_provider(DurableHumanInput())
    try:
        yield
    finally:
        reset_provider(token)
