"""A program that runs an OpenAI Agents SDK agent with an output guardrail (run as
``python guarded_program.py``). Each check appends ``check pass|fail\\t<pid>`` to ``AGENT_LOG``; the
tool ``lookup`` appends ``lookup <account>\\t<pid>`` and then waits until the file ``GATE`` exists (the
test kills the process while it waits). The model is the SDK's Chat Completions model at
``OPENAI_BASE_URL``; the executions are kept in the embedded runtime's SQLite file ``AGENTSPAN_DB``.
Run again after a SIGKILL, it resumes the run."""

from __future__ import annotations

import os
import re
import time

import openai
from agents import Agent, OpenAIChatCompletionsModel, function_tool
from processes import log_call

from agentspan.agents import AgentRuntime, Guardrail, GuardrailResult

CARD = re.compile(r"\b\d{4}(?:[ -]?\d{4}){3}\b")


def no_card(text: str) -> GuardrailResult:
    passed = CARD.search(text) is None
    log_call(f"check {'pass' if passed else 'fail'}", pause=0)
    return GuardrailResult(passed=passed, message="Do not write card numbers.")


@function_tool
def lookup(account: str) -> str:
    """Look up an account."""
    log_call(f"lookup {account}", pause=0)
    while not os.path.exists(os.environ["GATE"]):
        time.sleep(0.05)
    return f"account {account} has a card on file"


def main() -> None:
    client = openai.AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="test", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    agent = Agent(name="guarded-agent", instructions="Help.", model=model, tools=[lookup])
    with AgentRuntime(serve_http=False) as runtime:
        result = runtime.run(agent, "what card?", guardrails=[Guardrail(no_card)], timeout=120)
    print(result.output)


if __name__ == "__main__":
    main()
