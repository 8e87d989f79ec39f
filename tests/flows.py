"""Durable functions that the crash tests run in worker subprocesses (``agentspan worker flows:...``).

Every step appends ``<label>\\t<idempotency key>\\t<pid>`` to a side-effect file, so the tests can
count how often each step really ran, and in which process.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from agentspan import durable


def _effect(log_path: str, label: str) -> None:
    info = durable.current_step()
    key = info.idempotency_key if info else "-"
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"{label}\t{key}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())


@durable.step(kind="tool")
def effect(log_path: str, label: str, delay: float) -> str:
    """A step with a side effect that takes ``delay`` seconds."""
    _effect(log_path, label)
    time.sleep(delay)
    return f"did {label}"


@durable.function
def sequence(log_path: str, steps: int = 20, delay: float = 0.05) -> list[str]:
    """``steps`` side effects one after another."""
    return [effect(log_path, f"step{i}", delay) for i in range(1, steps + 1)]


@durable.step(kind="tool")
async def effect_async(log_path: str, label: str, delay: float) -> str:
    """The async twin of :func:`effect`."""
    _effect(log_path, label)
    await asyncio.sleep(delay)
    return f"did {label}"


@durable.function
async def fan_out_async(log_path: str, seed: int = 0) -> list[str]:
    """Ten steps started together with asyncio; they finish in a random order."""
    rng = random.Random(seed)
    delays = [rng.uniform(0.05, 1.5) for _ in range(10)]
    results = await asyncio.gather(*(effect_async(log_path, f"p{i}", delays[i]) for i in range(10)))
    return list(results)


@durable.function
def fan_out_threads(log_path: str, seed: int = 0) -> list[str]:
    """Ten steps started together on ten threads; they finish in a random order."""
    rng = random.Random(seed)
    delays = [rng.uniform(0.05, 1.5) for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(effect, log_path, f"p{i}", delays[i]) for i in range(10)]
        return [f.result() for f in futures]


functions = [sequence, fan_out_async, fan_out_threads]
