"""MRR movement holds together whatever the history: each organization lands
in at most one movement, and the movements add up to the change in MRR. The
reference is computed here in Python from the same changes, one organization
at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backoffice.figures import selectors
from billing.models import BillingState
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.usefixtures("catalog")

UTC = dt_timezone.utc
START = datetime(2026, 10, 1, tzinfo=UTC)
MONTH = selectors.period_for("2026-11", now=datetime(2026, 11, 20, tzinfo=UTC))

# (status, plan, interval) an organization may be in, and what each brings a year (the catalog's prices).
STATES = [
    ("free", "free", "month"), ("trialing", "starter", ""), ("active", "starter", "month"),
    ("active", "starter", "year"), ("active", "pro", "month"), ("past_due", "pro", "year"), ("active", "max", "month"),
]
ANNUAL = {0: 0, 1: 0, 2: 999 * 12, 3: 9990, 4: 9900 * 12, 5: 99000, 6: 49999 * 12}

changes = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, len(STATES) - 1)), min_size=1, max_size=25,
)


def _expected(history: dict[int, list[tuple[datetime, int]]]) -> dict[str, int]:
    sums = {"new": 0, "expansion": 0, "contraction": 0, "churned": 0, "reactivated": 0, "start": 0, "end": 0}
    for rows in history.values():
        rows = sorted(rows, key=lambda row: row[0])  # stable: two changes at one instant keep their order (the ids')

        def at(moment):
            before = [annual for when, annual in rows if when < moment]
            return before[-1] if before else 0

        a, b = at(MONTH.start), at(MONTH.as_of)
        paid_before = any(annual > 0 for when, annual in rows if when < MONTH.start)
        sums["start"] += a
        sums["end"] += b
        if a == 0 and b > 0:
            sums["reactivated" if paid_before else "new"] += b
        elif a > 0 and b == 0:
            sums["churned"] += a
        elif b > a > 0:
            sums["expansion"] += b - a
        elif a > b > 0:
            sums["contraction"] += a - b
    return sums


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=changes)
def test_movements_match_a_reference_and_add_up_to_the_change_in_mrr(db, steps):
    with transaction.atomic():
        orgs = [OrganizationFactory() for _ in range(4)]
        states = {}
        history: dict[int, list[tuple[datetime, int]]] = {}
        # In time order; changes at one instant are applied in list order, as the rows' ids order them.
        for n, day, choice in sorted(set(steps), key=lambda s: (s[1], s[0])):
            status, plan, interval = STATES[choice]
            when = START + timedelta(days=day, hours=n)
            org = orgs[n]
            if org.pk not in states:
                # Every organization starts on Free before the story (the trigger's first row).
                with time_machine.travel(START - timedelta(days=30), tick=False):
                    states[org.pk] = BillingState.objects.create(org=org)
                history[org.pk] = [(START - timedelta(days=30), 0)]
            state = states[org.pk]
            BillingState.objects.filter(pk=state.pk).update(status=status, plan_code=plan, interval=interval,
                                                            updated_at=when)
            history[org.pk].append((when, ANNUAL[choice]))
        r = selectors.mrr_movement(MONTH)
        expected = _expected(history)
        assert (r.mrr_start_annual_cents, r.mrr_annual_cents) == (expected["start"], expected["end"])
        assert (r.new.annual_cents, r.expansion.annual_cents, r.contraction.annual_cents, r.churned.annual_cents,
                r.reactivated.annual_cents) == tuple(expected[k] for k in
                                                     ("new", "expansion", "contraction", "churned", "reactivated"))
        assert r.net_annual_cents == r.mrr_annual_cents - r.mrr_start_annual_cents
        transaction.set_rollback(True)
