"""The worker: claims executions, runs them under a durable context, heartbeats, finishes them."""

from __future__ import annotations

import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from ..client import Client
from ..client._retry import FOREVER, Backoff
from ..durable._codec import error_info
from ..durable._context import DurableContext, Suspended, WorkerStopping
from ..durable._definitions import FunctionDefinition
from ..durable._writer import JournalWriter, transient
from ..errors import (
    ConfigurationError,
    LeaseLostError,
    NotJSONError,
    TransportError,
    UnavailableError,
)
from ..runtime import Claim, FinishRecord
from ._aio import run_async
from ._liveness import worker_id_for_process

__all__ = ["Worker", "default_worker_id"]

log = logging.getLogger("agentspan.worker")


def default_worker_id() -> str:
    """``host:pid:token.random``: unique, says where the worker runs, and lets this host tell when its
    process died (the token names a lock file the live process holds)."""
    return worker_id_for_process()


class _Interrupted(Exception):
    """Raised by the signal handler to leave a blocking claim when no execution runs."""


class Worker:
    """Runs durable functions that a runtime queues for them.

    Args:
        client: The runtime (in-process :class:`~agentspan.runtime.Service` or an ``HttpClient``).
        functions: Durable functions (decorated with ``@durable.function``) this worker can run.
        worker_id: Identifies the worker in leases (default: host, pid and a random suffix).
        lease_seconds: How long a lease lasts without a heartbeat; a dead worker's executions are
            taken over after this long.
        poll_seconds: How long one claim request waits for work (long poll).
    """

    def __init__(
        self,
        client: Client,
        functions: Iterable[Callable[..., Any]],
        *,
        worker_id: str | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 10.0,
    ) -> None:
        self.client = client
        self.definitions: dict[str, FunctionDefinition] = {}
        for fn in functions:
            definition = FunctionDefinition.of(fn)
            if definition.name in self.definitions and self.definitions[definition.name].fn is not fn:
                raise ConfigurationError(f"two different functions are named {definition.name!r}")
            self.definitions[definition.name] = definition
        if not self.definitions:
            raise ConfigurationError("a worker needs at least one durable function to run")
        self.worker_id = worker_id or default_worker_id()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._stopping = threading.Event()
        self._current: DurableContext | None = None
        self._outage: Backoff | None = None

    @property
    def names(self) -> list[str]:
        """The names this worker claims by."""
        return sorted(self.definitions)

    def stop(self) -> None:
        """Stop claiming; the running execution finishes its current step, then is released."""
        self._stopping.set()
        current = self._current
        if current is not None:
            current.stop_requested.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    def run(self, *, max_executions: int | None = None, handle_signals: bool = False) -> int:
        """Claim and run executions until stopped; returns how many it ran.

        Args:
            max_executions: Return after this many.
            handle_signals: Stop gracefully on SIGTERM and SIGINT (main thread only): the current
                step finishes, the execution is released for another worker, the loop ends.
        """
        count = 0
        with self._signals() if handle_signals else contextlib.nullcontext():
            while not self._stopping.is_set() and (max_executions is None or count < max_executions):
                try:
                    claim = self._claim()
                except _Interrupted:
                    break
                if claim is None:
                    continue
                self.execute(claim)
                count += 1
        return count

    def _claim(self) -> Claim | None:
        """One long poll for work; while the server is unreachable or busy, wait for it (forever)."""
        try:
            claim = self.client.claim(
                self.worker_id, self.names, wait_seconds=self.poll_seconds, lease_seconds=self.lease_seconds
            )
        except (TransportError, UnavailableError) as exc:
            if self._outage is None:
                self._outage = Backoff(FOREVER, sleep=self._stopping.wait)
            self._outage.wait(f"worker {self.worker_id} cannot get work: {exc.message}")
            return None
        if self._outage is not None:
            log.warning("worker %s: the server answers again", self.worker_id)
            self._outage = None
        return claim

    def run_once(self, *, wait_seconds: float = 0.0) -> bool:
        """Claim one execution (waiting up to ``wait_seconds``) and run it; False if none came."""
        claim = self.client.claim(
            self.worker_id, self.names, wait_seconds=wait_seconds, lease_seconds=self.lease_seconds
        )
        if claim is None:
            return False
        self.execute(claim)
        return True

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("worker %s: signal %s, stopping after the current step", self.worker_id, signum)
            idle = self._current is None
            self.stop()
            if idle:
                raise _Interrupted()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # --- one execution -----------------------------------------------------------------------------
    def execute(self, claim: Claim) -> None:
        """Run one claimed execution to its end, suspension, release or lost lease.

        Nothing escapes: an unexpected error (a bug, a write the server refuses, a store error) fails
        the execution with the error recorded, or hands it back to the queue when the error may pass,
        and the worker goes on to its next claim.
        """
        execution = claim.execution
        writer = JournalWriter(self.client, execution.id, self.worker_id, claim.epoch, retry_seconds=self.lease_seconds)
        beat: _Heartbeat | None = None
        try:
            definition = self.definitions.get(execution.name)
            if definition is None:  # cannot happen through claim(), which names only known functions
                writer.write(FinishRecord(status="released"))
                return
            done = sum(step.status.value == "completed" for step in claim.journal)
            log.info(
                "worker %s claimed execution %s of %s%s", self.worker_id, execution.id, execution.name,
                f", resuming at step {done + 1} ({done} recorded steps replay)" if done else "",
            )  # fmt: skip
            ctx = DurableContext(claim, writer, strict=definition.strict)
            if self._stopping.is_set():
                ctx.stop_requested.set()
            beat = _Heartbeat(self, ctx, claim)
            self._current = ctx
            beat.start()
            self._finish(ctx, writer, beat, definition, execution.input)
        except LeaseLostError as exc:
            log.warning("worker %s lost execution %s: %s", self.worker_id, execution.id, exc.message)
        except (TransportError, UnavailableError) as exc:
            # The server stayed unreachable longer than the client's retry policy allows: this
            # attempt is over, but the execution is not lost. Its lease expires and a worker (this
            # one, once the server answers again) resumes it from its journal.
            log.warning(
                "worker %s gave up on execution %s for now: %s; it resumes from its journal once its lease expires",
                self.worker_id, execution.id, exc.message,
            )  # fmt: skip
        except Exception as exc:
            self._give_up(claim, exc)
        finally:
            self._current = None
            if beat is not None:
                beat.stop()
            writer.close()

    def _finish(
        self, ctx: DurableContext, writer: JournalWriter, beat: _Heartbeat, definition: FunctionDefinition, data: Any
    ) -> None:
        record: FinishRecord
        try:
            with ctx.activate():
                result = _call(definition.fn, data)
            try:
                output = definition.codec.encode(result, f"the result of {definition.name}")
                record = FinishRecord(status="completed", output=output)
            except NotJSONError as exc:
                record = FinishRecord(status="failed", error=error_info(exc))
        except Suspended:
            record = FinishRecord(status="waiting")
        except WorkerStopping:
            reason = beat.failure
            record = FinishRecord(status="released", error=None if reason is None else error_info(reason))
        except LeaseLostError:
            raise
        except Exception as exc:
            if writer.failure is not None:
                raise writer.failure from exc
            record = FinishRecord(status="failed", error=error_info(exc))
        writer.write(record)
        ending = {"waiting": "is suspended (waiting)", "released": "is handed back (worker stopping)"}
        failure = f": {record.error.type}: {record.error.message}" if record.error is not None else ""
        log.info("worker %s: execution %s %s%s", self.worker_id, ctx.execution_id,
                 ending.get(record.status, record.status), failure)  # fmt: skip

    def _give_up(self, claim: Claim, exc: Exception) -> None:
        """Record an unexpected error: the execution fails with it, or (when it may pass) is queued again."""
        execution_id = claim.execution.id
        retry = transient(exc)
        log.error(
            "worker %s: unexpected error in execution %s, %s: %s",
            self.worker_id, execution_id, "handing it back to the queue" if retry else "failing it",
            exc, exc_info=exc,
        )  # fmt: skip
        record = FinishRecord(status="released" if retry else "failed", error=error_info(exc))
        try:
            self.client.write_records(execution_id, self.worker_id, claim.epoch, [record])
        except Exception as again:
            log.error(
                "worker %s could not record that (%s); execution %s is queued again once its lease lapses",
                self.worker_id, again, execution_id,
            )  # fmt: skip


def _call(fn: Callable[..., Any], data: Any) -> Any:
    kwargs = data if isinstance(data, dict) else {}
    if not isinstance(data, dict) and data is not None:
        raise TypeError(f"the input of a durable function must be an object of arguments, not {type(data).__name__}")
    if inspect.iscoroutinefunction(fn):
        return run_async(fn(**kwargs))  # on the process's one loop (see ._aio)
    return fn(**kwargs)


class _Heartbeat:
    """Renews the lease in the background; on a lost lease or a cancellation, stops the execution.

    A failed heartbeat (any error: the server unreachable, a transport bug) is retried sooner than
    the next regular one; if none succeeds for a whole lease, the lease is gone and the execution is
    stopped at its next step and handed back with the error (:attr:`failure`) recorded.
    """

    def __init__(self, worker: Worker, ctx: DurableContext, claim: Claim) -> None:
        self._worker = worker
        self._ctx = ctx
        self._claim = claim
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentspan-heartbeat", daemon=True)
        self.failure: Exception | None = None
        """The error that made the heartbeat give up, if it did."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        lease = self._worker.lease_seconds
        interval = lease / 3
        execution_id = self._claim.execution.id
        renewed = time.monotonic()
        failures = 0
        wait = interval
        while not self._done.wait(wait):
            try:
                beat = self._worker.client.heartbeat(
                    execution_id, self._worker.worker_id, self._claim.epoch, lease_seconds=lease
                )
            except LeaseLostError:
                self._ctx.stop_requested.set()
                return
            except Exception as exc:  # unreachable server, locked store, transport bug: keep trying
                failures += 1
                if time.monotonic() - renewed >= lease:
                    log.error("heartbeat for %s failed for a whole lease, stopping it: %s", execution_id, exc)
                    self.failure = exc
                    self._ctx.stop_requested.set()
                    return
                wait = min(interval, _FIRST_RETRY * 2 ** (failures - 1))
                log.warning("heartbeat for %s failed, retrying in %.2f s: %s", execution_id, wait, exc)
                continue
            renewed, failures, wait = time.monotonic(), 0, interval
            if beat.cancel_requested:
                self._ctx.stop_requested.set()
                return


_FIRST_RETRY = 0.05
