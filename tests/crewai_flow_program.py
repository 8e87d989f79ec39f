"""CrewAI flows for the durable-flow tests, and a program (``python crewai_flow_program.py``) that kicks
one off with ``durable(flow).kickoff``: its second method makes model and tool calls, each tool call
appending ``<label>\\t<pid>`` to the file named by ``AGENT_LOG``. Its model is ``crewai.LLM`` at
``OPENAI_BASE_URL``; its executions are kept in the embedded runtime's SQLite file ``AGENTSPAN_DB``.
Run again after a SIGKILL, it resumes the run and prints the flow's result and final state."""

from __future__ import annotations

import asyncio
import json
import os
from enum import StrEnum
from typing import Any

from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, and_, listen, or_, router, start
from crewai.flow.human_feedback import human_feedback
from crewai.tools import tool
from processes import log_call
from pydantic import BaseModel

from agentspan.durable import wait_for_signal


def llm() -> LLM:
    return LLM(model="gpt-4o-mini", base_url=os.environ["OPENAI_BASE_URL"], api_key="test", max_retries=0)


# --- CrewAI's documented router example (flows docs, "Router"), with a model deciding the route --------
class ExampleState(BaseModel):
    success_flag: bool = False
    topic: str = ""
    draft: str = ""


class RouterFlow(Flow[ExampleState]):
    @start()
    def start_method(self) -> str:
        print("Starting the structured flow")
        answer = llm().call(f"Is {self.state.topic or 'this'} a good topic? Answer yes or no.")
        self.state.success_flag = answer.strip().lower().startswith("yes")
        return answer

    @router(start_method)
    def second_method(self) -> str:
        if self.state.success_flag:
            return "success"
        return "failed"

    @listen("success")
    def third_method(self) -> str:
        self.state.draft = llm().call(f"Write one line about {self.state.topic}.")
        return self.state.draft

    @listen("failed")
    def fourth_method(self) -> str:
        return "no draft"

    @listen(or_(third_method, fourth_method))
    async def logger(self, result: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"result": result, "flag": self.state.success_flag}


# --- a flow whose second method makes model and tool calls (the crash test) -------------------------
@tool("search")
def search(query: str) -> str:
    """Search for information."""
    log_call(query)
    return f"results for {query}"


class Findings(BaseModel):
    queries: list[str] = []
    notes: list[str] = []


class ResearchFlow(Flow[Findings]):
    @start()
    def plan(self) -> list[str]:
        log_call("plan", pause=0)
        self.state.queries = [f"q{i}" for i in range(1, 6)]
        return self.state.queries

    @listen(plan)
    def research(self, queries: list[str]) -> str:
        model = llm()
        for query in queries:
            note = model.call(f"What to search for {query}?")
            self.state.notes.append(f"{note}: {search.run(query=query)}")
        return model.call("Summarise: " + "; ".join(self.state.notes))

    @listen(research)
    def report(self, summary: str) -> Findings:
        log_call("report", pause=0)
        return Findings(queries=self.state.queries, notes=[*self.state.notes, summary])


# --- structured state that a replayed method must put back ----------------------------------------------
class Tally(BaseModel):
    count: int = 0
    seen: list[str] = []


class CounterState(BaseModel):
    start: int = 0
    count: int = 0
    tally: Tally = Tally()


class CounterFlow(Flow[CounterState]):
    @start()
    def count(self) -> str:
        log_call("count", pause=0)
        self.state.count = self.state.start + 1
        self.state.tally = Tally(count=self.state.count, seen=["count"])
        return "counted"

    @listen(count)
    def add(self) -> Tally:
        by = wait_for_signal("go")["by"]
        log_call("added", pause=0)
        self.state.count += by
        return Tally(count=self.state.count, seen=[*self.state.tally.seen, "go"])


# --- a router whose route is not a pure function of the state (the replayed-choice test) --------------
class Route(StrEnum):
    LEFT = "left"
    RIGHT = "right"


class ChoiceFlow(Flow):  # unstructured state, as in CrewAI's docs
    @start()
    def begin(self) -> str:
        self.state["visits"] = self.state.get("visits", 0) + 1
        return "begun"

    @router(begin)
    def choose(self) -> Route:
        log_call("choose", pause=0)
        return Route.LEFT if os.environ.get("FLOW_ROUTE", "left") == "left" else Route.RIGHT

    @listen(Route.LEFT.value)
    def go_left(self) -> str:
        wait_for_signal("go")
        log_call("left", pause=0)
        return "went left"

    @listen(Route.RIGHT.value)
    def go_right(self) -> str:
        log_call("right", pause=0)
        return "went right"


# --- a cycle (a method runs several times) and listeners running side by side --------------------------
class LoopState(BaseModel):
    rounds: int = 0
    left: str = ""
    right: str = ""


class LoopFlow(Flow[LoopState]):
    @start("again")
    def work(self) -> int:
        log_call(f"work {self.state.rounds}", pause=0)
        self.state.rounds += 1
        return self.state.rounds * 10

    @router(work)
    def check(self) -> str:
        return "again" if self.state.rounds < 3 else "done"

    @listen("done")
    def left_side(self) -> str:
        log_call("left", pause=0)
        self.state.left = f"left after {self.state.rounds}"
        return "L"

    @listen("done")
    async def right_side(self) -> str:
        log_call("right", pause=0)
        await asyncio.sleep(0)
        self.state.right = f"right after {self.state.rounds}"
        return "R"

    @listen(and_(left_side, right_side))
    def finish(self) -> dict[str, Any]:
        wait_for_signal("go")
        log_call("finish", pause=0)
        return {"outputs": self.method_outputs, "left": self.state.left, "right": self.state.right}


# --- @human_feedback ---------------------------------------------------------------------------------------
class ReviewFlow(Flow):  # unstructured state, as in CrewAI's docs
    @start()
    @human_feedback(message="Please review this draft:")
    def draft(self) -> str:
        log_call("draft", pause=0)
        return "a draft about " + str(self.state.get("topic", "nothing"))

    @listen(draft)
    def publish(self, review: Any) -> dict[str, Any]:
        log_call("publish", pause=0)
        return {"output": review.output, "feedback": review.feedback}


class ApprovalFlow(Flow):  # unstructured state, as in CrewAI's docs
    @start()
    @human_feedback(message="Approve this plan?", emit=["approved", "rejected"], llm="gpt-4o-mini")
    def propose(self) -> str:
        log_call("propose", pause=0)
        return "plan A"

    @listen("approved")
    def carry_out(self) -> str:
        log_call("carry out", pause=0)
        return "carried out " + str(self.last_human_feedback.output if self.last_human_feedback else None)

    @listen("rejected")
    def drop(self) -> str:
        log_call("drop", pause=0)
        return "dropped"


# --- a crew kicked off inside a flow method -----------------------------------------------------------------
class CrewFlow(Flow):  # unstructured state, as in CrewAI's docs
    @start()
    def pick(self) -> str:
        return str(self.state.get("topic", "agents"))

    @listen(pick)
    def write(self, topic: str) -> str:
        writer = Agent(role="writer", goal="Write one line", backstory="A terse writer.", llm=llm())
        task = Task(description=f"Write one line about {topic}.", expected_output="One line.", agent=writer)
        return Crew(agents=[writer], tasks=[task]).kickoff().raw


def main() -> None:
    from agentspan.adapters.crewai import durable

    flow = ResearchFlow()
    result = durable(flow).kickoff(inputs={})
    print(json.dumps({"result": result.model_dump(), "state": flow.state.model_dump(exclude={"id"})}))


if __name__ == "__main__":
    main()
