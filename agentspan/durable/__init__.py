"""Durable steps and durable functions: the primitive everything in Agentspan is built on.

```python
from agentspan import durable

@durable.step
def charge(order_id: str, amount: int) -> str: ...

@durable.function
def checkout(order_id: str) -> str:
    return charge(order_id, 42)

with durable.Runtime() as runtime:
    print(runtime.run(checkout, "A-1"))
```
"""

from ._context import InDoubt, StepInfo
from ._definitions import (
    FunctionDefinition,
    StepDefinition,
    current_step,
    function,
    sleep,
    step,
    wait_for_signal,
)
from ._runtime import ExecutionHandle, Runtime, default_db_path
from ._steps import run_step, run_step_async

__all__ = [
    "ExecutionHandle",
    "FunctionDefinition",
    "InDoubt",
    "Runtime",
    "StepDefinition",
    "StepInfo",
    "current_step",
    "default_db_path",
    "function",
    "run_step",
    "run_step_async",
    "sleep",
    "step",
    "wait_for_signal",
]
