"""How fast the web UI is, measured in a real browser (Debian's chromium, driven by Playwright).

    python benchmarks/ui_speed.py [--steps 1000] [--executions 10000] [--loads 20] [--pages 20]

1. The page of one long execution (``--steps`` steps: a native agent doing one tool call a turn):
   the clock starts when the browser is sent to the page and stops when it is interactive, that is
   when the graph is drawn and a click on a step has shown that step's input in the inspector. Each
   load is a fresh navigation (cold JavaScript state, warm HTTP cache, as a person reloading it). The
   graph of a journal over 300 steps opens with its first 300; "Draw every step" is timed too.
2. The executions list over ``--executions`` executions: the first page, then ``--pages`` clicks on
   "Older": how long each page takes to show, and how many executions the browser was sent (the list
   pages with a cursor: it never loads them all).

The embedded runtime serves both (SQLite, the server in-process), as ``AgentRuntime()`` does on a
laptop (``synchronous="normal"``, only to create the data quickly). There is no peer to run beside it here: the reference product's UI, Temporal's and LangGraph
Studio need their own servers (and LangGraph Studio an account), none of them installable offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _stats import summary
from playwright.sync_api import sync_playwright

from agentspan.agents import Agent, AgentRuntime, tool
from agentspan.testing import ScriptedModel

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@tool
def lookup(i: int) -> str:
    """Look a number up."""
    return f"value {i}"


def long_execution(runtime: AgentRuntime, steps: int) -> str:
    turns = max(1, steps // 2)
    script = ScriptedModel.research_script(turns, "lookup", lambda i: {"i": i})
    agent = Agent(name="long-haul", model=ScriptedModel(script), tools=[lookup], max_turns=turns + 5)
    return runtime.run(agent, "go").execution_id


def many_executions(runtime: AgentRuntime, count: int) -> None:
    service = runtime._runtime.service
    assert service is not None, "the benchmark runs the embedded runtime"
    for i in range(count):
        service.create_execution(f"agent-{i % 7}", {"n": i})


def measure_execution_page(page, base: str, execution_id: str, loads: int) -> list[float]:
    url = f"{base}/ui/executions/{execution_id}"
    samples = []
    for _ in range(loads + 1):  # the first load warms the HTTP cache and is not counted
        page.goto("about:blank")
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("[data-testid=graph][data-nodes]")
        point = page.evaluate(
            """() => { const cy = window.agentspanGraph; const n = cy.nodes('[key]')[3];
            const p = n.renderedPosition(); const box = cy.container().getBoundingClientRect();
            return {x: box.left + p.x, y: box.top + p.y, key: n.data('key')}; }"""
        )
        page.mouse.click(point["x"], point["y"])
        page.wait_for_selector(f"[data-testid=inspector][data-key='{point['key']}'] [data-testid=inspector-input]")
        samples.append(time.perf_counter() - start)
    return samples[1:]


def measure_draw_all(page, base: str, execution_id: str, loads: int) -> list[float]:
    """The "Draw every step" button on the same page: every step laid out (breadth-first beyond 500)."""
    samples = []
    for _ in range(loads):
        page.goto(f"{base}/ui/executions/{execution_id}")
        page.wait_for_selector("[data-testid=graph][data-windowed=true]")
        start = time.perf_counter()
        page.click("[data-testid=graph-all]")
        page.wait_for_selector("[data-testid=graph][data-windowed=false]")
        samples.append(time.perf_counter() - start)
    return samples


def measure_list(page, base: str, pages: int) -> tuple[list[float], list[int]]:
    sizes: list[int] = []

    def on_response(response) -> None:
        if "/api/executions?" in response.url:
            sizes.append(len(json.loads(response.body())["items"]))

    page.on("response", on_response)
    samples = []
    start = time.perf_counter()
    page.goto(f"{base}/ui/executions")
    page.wait_for_selector("[data-testid=execution-row]")
    samples.append(time.perf_counter() - start)
    for n in range(pages):
        first = page.get_attribute("[data-testid=execution-row]", "data-id")
        start = time.perf_counter()
        page.click("[data-testid=page-next]")
        page.wait_for_function(
            "(id) => document.querySelector('[data-testid=execution-row]').dataset.id !== id", arg=first
        )
        samples.append(time.perf_counter() - start)
        assert page.text_content("[data-testid=list-summary]").startswith(f"{(n + 1) * 50 + 1}–")
    page.remove_listener("response", on_response)
    return samples, sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory() as tmp,
        AgentRuntime(db=Path(tmp) / "ui.db", http_port=0, synchronous="normal") as runtime,
    ):
        assert runtime.http_url is not None
        base = runtime.http_url.removesuffix("/api")
        made = time.perf_counter()
        execution_id = long_execution(runtime, args.steps)
        steps = len(runtime.client.get_journal(execution_id))
        many_executions(runtime, args.executions)
        print(
            f"data: one execution of {steps} steps and {args.executions:,} more in {time.perf_counter() - made:.1f} s"
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page_times = measure_execution_page(page, base, execution_id, args.loads)
            all_times = measure_draw_all(page, base, execution_id, max(3, args.loads // 4))
            list_times, sizes = measure_list(page, base, args.pages)
            browser.close()
    rows = [
        (f"execution page, {steps} steps: open to interactive", summary(page_times), len(page_times)),
        (f"execution page: draw all {steps} steps (button)", summary(all_times), len(all_times)),
        ("executions list: first page", summary(list_times[:1]), 1),
        (f"executions list: next page (of {args.executions:,})", summary(list_times[1:]), len(list_times) - 1),
    ]
    print(f"\n{'what':<56} {'n':>4} {'median ms':>10} {'mean ms':>9} {'p99 ms':>8}")
    for what, s, n in rows:
        print(f"{what:<56} {n:>4} {s['median_ms']:>10.0f} {s['mean_ms']:>9.0f} {s['p99_ms']:>8.0f}")
    print(
        f"\nlist requests: {len(sizes)}, executions sent per request: at most {max(sizes)}"
        f" ({sum(sizes):,} in all for {args.pages + 1} pages of {args.executions:,})"
    )
    target = 1000.0
    worst = summary(page_times)["p99_ms"]
    print(f"execution page p99 {worst:.0f} ms vs the 1,000 ms target: {worst / target:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
