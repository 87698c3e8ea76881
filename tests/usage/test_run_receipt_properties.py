"""Whatever a platform does with holds (events recorded against them, naming any
run; child holds; captures by amount, with events or of what was recorded;
releases), the receipts of its runs add up to what the ledger debited, each
credit in one run only."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing_project.errors import TollgateError
from tests.factories import OrganizationFactory
from usage import selectors, services
from usage.models import GrantSource, LedgerEntry, UsageEvent
from usage.services import UsageInput

pytestmark = pytest.mark.django_db

C = 1_000_000
RUNS = ["run-a", "run-b"]

run = st.sampled_from(RUNS)
pick = st.integers(min_value=0, max_value=2)  # an index into the holds made so far (modulo their number)
on_hold = st.tuples(st.just("event"), pick, run, st.integers(min_value=1, max_value=4))
# Weighted towards events on holds, which are what make a hold's runs cross.
operation = st.one_of(
    st.tuples(st.just("hold"), run, st.integers(min_value=1, max_value=30)),
    st.tuples(st.just("child"), pick, st.one_of(st.none(), run), st.integers(min_value=1, max_value=10)),
    on_hold, on_hold, on_hold,
    st.tuples(st.just("event"), st.none(), run, st.integers(min_value=1, max_value=4)),
    st.tuples(st.just("capture"), pick, st.integers(min_value=0, max_value=8)),
    st.tuples(st.just("capture_recorded"), pick),
    st.tuples(st.just("capture_events"), pick, st.lists(run, min_size=1, max_size=3)),
    st.tuples(st.just("release"), pick),
)


def _apply(org, holds: list[int], op: tuple, n: int) -> None:
    kind = op[0]
    at = (lambda i: holds[i % len(holds)]) if holds else None
    if kind == "hold":
        holds.append(services.hold_create(org=org, amount_micros=op[2] * C, workflow_run_id=op[1],
                                          expires_in=timedelta(hours=1)).pk)
    elif kind == "child" and holds:
        holds.append(services.hold_create(org=org, amount_micros=op[3] * C, parent_hold_id=at(op[1]),
                                          workflow_run_id=op[2] or "", expires_in=timedelta(hours=1)).pk)
    elif kind == "event":
        hold_id = at(op[1]) if holds and op[1] is not None else None
        services.usage_record(org=org, event=UsageInput(
            idempotency_key=f"e{n}", meter="action.small", quantity=Decimal(op[3]), workflow_run_id=op[2],
            hold_id=hold_id))
    elif kind == "capture" and holds:
        hold = at(op[1])
        recorded = selectors.hold_of_org(org, hold).recorded_micros  # a child's closing included once settled
        services.hold_capture(org=org, hold_id=hold, amount_micros=recorded + op[2] * C)
    elif kind == "capture_recorded" and holds:
        services.hold_capture(org=org, hold_id=at(op[1]))
    elif kind == "capture_events" and holds:
        services.hold_capture_events(org=org, hold_id=at(op[1]), events=[
            UsageInput(idempotency_key=f"e{n}-{i}", meter="action.small", quantity=Decimal(1), workflow_run_id=r)
            for i, r in enumerate(op[2])])
    elif kind == "release" and holds:
        services.hold_release(org=org, hold_id=at(op[1]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=3, max_size=16))
# A hold of run-a charged by run-b's event, then captured by amount: the double count once made.
@example(ops=[("hold", "run-a", 10), ("event", 0, "run-b", 2), ("capture", 0, 3)])
def test_the_runs_receipts_add_up_to_the_ledgers_debits(db, ops):
    with transaction.atomic():
        org = OrganizationFactory()
        services.credits_grant(org=org, amount_micros=10_000 * C, source=GrantSource.PURCHASE)
        holds: list[int] = []
        for n, op in enumerate(ops):
            try:
                _apply(org, holds, op, n)
            except TollgateError:
                pass  # refused (a closed hold, a child past its parent): nothing was written
        debited = -sum(LedgerEntry.objects.filter(account__org=org, kind="usage")
                       .values_list("amount_micros", flat=True))
        totals = {}
        for r in RUNS:
            try:
                totals[r] = selectors.run_receipt(org, r)
            except selectors.RunNotFound:
                continue
        assert sum(receipt.total_micros for receipt in totals.values()) == debited
        for r, receipt in totals.items():
            # Each receipt's events are the run's own, exactly.
            assert receipt.events_micros == sum(UsageEvent.objects.filter(
                account__org=org, workflow_run_id=r).values_list("credits_micros", flat=True))
        transaction.set_rollback(True)
