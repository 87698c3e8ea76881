"""A hypothesis state machine drives grants, strict debits, usage events, holds
(child holds carved out of them, usage recorded against them), captures,
releases and expiry in any order, with time moving, and checks the ledger's
invariants after every step.

It keeps two organizations: a person's personal one (`org`) and a team they
belong to (`team`), whose usage is paid from the team's balance or, when the
team switches `member_usage` to `personal`, from the person's (routed)."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule

from billing_project.errors import Conflict, TollgateError
from orgs.models import MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import services
from usage.errors import HoldBudgetExceeded, InsufficientCredits, MemberRequired, SpendLimitReached
from usage.models import (
    CreditAccount,
    EntryKind,
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    LedgerAllocation,
    LedgerEntry,
    MemberSpend,
    UsageEvent,
)
from usage.services import UsageInput, credits, rates

pytestmark = pytest.mark.django_db

C = 1_000_000
amounts = st.integers(min_value=1, max_value=50 * C)
sources = st.sampled_from([GrantSource.PURCHASE, GrantSource.TRIAL, GrantSource.PROMO, GrantSource.PLAN_ALLOWANCE])


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    team_holds = Bundle("team_holds")

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        rates.load_card_data(rates.read_data_file())
        rates.clear_cache()
        self.person = UserFactory()
        self.org = OrganizationFactory(is_personal=True)
        MembershipFactory(org=self.org, user=self.person, role="owner")
        services.account_open(org=self.org)
        self.team = OrganizationFactory()
        MembershipFactory(org=self.team, user=self.person, role="member")
        services.account_open(org=self.team)
        self.start = timezone.now()
        self.minutes = 0
        self.keys = 0
        self._clock = time_machine.travel(self.start, tick=False)
        self._clock.start()
        # Capturing a hold after it expired may take credits spent meanwhile: the
        # one way available credits go below zero without overage.
        self.late_capture = set()

    def teardown(self) -> None:
        self._clock.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)
        rates.clear_cache()

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def account(self, org=None) -> CreditAccount:
        return CreditAccount.objects.get(org=org or self.org)

    def payer(self):
        return self.org if self.team.member_usage == MemberUsage.PERSONAL else self.team

    def team_committed(self) -> int:
        """The person's spend for the team this month plus their open holds for it."""
        spent = MemberSpend.objects.filter(
            account__org=self.team, member=self.person, month=services.month_start(timezone.now())
        ).aggregate(t=Sum("spent_micros"))["t"] or 0
        held = Hold.objects.filter(member=self.person, status=HoldStatus.OPEN).filter(for_org=self.team).reserved_sum()
        held += Hold.objects.filter(account__org=self.team, for_org__isnull=True, member=self.person,
                                    status=HoldStatus.OPEN).reserved_sum()
        return spent + held

    # --- rules ---

    @initialize(amount=st.integers(0, 200 * C))
    def opening_grant(self, amount):
        # Something to hold from the first step, so holds, their children and the
        # usage recorded against them come up in short runs.
        if amount:
            services.credits_grant(org=self.org, amount_micros=amount, source=GrantSource.PURCHASE)

    @rule(amount=amounts, source=sources, expires_in=st.one_of(st.none(), st.integers(1, 120)))
    def grant(self, amount, source, expires_in):
        expires_at = timezone.now() + timedelta(minutes=expires_in) if expires_in else None
        services.credits_grant(org=self.org, amount_micros=amount, source=source, expires_at=expires_at)

    @rule(amount=amounts)
    def strict_debit(self, amount):
        try:
            services.credits_debit(org=self.org, amount_micros=amount, idempotency_key=self.key())
        except InsufficientCredits:
            return
        # a strict debit succeeds only when available covers it
        assert self.account().available_micros >= 0

    @rule(quantity=st.integers(1, 5), meter=st.sampled_from(["action.small", "action.medium", "compute.seconds"]))
    def usage_event(self, quantity, meter):
        try:
            services.usage_record(org=self.org, event=UsageInput(self.key(), meter, Decimal(quantity)))
        except InsufficientCredits:
            return
        assert self.account().available_micros >= 0

    @rule(target=holds, amount=amounts)
    def hold(self, amount):
        try:
            return services.hold_create(org=self.org, amount_micros=amount, expires_in=timedelta(minutes=15)).pk
        except InsufficientCredits:
            return multiple()  # nothing for the bundle: later rules draw holds that exist

    @rule(target=holds, parent_id=holds, amount=st.integers(1, 20 * C))
    def child_hold(self, parent_id, amount):
        figures = (self.account().balance_micros, self.account().held_micros)
        try:
            child = services.hold_create(org=self.org, amount_micros=amount, parent_hold_id=parent_id,
                                         expires_in=timedelta(minutes=10))
        except Conflict:
            return multiple()  # the parent is closed, has less left, or sits too deep
        # carved out of the parent: nothing more is reserved from the balance
        assert (self.account().balance_micros, self.account().held_micros) == figures
        assert child.expires_at <= Hold.objects.get(pk=parent_id).expires_at
        return child.pk

    @rule(hold_id=holds, quantity=st.integers(1, 5), meter=st.sampled_from(["action.small", "action.large"]))
    def usage_against_hold(self, hold_id, quantity, meter):
        before = Hold.objects.get(pk=hold_id)
        try:
            recorded = services.usage_record(
                org=self.org, event=UsageInput(self.key(), meter, Decimal(quantity), hold_id=hold_id)).event
        except HoldBudgetExceeded:
            assert before.parent_id is not None  # only a child is held to its parents' budget
            assert Hold.objects.get(pk=hold_id).recorded_micros == before.recorded_micros
            return
        except (InsufficientCredits, Conflict):
            assert Hold.objects.get(pk=hold_id).recorded_micros == before.recorded_micros
            return
        after = Hold.objects.get(pk=hold_id)
        assert after.recorded_micros == before.recorded_micros + recorded.credits_micros
        assert recorded.hold_id == hold_id

    @rule(target=holds, amount=st.integers(1, 30 * C), carve=st.integers(1, 30 * C),
          events=st.lists(st.tuples(st.booleans(), st.sampled_from(["action.small", "action.large"])), max_size=6),
          close=st.sampled_from(["capture", "release", "leave"]))
    def agent_run(self, amount, carve, events, close):
        """An agent's run in one step: a hold, a child carved for a sub-agent, usage
        recorded against either, then the parent captured, released or left open."""
        try:
            root = services.hold_create(org=self.org, amount_micros=amount, expires_in=timedelta(minutes=15))
        except InsufficientCredits:
            return multiple()
        try:
            child = services.hold_create(org=self.org, amount_micros=carve, parent_hold_id=root.pk)
        except Conflict:
            child = None
        for on_child, meter in events:
            target = child if on_child and child is not None else root
            try:
                services.usage_record(org=self.org, event=UsageInput(self.key(), meter, Decimal(1), hold_id=target.pk))
            except (InsufficientCredits, HoldBudgetExceeded) as error:
                assert target is root or isinstance(error, HoldBudgetExceeded)
        if child is not None:
            spent_by_child = UsageEvent.objects.filter(hold=child).aggregate(t=Sum("credits_micros"))["t"] or 0
            assert spent_by_child <= root.amount_micros  # never past the parent
        recorded = Hold.objects.get(pk=root.pk).recorded_micros + (
            Hold.objects.get(pk=child.pk).recorded_micros if child is not None else 0)
        if close == "capture":
            hold, entry = services.hold_capture(org=self.org, hold_id=root.pk)
            assert entry is None and hold.captured_micros == recorded
        elif close == "release":
            services.hold_release(org=self.org, hold_id=root.pk)
        else:
            return root.pk
        assert not Hold.objects.filter(parent=root, status=HoldStatus.OPEN).exists()
        return multiple()

    @rule(hold_id=consumes(holds), amount=st.one_of(st.none(), st.integers(min_value=0, max_value=80 * C)))
    def capture(self, hold_id, amount):
        before = Hold.objects.get(pk=hold_id)
        held_before = self.account().held_micros
        try:
            hold, _entry = services.hold_capture(org=self.org, hold_id=hold_id, amount_micros=amount)
        except Conflict:
            return  # released before, less than was recorded, or an expired child: refusing is the rule
        except (InsufficientCredits, HoldBudgetExceeded):
            # only the part above what the hold (and, for a child, its parents) still
            # reserve is ever refused, and a refusal changes nothing
            assert amount is not None and amount - before.recorded_micros > before.left_micros
            after = Hold.objects.get(pk=hold_id)
            assert (after.status, after.captured_micros) == (before.status, before.captured_micros)
            assert self.account().held_micros == held_before
            return
        if before.status != HoldStatus.CAPTURED and before.parent_id is None and (
                before.status == HoldStatus.EXPIRED or before.expires_at <= timezone.now()):
            self.late_capture.add(self.org.pk)
        assert hold.captured_micros >= before.recorded_micros
        assert not Hold.objects.filter(parent=hold_id, status=HoldStatus.OPEN).exists()  # children settled

    @rule(hold_id=consumes(holds))
    def release(self, hold_id):
        try:
            services.hold_release(org=self.org, hold_id=hold_id)
        except Conflict:
            pass

    @rule(minutes=st.integers(1, 90))
    def time_passes(self, minutes):
        self._clock.stop()
        self.minutes += minutes
        self._clock = time_machine.travel(self.start + timedelta(minutes=self.minutes), tick=False)
        self._clock.start()

    @rule()
    def expire(self):
        services.holds_expire()
        services.grants_expire()

    # --- the team: pooled or paid by the person ---

    @rule(personal=st.booleans())
    def team_switches_who_pays(self, personal):
        org_member_usage_set(org=self.team, member_usage=MemberUsage.PERSONAL if personal else MemberUsage.POOL)
        self.team.refresh_from_db()

    @rule(amount=amounts)
    def team_grant(self, amount):
        services.credits_grant(org=self.team, amount_micros=amount, source=GrantSource.PURCHASE)

    @rule(limit=st.one_of(st.none(), st.integers(0, 60 * C)))
    def team_caps_the_person(self, limit):
        services.member_limit_set(org=self.team, member=self.person, monthly_limit_micros=limit)

    @rule(quantity=st.integers(1, 5), meter=st.sampled_from(["action.small", "action.large"]),
          member=st.booleans())
    def team_usage_event(self, quantity, meter, member):
        payer, other = self.payer(), ({self.org, self.team} - {self.payer()}).pop()
        before = (self.account(payer).balance_micros, self.account(other).balance_micros)
        event = UsageInput(self.key(), meter, Decimal(quantity), member=self.person if member else None)
        try:
            recorded = services.usage_record(org=self.team, event=event).event
        except MemberRequired:
            assert payer == self.org and not member  # only personal mode needs the member
            return
        except InsufficientCredits as error:
            assert error.details["payer"] == ("member" if payer == self.org else "organization")
            return
        except SpendLimitReached:
            assert member
            return
        assert recorded.account.org_id == payer.pk
        assert recorded.for_org_id == (self.team.pk if payer == self.org else None)
        assert self.account(payer).balance_micros == before[0] - recorded.credits_micros
        assert self.account(other).balance_micros == before[1]
        assert self.account(payer).available_micros >= 0
        limit = self.team_limit()
        if member and limit is not None:
            assert self.team_committed() <= limit

    def team_limit(self) -> int | None:
        return self.account(self.team).member_limits.filter(member=self.person).values_list(
            "monthly_limit_micros", flat=True).first()

    @rule(target=team_holds, amount=st.integers(1, 20 * C))
    def team_hold(self, amount):
        try:
            hold = services.hold_create(org=self.team, amount_micros=amount, member=self.person,
                                        expires_in=timedelta(minutes=15))
        except (InsufficientCredits, SpendLimitReached):
            return multiple()
        assert hold.account.org_id == self.payer().pk
        limit = self.team_limit()
        if limit is not None:
            assert self.team_committed() <= limit
        return hold.pk

    @rule(hold_id=team_holds, quantity=st.integers(1, 3))
    def team_usage_against_hold(self, hold_id, quantity):
        try:
            recorded = services.usage_record(
                org=self.team, event=UsageInput(self.key(), "action.medium", Decimal(quantity), hold_id=hold_id)).event
        except (Conflict, InsufficientCredits, SpendLimitReached):
            return  # closed, paid from the other balance since the switch, or not affordable
        assert recorded.member_id == self.person.pk  # the hold's member
        assert recorded.account.org_id == Hold.objects.get(pk=hold_id).account.org_id
        limit = self.team_limit()
        if limit is not None:
            assert self.team_committed() <= limit

    @rule(hold_id=consumes(team_holds), amount=st.one_of(st.none(), st.integers(min_value=0, max_value=30 * C)),
          release=st.booleans())
    def team_capture_or_release(self, hold_id, amount, release):
        before = Hold.objects.get(pk=hold_id)
        try:
            if release:
                services.hold_release(org=self.team, hold_id=hold_id)
            else:
                services.hold_capture(org=self.team, hold_id=hold_id, amount_micros=amount)
        except (Conflict, InsufficientCredits, SpendLimitReached):
            return
        if not release and before.status != HoldStatus.CAPTURED and (
                before.status == HoldStatus.EXPIRED or before.expires_at <= timezone.now()):
            self.late_capture.add(before.account.org_id)

    @rule(hold_id=team_holds)
    def the_person_cannot_touch_a_hold_made_for_the_team(self, hold_id):
        with pytest.raises(TollgateError) as raised:
            services.hold_release(org=self.org, hold_id=hold_id)
        assert raised.value.code == "hold_not_found"

    # --- invariants ---

    @invariant()
    def balance_is_the_sum_of_entries(self):
        for org in (self.org, self.team):
            account = self.account(org)
            total = LedgerEntry.objects.filter(account=account).aggregate(t=Sum("amount_micros"))["t"] or 0
            assert account.balance_micros == total
        assert services.ledger_reconcile(org_ids=[self.org.pk, self.team.pk]) == []

    @invariant()
    def no_grant_below_zero_and_holds_add_up(self):
        for org in (self.org, self.team):
            account = self.account(org)
            assert not Grant.objects.filter(account=account, remaining_micros__lt=0).exists()
            open_holds = account.holds.filter(status=HoldStatus.OPEN)
            assert account.held_micros == open_holds.reserved_sum() >= 0
            assert not open_holds.filter(used_micros__gt=F("amount_micros")).exists()
            assert not open_holds.filter(used_micros__lt=0).exists()
            if org.pk not in self.late_capture:
                assert account.available_micros >= 0
            # debt only ever comes from capturing an expired hold's amount after its credits
            # were spent (overage is not in this machine), and then no grant has credits left
            if account.debt_micros:
                assert not Grant.objects.filter(account=account, remaining_micros__gt=0).exists()

    @invariant()
    def children_live_inside_their_parents(self):
        for child in Hold.objects.filter(parent__isnull=False, status=HoldStatus.OPEN).select_related("parent"):
            # an open child has an open parent, which has handed it its whole amount
            assert child.parent.status == HoldStatus.OPEN
            assert child.expires_at <= child.parent.expires_at
            assert child.account_id == child.parent.account_id and child.depth == child.parent.depth + 1
        for parent in Hold.objects.filter(status=HoldStatus.OPEN, children__isnull=False).distinct():
            carved = parent.children.filter(status=HoldStatus.OPEN).aggregate(t=Sum("amount_micros"))["t"] or 0
            assert parent.used_micros >= carved
        # what usage recorded against a tree of holds is never more than its root could spend
        for root in Hold.objects.filter(parent__isnull=True, children__isnull=False).distinct():
            tree = [root.pk]
            frontier = [root.pk]
            while frontier:
                frontier = list(Hold.objects.filter(parent__in=frontier).values_list("pk", flat=True))
                tree += frontier
            in_children = UsageEvent.objects.filter(hold__in=tree[1:]).aggregate(t=Sum("credits_micros"))["t"] or 0
            assert in_children <= root.amount_micros

    @invariant()
    def the_persons_spend_for_the_team_is_on_the_teams_row_whoever_paid(self):
        # The person's own usage names no member: every usage entry naming them was for the team.
        paid = -(LedgerEntry.objects.filter(
            account__org__in=[self.org, self.team], member=self.person, kind=EntryKind.USAGE,
        ).aggregate(t=Sum("amount_micros"))["t"] or 0)
        counted = MemberSpend.objects.filter(account__org=self.team, member=self.person).aggregate(
            t=Sum("spent_micros"))["t"] or 0
        assert paid == counted
        assert not MemberSpend.objects.filter(account__org=self.org, spent_micros__gt=0).exists()
        # Routed usage sits on the person's account, labelled for the team; the team's own never is.
        assert not UsageEvent.objects.filter(for_org=self.team).exclude(account__org=self.org).exists()
        assert not UsageEvent.objects.filter(account__org=self.team, for_org__isnull=False).exists()
        assert not Hold.objects.filter(for_org=self.team).exclude(account__org=self.org).exists()


LedgerMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_the_ledger_keeps_its_invariants(db):
    LedgerMachine.TestCase().runTest()


def test_strict_debits_never_take_available_below_zero(db):
    """The sharper form of the property, without captures in the mix."""
    org = OrganizationFactory()
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    services.hold_create(org=org, amount_micros=4 * C)
    for amount in (3 * C, 3 * C, 1, 5 * C):
        try:
            services.credits_debit(org=org, amount_micros=amount, idempotency_key=str(amount) + str(timezone.now()))
        except TollgateError:
            pass
        assert CreditAccount.objects.get(org=org).available_micros >= 0


# --- the two implementations of the strict debit agree -------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), amounts, sources, st.one_of(st.none(), st.integers(1, 120))),
        st.tuples(st.just("debit"), st.integers(1, 30 * C)),
        st.tuples(st.just("event"), st.sampled_from(["action.small", "action.xl", "compute.seconds"]), st.integers(1, 4)),
        st.tuples(st.just("replay"), st.integers(0, 5)),
        st.tuples(st.just("time"), st.integers(1, 90)),
        st.tuples(st.just("overage"), st.booleans()),
    ),
    max_size=25,
)


def _apply(org, ops, start, server: bool):
    credits.SERVER_DEBIT = server
    outcomes = []
    try:
        minutes = 0
        for n, op in enumerate(ops):
            with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
                try:
                    if op[0] == "grant":
                        expires = timezone.now() + timedelta(minutes=op[3]) if op[3] else None
                        services.credits_grant(org=org, amount_micros=op[1], source=op[2], expires_at=expires)
                    elif op[0] == "debit":
                        services.credits_debit(org=org, amount_micros=op[1], idempotency_key=f"d{n}")
                    elif op[0] == "event":
                        services.usage_record(org=org, event=UsageInput(f"e{n}", op[1], Decimal(op[2])))
                    elif op[0] == "replay":
                        services.credits_debit(org=org, amount_micros=C, idempotency_key=f"r{op[1]}")
                    elif op[0] == "time":
                        minutes += op[1]
                    else:
                        services.account_set_plan(org=org, plan_code="pro" if op[1] else "free", overage_allowed=op[1])
                    outcomes.append("ok")
                except TollgateError as error:
                    outcomes.append(error.code)
    finally:
        credits.SERVER_DEBIT = True
    grant_ids = list(Grant.objects.filter(account__org=org).order_by("id").values_list("id", flat=True))
    number = {f"expiry:{pk}": f"expiry:#{i}" for i, pk in enumerate(grant_ids)}  # ids differ between the orgs
    entries = [
        (kind, amount, after, number.get(key, key))
        for kind, amount, after, key in LedgerEntry.objects.filter(account__org=org).order_by("id").values_list(
            "kind", "amount_micros", "balance_after_micros", "idempotency_key")
    ]
    allocations = list(LedgerAllocation.objects.filter(entry__account__org=org).order_by("entry_id", "id").values_list(
        "amount_micros", flat=True))
    grants = list(Grant.objects.filter(account__org=org).order_by("id").values_list("remaining_micros", flat=True))
    account = CreditAccount.objects.get(org=org)
    return outcomes, entries, allocations, grants, (account.balance_micros, account.debt_micros, account.held_micros)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_the_database_debit_and_the_python_writer_agree(db, ops):
    start = timezone.now()
    with transaction.atomic():
        a, b = OrganizationFactory(), OrganizationFactory()
        for org in (a, b):
            services.account_open(org=org)
        assert _apply(a, ops, start, server=True) == _apply(b, ops, start, server=False)
        assert services.ledger_reconcile(org_ids=[a.pk, b.pk]) == []
        transaction.set_rollback(True)
