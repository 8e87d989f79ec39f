"""The store contract: every Store implementation must pass these tests.

A test module subclasses :class:`StoreContract` and provides a ``store`` fixture.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agentspan.errors import ConflictError, InvalidInputError, LeaseLostError, NotFoundError
from agentspan.runtime import (
    DivergenceRecord,
    ErrorInfo,
    ExecutionStatus,
    FinishRecord,
    StepRecord,
    StepStatus,
    Store,
    WaitInfo,
)

T0 = 1_800_000_000.0


def _step(key: str, status: str = "completed", **fields: object) -> StepRecord:
    return StepRecord(key=key, kind="step", name=key.split(":")[0], status=StepStatus(status), **fields)  # type: ignore[arg-type]


def _create(store: Store, eid: str = "e1", name: str = "flow", now: float = T0, **kw: object) -> str:
    store.create_execution(eid, name, json.dumps(kw.get("input", {})), kw.get("key"), now)  # type: ignore[arg-type]
    return eid


def _claimed(store: Store, eid: str = "e1", name: str = "flow", worker: str = "w1") -> int:
    _create(store, eid, name)
    claim = store.claim(worker, [name], 30, T0 + 1)
    assert claim is not None and claim.execution.id == eid
    return claim.epoch


class StoreContract:
    """Behaviour every store keeps."""

    # --- executions -------------------------------------------------------------------------------
    def test_created_execution_is_queued_and_readable(self, store: Store) -> None:
        execution, created = store.create_execution("e1", "flow", '{"a": 1}', None, T0)
        assert created
        assert execution.status is ExecutionStatus.QUEUED
        assert store.get_execution("e1") == execution
        assert execution.input == {"a": 1}
        assert store.get_execution("nope") is None

    def test_same_idempotency_key_returns_the_same_execution(self, store: Store) -> None:
        first, created = store.create_execution("e1", "flow", "{}", "k", T0)
        again, created_again = store.create_execution("e2", "flow", "{}", "k", T0 + 1)
        assert created and not created_again
        assert again.id == first.id == "e1"
        assert store.get_execution("e2") is None

    def test_reusing_an_idempotency_key_with_other_input_is_a_conflict(self, store: Store) -> None:
        store.create_execution("e1", "flow", '{"a": 1}', "k", T0)
        with pytest.raises(ConflictError, match="different name or input"):
            store.create_execution("e2", "flow", '{"a": 2}', "k", T0)

    def test_listing_filters_and_pages_newest_first(self, store: Store) -> None:
        for i in range(5):
            _create(store, f"e{i}", "a" if i % 2 == 0 else "b", now=T0 + i)
        page = store.list_executions(
            status=None, name=None, created_after=None, created_before=None, limit=2, cursor=None
        )
        assert [e.id for e in page.items] == ["e4", "e3"]
        assert page.next_cursor is not None
        rest = store.list_executions(
            status=None, name=None, created_after=None, created_before=None, limit=10, cursor=page.next_cursor
        )
        assert [e.id for e in rest.items] == ["e2", "e1", "e0"]
        assert rest.next_cursor is None
        only_a = store.list_executions(
            status=ExecutionStatus.QUEUED, name="a", created_after=None, created_before=None, limit=10, cursor=None
        )
        assert [e.id for e in only_a.items] == ["e4", "e2", "e0"]
        window = store.list_executions(
            status=None, name=None,
            created_after=datetime.fromtimestamp(T0 + 1, UTC), created_before=datetime.fromtimestamp(T0 + 3, UTC),
            limit=10, cursor=None,
        )  # fmt: skip
        assert [e.id for e in window.items] == ["e2", "e1"]

    def test_listing_by_framework_and_search_with_summaries_and_the_total(self, store: Store) -> None:
        for i, (name, framework) in enumerate([("Billing", "native"), ("graph-x", "langgraph"), ("fn", None)]):
            store.create_execution(f"e{i}", name, "{}", None, T0 + i, framework=framework)
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        claim = store.claim("w1", ["Billing"], 30, T0 + 5)
        assert claim is not None
        store.write_records("e0", "w1", claim.epoch, [
            StepRecord(key="m", kind="llm", name="gpt-4o", status=StepStatus.COMPLETED, usage=usage),
            StepRecord(key="t", kind="tool", name="refund", status=StepStatus.COMPLETED),
            FinishRecord(status="completed", output=1),
        ], T0 + 6)  # fmt: skip

        def listed(**filters: object) -> tuple[list[str], int | None]:
            page = store.list_executions(
                status=None, name=None, created_after=None, created_before=None, limit=10, cursor=None,
                summary=True, **filters,  # type: ignore[arg-type]
            )  # fmt: skip
            return [e.id for e in page.items], page.total

        assert listed() == (["e2", "e1", "e0"], 3)
        assert listed(framework="langgraph") == (["e1"], 1)
        assert listed(q="bill") == (["e0"], 1)
        assert listed(q="E1") == (["e1"], 1)
        plain = store.list_executions(
            status=None, name=None, created_after=None, created_before=None, limit=10, cursor=None
        )
        assert plain.total is None and all(e.summary is None for e in plain.items)
        assert [e.framework for e in plain.items] == [None, "langgraph", "native"]
        summary = (
            store.list_executions(
                status=None, name="Billing", created_after=None, created_before=None, limit=1, cursor=None, summary=True
            )
            .items[0]
            .summary
        )
        assert summary is not None
        assert (summary.steps, summary.llm_calls, summary.tool_calls, summary.tokens) == (2, 1, 1, 15)
        assert summary.cost_usd == pytest.approx((10 * 2.50 + 5 * 10.00) / 1e6)
        assert summary.started_at == datetime.fromtimestamp(T0 + 5, UTC)
        assert summary.ended_at == datetime.fromtimestamp(T0 + 6, UTC)

    def test_a_cursor_the_store_did_not_issue_is_rejected(self, store: Store) -> None:
        with pytest.raises(InvalidInputError, match="cursor"):
            store.list_executions(
                status=None, name=None, created_after=None, created_before=None, limit=1, cursor="garbage!"
            )

    def test_cancel_is_idempotent_and_final(self, store: Store) -> None:
        _create(store)
        assert store.cancel_execution("e1", T0).status is ExecutionStatus.CANCELLED
        assert store.cancel_execution("e1", T0).status is ExecutionStatus.CANCELLED
        assert store.claim("w", ["flow"], 30, T0 + 10) is None
        epoch = _claimed(store, "e2")
        store.write_records("e2", "w1", epoch, [FinishRecord(status="completed", output=1)], T0 + 2)
        with pytest.raises(ConflictError, match="already completed"):
            store.cancel_execution("e2", T0 + 3)

    def test_cancelling_a_running_execution_fences_its_worker(self, store: Store) -> None:
        epoch = _claimed(store)
        store.cancel_execution("e1", T0 + 2)
        assert store.heartbeat("e1", "w1", epoch, 30, T0 + 3).cancel_requested
        with pytest.raises(LeaseLostError, match="cancelled"):
            store.write_records("e1", "w1", epoch, [_step("a:1")], T0 + 3)
        assert store.get_journal("e1") == []

    def test_delete_removes_everything_but_not_while_running(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [_step("a:1", output=1)], T0 + 2)
        with pytest.raises(ConflictError, match="cancel it"):
            store.delete_execution("e1")
        store.cancel_execution("e1", T0 + 3)
        store.delete_execution("e1")
        assert store.get_execution("e1") is None
        assert store.events_after("e1", 0, 100) == []
        with pytest.raises(NotFoundError):
            store.get_journal("e1")
        with pytest.raises(NotFoundError):
            store.delete_execution("e1")

    # --- claims, leases, fencing ------------------------------------------------------------------
    def test_claim_takes_the_oldest_execution_of_the_named_agents(self, store: Store) -> None:
        _create(store, "e1", "other", now=T0)
        _create(store, "e2", "flow", now=T0 + 1)
        _create(store, "e3", "flow", now=T0 + 2)
        claim = store.claim("w1", ["flow"], 30, T0 + 5)
        assert claim is not None
        assert claim.execution.id == "e2"
        assert claim.execution.status is ExecutionStatus.RUNNING
        assert claim.epoch == 1
        assert claim.lease_expires_at == datetime.fromtimestamp(T0 + 35, UTC)
        second = store.claim("w2", ["flow"], 30, T0 + 5)
        assert second is not None and second.execution.id == "e3"
        assert store.claim("w3", ["flow"], 30, T0 + 5) is None

    def test_an_expired_lease_is_claimed_again_with_a_new_epoch(self, store: Store) -> None:
        epoch = _claimed(store)
        assert store.claim("w2", ["flow"], 30, T0 + 20) is None  # lease still valid
        takeover = store.claim("w2", ["flow"], 30, T0 + 32)
        assert takeover is not None and takeover.epoch == epoch + 1
        types = [e.type for e in store.events_after("e1", 0, 100)]
        assert "lease.expired" in types
        with pytest.raises(LeaseLostError):
            store.write_records("e1", "w1", epoch, [_step("a:1")], T0 + 33)
        with pytest.raises(LeaseLostError):
            store.heartbeat("e1", "w1", epoch, 30, T0 + 33)
        store.write_records("e1", "w2", takeover.epoch, [_step("a:1", output=7)], T0 + 33)
        assert [s.output for s in store.get_journal("e1")] == [7]

    def test_heartbeat_extends_the_lease(self, store: Store) -> None:
        epoch = _claimed(store)
        beat = store.heartbeat("e1", "w1", epoch, 30, T0 + 25)
        assert beat.lease_expires_at == datetime.fromtimestamp(T0 + 55, UTC)
        assert store.claim("w2", ["flow"], 30, T0 + 40) is None

    def test_expire_leases_requeues_by_time_or_by_worker(self, store: Store) -> None:
        _claimed(store, "e1", worker="w1")
        _claimed(store, "e2", worker="w2")
        assert store.expire_leases(T0 + 5, ["w2"]) == ["e2"]
        assert store.get_execution("e2").status is ExecutionStatus.QUEUED  # type: ignore[union-attr]
        assert store.expire_leases(T0 + 5) == []
        assert store.expire_leases(T0 + 100) == ["e1"]
        assert store.get_execution("e1").status is ExecutionStatus.QUEUED  # type: ignore[union-attr]

    def test_next_wakeup_names_the_earliest_claimable_time(self, store: Store) -> None:
        assert store.next_wakeup(["flow"], T0) is None
        _claimed(store)
        assert store.next_wakeup(["flow"], T0 + 2) == pytest.approx(T0 + 31)

    # --- journal ------------------------------------------------------------------------------------
    def test_records_are_written_atomically_in_order(self, store: Store) -> None:
        epoch = _claimed(store)
        result = store.write_records(
            "e1", "w1", epoch,
            [_step("a:1", "started", input={"x": 1}), _step("b:1", "started"), _step("a:1", input={"x": 1}, output="A")],
            T0 + 2,
        )  # fmt: skip
        assert result.status is ExecutionStatus.RUNNING
        journal = store.get_journal("e1")
        assert [(s.key, s.status) for s in journal] == [("a:1", StepStatus.COMPLETED), ("b:1", StepStatus.STARTED)]
        assert journal[0].output == "A" and journal[0].input == {"x": 1}
        assert journal[0].seq < journal[1].seq

    def test_fork_copies_finished_steps_before_the_chosen_one_in_one_transaction(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records(
            "e1", "w1", epoch,
            [_step("a:1", input={"x": 1}, output="A", usage={"total_tokens": 3}), _step("n:1", "started"),
             _step("n:1/b:1", parent="n:1", output="B"), _step("n:1/c:1", parent="n:1", output="C"),
             _step("d:1", output="D")],
            T0 + 2,
        )  # fmt: skip
        fork, created = store.fork_execution("e1", "f1", "n:1/c:1", None, T0 + 3)
        assert created and fork.status is ExecutionStatus.QUEUED and fork.name == "flow" and fork.epoch == 0
        assert fork.forked_from is not None and (fork.forked_from.execution_id, fork.forked_from.step) == (
            "e1",
            "n:1/c:1",
        )
        journal = store.get_journal("f1")
        assert [(s.key, s.output, s.epoch) for s in journal] == [("a:1", "A", 0), ("n:1/b:1", "B", 0)]
        assert journal[0].input == {"x": 1} and journal[0].usage == {"total_tokens": 3}
        assert store.events_after("f1", 0, 10)[0].type == "execution.queued"
        assert store.events_after("e1", 0, 100)[-1].data == {"fork": "f1", "step": "n:1/c:1"}
        claim = store.claim("w2", ["flow"], 30, T0 + 4)
        assert claim is not None and claim.execution.id == "f1" and len(claim.journal) == 2
        with pytest.raises(NotFoundError, match="no step 'zz'"):
            store.fork_execution("e1", "f2", "zz", None, T0 + 5)
        assert store.get_execution("f2") is None

    def test_a_batch_with_a_bad_record_writes_nothing(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [_step("a:1", output=1)], T0 + 2)
        with pytest.raises(ConflictError, match="cannot change"):
            store.write_records("e1", "w1", epoch, [_step("b:1", output=2), _step("a:1", output=99)], T0 + 3)
        assert [(s.key, s.output) for s in store.get_journal("e1")] == [("a:1", 1)]

    def test_repeating_a_finished_step_is_harmless(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [_step("a:1", output=1)], T0 + 2)
        store.write_records("e1", "w1", epoch, [_step("a:1", "started"), _step("a:1", output=1)], T0 + 3)
        assert [(s.key, s.status, s.output) for s in store.get_journal("e1")] == [("a:1", StepStatus.COMPLETED, 1)]

    def test_failed_steps_keep_their_error(self, store: Store) -> None:
        epoch = _claimed(store)
        error = ErrorInfo(type="builtins.ValueError", message="bad")
        store.write_records("e1", "w1", epoch, [_step("a:1", "failed", error=error, attempt=3)], T0 + 2)
        (step,) = store.get_journal("e1")
        assert step.status is StepStatus.FAILED and step.error == error and step.attempt == 3

    def test_divergence_keeps_superseded_steps_as_history(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [_step("a:1", output=1), _step("b:1", output=2)], T0 + 2)
        store.write_records(
            "e1", "w1", epoch,
            [DivergenceRecord(key="c:1", expected="b:1", superseded=["b:1"]), _step("b:1", output=3)],
            T0 + 3,
        )  # fmt: skip
        assert [(s.key, s.output) for s in store.get_journal("e1")] == [("a:1", 1), ("b:1", 3)]
        history = store.get_journal("e1", include_superseded=True)
        assert [(s.key, s.output, s.superseded) for s in history] == [
            ("a:1", 1, False), ("b:1", 2, True), ("b:1", 3, False)
        ]  # fmt: skip
        assert "divergence" in [e.type for e in store.events_after("e1", 0, 100)]

    # --- finishing, suspension, signals --------------------------------------------------------------
    def test_completion_and_failure_are_terminal(self, store: Store) -> None:
        epoch = _claimed(store, "e1")
        store.write_records("e1", "w1", epoch, [FinishRecord(status="completed", output={"ok": True})], T0 + 2)
        done = store.get_execution("e1")
        assert done is not None and done.status is ExecutionStatus.COMPLETED and done.output == {"ok": True}
        epoch2 = _claimed(store, "e2")
        error = ErrorInfo(type="builtins.RuntimeError", message="boom")
        store.write_records("e2", "w1", epoch2, [FinishRecord(status="failed", error=error)], T0 + 2)
        failed = store.get_execution("e2")
        assert failed is not None and failed.status is ExecutionStatus.FAILED and failed.error == error
        assert store.claim("w9", ["flow"], 30, T0 + 1000) is None

    def test_release_puts_the_execution_back_in_the_queue(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [FinishRecord(status="released")], T0 + 2)
        claim = store.claim("w2", ["flow"], 30, T0 + 2)
        assert claim is not None and claim.epoch == epoch + 1

    def test_a_signal_resumes_a_waiting_execution(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records(
            "e1", "w1", epoch,
            [_step("approve:1", "suspended", wait=WaitInfo(signal="approve")), FinishRecord(status="waiting")],
            T0 + 2,
        )  # fmt: skip
        assert store.get_execution("e1").status is ExecutionStatus.WAITING  # type: ignore[union-attr]
        assert store.claim("w2", ["flow"], 30, T0 + 100) is None
        store.deliver_signal("e1", "approve", '{"ok": true}', T0 + 3)
        claim = store.claim("w2", ["flow"], 30, T0 + 4)
        assert claim is not None
        (step,) = claim.journal
        assert step.status is StepStatus.COMPLETED and step.output == {"ok": True}

    def test_a_signal_that_arrives_before_the_suspension_is_not_lost(self, store: Store) -> None:
        epoch = _claimed(store)
        store.deliver_signal("e1", "approve", '"yes"', T0 + 2)
        result = store.write_records(
            "e1", "w1", epoch,
            [_step("approve:1", "suspended", wait=WaitInfo(signal="approve")), FinishRecord(status="waiting")],
            T0 + 3,
        )  # fmt: skip
        assert result.status is ExecutionStatus.QUEUED
        claim = store.claim("w1", ["flow"], 30, T0 + 3)
        assert claim is not None and claim.journal[0].output == "yes"

    def test_a_signal_is_delivered_once(self, store: Store) -> None:
        _create(store)
        store.deliver_signal("e1", "s", "1", T0)
        store.deliver_signal("e1", "s", "1", T0)  # the same payload again: accepted, no effect
        with pytest.raises(ConflictError, match="already delivered"):
            store.deliver_signal("e1", "s", "2", T0)
        with pytest.raises(NotFoundError):
            store.deliver_signal("nope", "s", "1", T0)

    def test_a_timer_makes_the_execution_claimable_when_due(self, store: Store) -> None:
        epoch = _claimed(store)
        wake = datetime.fromtimestamp(T0 + 60, UTC)
        store.write_records(
            "e1", "w1", epoch,
            [_step("sleep:1", "suspended", wait=WaitInfo(wake_at=wake)), FinishRecord(status="waiting")],
            T0 + 2,
        )  # fmt: skip
        assert store.claim("w1", ["flow"], 30, T0 + 59) is None
        assert store.next_wakeup(["flow"], T0 + 3) == pytest.approx(T0 + 60)
        claim = store.claim("w1", ["flow"], 30, T0 + 61)
        assert claim is not None and claim.journal[0].status is StepStatus.COMPLETED

    def test_a_signals_wait_with_a_deadline_is_claimable_when_due_but_left_waiting(self, store: Store) -> None:
        epoch = _claimed(store)
        wake = datetime.fromtimestamp(T0 + 60, UTC)
        store.write_records(
            "e1", "w1", epoch,
            [_step("approval:1", "suspended", wait=WaitInfo(signal="approval:c1", wake_at=wake)),
             FinishRecord(status="waiting")],
            T0 + 2,
        )  # fmt: skip
        assert store.claim("w1", ["flow"], 30, T0 + 59) is None
        claim = store.claim("w1", ["flow"], 30, T0 + 61)
        # The worker delivers the default decision as the signal: the timer does not resolve the step.
        assert claim is not None and claim.journal[0].status is StepStatus.SUSPENDED

    def test_signal_state_finds_the_waiting_step_and_the_delivered_payload(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records(
            "e1", "w1", epoch,
            [_step("approval:1", "suspended", wait=WaitInfo(signal="approval:c1")), FinishRecord(status="waiting")],
            T0 + 2,
        )  # fmt: skip
        assert store.signal_state("e1", "approval:c2") == ([], None)
        (waiting,), payload = store.signal_state("e1", "approval:c1")
        assert waiting.key == "approval:1" and waiting.status is StepStatus.SUSPENDED and payload is None
        store.deliver_signal("e1", "approval:c1", '{"approved":true}', T0 + 3)
        (resolved,), payload = store.signal_state("e1", "approval:c1")
        assert resolved.status is StepStatus.COMPLETED and payload == '{"approved":true}'
        with pytest.raises(NotFoundError):
            store.signal_state("nope", "approval:c1")

    # --- events and definitions ---------------------------------------------------------------------
    def test_events_are_ordered_and_readable_from_any_id(self, store: Store) -> None:
        epoch = _claimed(store)
        store.write_records("e1", "w1", epoch, [_step("a:1", output=1), FinishRecord(status="completed")], T0 + 2)
        events = store.events_after("e1", 0, 100)
        assert [e.type for e in events] == [
            "execution.queued", "execution.running", "step.completed", "execution.completed"
        ]  # fmt: skip
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert store.events_after("e1", events[1].id, 100) == events[2:]
        assert store.events_after("e1", 0, 2) == events[:2]

    def test_definitions_are_stored_by_name(self, store: Store) -> None:
        store.put_definition("flow", "function", '{"v": 1}', T0)
        store.put_definition("flow", "function", '{"v": 2}', T0 + 1)
        found = store.get_definition("flow")
        assert found is not None and found.spec == {"v": 2}
        assert found.updated_at - found.created_at == timedelta(seconds=1)
        assert [d.name for d in store.list_definitions()] == ["flow"]
        store.delete_definition("flow")
        assert store.get_definition("flow") is None
        with pytest.raises(NotFoundError):
            store.delete_definition("flow")
