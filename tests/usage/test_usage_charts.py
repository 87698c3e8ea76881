"""The usage charts: credits per day, week and month by meter, model, member
and workflow run, read from the roll-ups plus the events not rolled up yet;
and the roll-up that adds each event exactly once."""

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from usage import selectors, services
from usage.models import GrantSource, RollupCursor, UsageRollup, UsageRunRollup
from usage.services import UsageInput
from usage.services.rollup import usage_rollup

pytestmark = pytest.mark.django_db
C = 1_000_000


def record(org, key, meter="action.small", quantity="1", **kw):
    return services.usage_record(org=org, event=UsageInput(idempotency_key=key, meter=meter, quantity=Decimal(quantity), **kw))


def batch(org, prefix, items):
    return services.usage_record_batch(org=org, events=[
        UsageInput(idempotency_key=f"{prefix}-{i}", meter=m, quantity=Decimal(q), **kw) for i, (m, q, kw) in enumerate(items)
    ])


@pytest.fixture
def funded(org):
    services.credits_grant(org=org, amount_micros=100_000 * C, source=GrantSource.PURCHASE)
    return org


def chart(org, **kw):
    return selectors.usage_chart(account_id=org.credit_account.pk, **kw)


def by_label(c) -> dict[str, int]:
    return {s.label: s.total_micros for s in c.series}


def later(minutes=5):
    return timezone.now() + timedelta(minutes=minutes)


def test_a_batch_is_split_by_member_from_its_events_not_its_one_ledger_entry(funded, owner, member):
    batch(funded, "b", [("action.small", "3", {"member": owner}), ("action.large", "2", {"member": member}),
                        ("compute.seconds", "500", {"member": member, "workflow_run_id": "run-1"})])

    by_member = chart(funded, group_by="member")
    assert by_label(by_member) == {member.get_full_name(): 11 * C, owner.get_full_name(): 3 * C}
    assert by_label(chart(funded, group_by="meter")) == {"Large action": 10 * C, "Small action": 3 * C, "Compute time": C}
    assert by_member.total_micros == 14 * C and by_member.events == 3
    assert by_member.totals[-1] == 14 * C  # today's bar


def test_models_and_runs_have_their_own_breakdowns(funded):
    record(funded, "a", "ai.output_tokens", "100000", model="gpt-5-mini", workflow_run_id="run-a")
    record(funded, "b", "action.medium", "2", workflow_run_id="run-a")
    record(funded, "c", "action.xl", "1", workflow_run_id="run-b")
    record(funded, "d", "action.small", "1")

    # 100,000 output tokens at 0.0003 credits each (the rate card's gpt-5-mini price)
    assert by_label(chart(funded, group_by="model")) == {"gpt-5-mini": 30 * C, "No model": 21 * C}
    assert by_label(chart(funded, group_by="workflow_run")) == {"run-a": 35 * C, "run-b": 15 * C, "No workflow run": C}
    costs = selectors.workflow_run_costs(account_id=funded.credit_account.pk)
    assert [(r.run_id, r.credits_micros, r.events) for r in costs.runs] == [("run-a", 35 * C, 2), ("run-b", 15 * C, 1)]
    assert costs.run_count == 2 and costs.runs[0].first_at is not None


def test_beyond_the_top_series_the_rest_is_other(funded):
    for i in range(9):
        record(funded, f"r{i}", "action.small", str(i + 1), workflow_run_id=f"run-{i}")

    c = chart(funded, group_by="workflow_run", top=3)

    assert [s.label for s in c.series] == ["run-8", "run-7", "run-6", "Other"]
    assert c.series[-1].total_micros == sum(range(1, 7)) * C and c.other_keys == 6
    assert c.total_micros == 45 * C


def test_rolled_up_and_fresh_events_add_up_to_the_same_chart_once(funded, owner):
    start = timezone.now()
    record(funded, "a", "action.large", "1", member=owner)
    record(funded, "b", "action.small", "4", member=owner, workflow_run_id="r1")
    views = [(p, g) for p in ("day", "week", "month") for g in ("meter", "member", "workflow_run")]
    before = [chart(funded, period=p, group_by=g) for p, g in views]

    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert usage_rollup() == 2
        assert UsageRollup.objects.count() == 2 and UsageRunRollup.objects.count() == 2
        record(funded, "c", "action.small", "1", member=owner)  # after the cursor: read from the events
        after = [chart(funded, period=p, group_by=g) for p, g in views]
    for b, a in zip(before, after):
        assert a.total_micros == b.total_micros + C
        assert {s.label for s in a.series} >= {s.label for s in b.series}

    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert usage_rollup() == 1
        assert usage_rollup() == 0  # nothing twice
        assert chart(funded).total_micros == 10 * C
    assert sum(UsageRollup.objects.values_list("events", flat=True)) == 3
    assert sum(UsageRunRollup.objects.values_list("credits_micros", flat=True)) == 10 * C


def test_the_roll_up_leaves_events_that_may_still_be_settling(funded):
    record(funded, "a")

    assert usage_rollup() == 0  # created less than a minute ago: not yet
    assert usage_rollup(now=later()) == 1


def test_the_roll_up_catches_up_window_by_window(funded):
    start = timezone.now() - timedelta(days=20)
    for day in range(0, 20, 3):
        with time_machine.travel(start + timedelta(days=day), tick=False):
            record(funded, f"d{day}", "action.small", "1")
    assert usage_rollup(now=later(), max_window=timedelta(days=2)) == 7
    assert RollupCursor.objects.get().rolled_until > timezone.now() - timedelta(minutes=2)
    assert chart(funded, period="month").total_micros == 7 * C


def test_only_the_first_roll_up_looks_for_the_oldest_event(funded):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    record(funded, "a")
    with CaptureQueriesContext(connection) as first:
        assert usage_rollup(now=later()) == 1
    with time_machine.travel(later(6), tick=False):  # after the first roll-up's cursor
        record(funded, "b")
    with CaptureQueriesContext(connection) as second:
        assert usage_rollup(now=later(10)) == 1

    def scans(ctx):  # min() over the events table reads all of it
        return [q["sql"] for q in ctx.captured_queries if "min(created_at)" in q["sql"]]

    assert len(scans(first)) == 1 and scans(second) == []


def test_buckets_cover_the_range_with_empty_ones(funded):
    with time_machine.travel(datetime(2026, 3, 4, 12, tzinfo=dt_timezone.utc), tick=False):
        record(funded, "old", "action.small", "2")
    with time_machine.travel(datetime(2026, 3, 18, 12, tzinfo=dt_timezone.utc), tick=False):
        record(funded, "new", "action.small", "3")
        usage_rollup(now=timezone.now() + timedelta(minutes=5))
        daily = chart(funded, period="day")
        weekly = chart(funded, period="week")
        monthly = chart(funded, period="month")

    assert len(daily.buckets) == 30 and daily.buckets[-1] == date(2026, 3, 18)
    assert daily.totals[daily.buckets.index(date(2026, 3, 4))] == 2 * C and daily.totals[-1] == 3 * C
    assert weekly.buckets[-1] == date(2026, 3, 16) and weekly.totals[weekly.buckets.index(date(2026, 3, 2))] == 2 * C
    assert monthly.buckets[0] == date(2025, 4, 1) and monthly.buckets[-1] == date(2026, 3, 1)
    assert monthly.totals[-1] == 5 * C


def test_another_orgs_usage_never_shows(funded, other_org):
    services.credits_grant(org=other_org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    record(other_org, "theirs", "action.xl", "1")
    record(funded, "ours", "action.small", "1")
    usage_rollup(now=later())

    assert chart(funded).total_micros == C


def test_an_org_without_an_account_gets_an_empty_chart(org):
    c = selectors.usage_chart(account_id=None)

    assert c.series == [] and c.total_micros == 0 and len(c.buckets) == 30
