"""Who pays: an organization's pooled balance, or each member's personal one
(`member_usage: personal`). Every rule runs in both modes where it applies."""

from decimal import Decimal

import pytest

from billing import services as billing_services
from orgs.models import AuditEvent, MemberUsage
from orgs.services import org_member_usage_set
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import selectors, services
from usage.errors import IdempotencyConflict, InsufficientCredits, MemberRequired, SpendLimitReached
from usage.models import CreditAccount, GrantSource, Hold, LedgerEntry, MemberSpend, UsageEvent
from usage.services import UsageInput
from billing_project.errors import InvalidRequest, NotFound, TollgateError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debit_path")]

C = 1_000_000
MODES = [MemberUsage.POOL, MemberUsage.PERSONAL]


def person(email: str, *, orgs=(), credits: int = 0):
    """A user with their personal organization (as sign-up makes it), member of `orgs`."""
    user = UserFactory(email=email)
    personal = OrganizationFactory(name=email, slug=email.split("@")[0].replace(".", "-"), is_personal=True)
    MembershipFactory(org=personal, user=user, role="owner")
    for org in orgs:
        MembershipFactory(org=org, user=user, role="member")
    if credits:
        fund(personal, credits)
    return user, personal


def fund(org, credits):
    services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def balance(org) -> int:
    return CreditAccount.objects.get(org=org).balance_micros


def event(key="e", meter="action.medium", quantity="1", **kw) -> UsageInput:
    return UsageInput(idempotency_key=key, meter=meter, quantity=Decimal(quantity), **kw)


def set_mode(org, mode):
    org_member_usage_set(org=org, member_usage=mode)
    org.refresh_from_db()


@pytest.fixture
def community(db):
    org = OrganizationFactory(name="Acme", slug="acme")
    fund(org, 100)
    return org


@pytest.fixture
def ada(community):
    return person("ada@example.test", orgs=[community], credits=10)


def payer_of(mode, community, personal):
    return personal if mode == MemberUsage.PERSONAL else community


@pytest.mark.parametrize("mode", MODES)
def test_an_event_naming_a_member_is_paid_by_whoever_the_mode_says(community, ada, mode):
    user, personal = ada
    set_mode(community, mode)
    recorded = services.usage_record(org=community, event=event(member=user)).event
    payer = payer_of(mode, community, personal)
    other = personal if payer is community else community
    assert recorded.account.org == payer
    assert balance(payer) == (100 if payer is community else 10) * C - 2_500_000
    assert balance(other) == (10 if other is personal else 100) * C
    assert recorded.for_org == (community if mode == MemberUsage.PERSONAL else None)
    assert services.ledger_reconcile(org_ids=[community.pk, personal.pk]) == []


def test_personal_usage_is_priced_on_the_members_plan(community, ada):
    user, personal = ada
    services.account_set_plan(org=community, plan_code="free", overage_allowed=False)
    services.account_set_plan(org=personal, plan_code="max", overage_allowed=False)
    set_mode(community, MemberUsage.PERSONAL)
    recorded = services.usage_record(
        org=community, event=event(meter="ai.output_tokens", model="gpt-5-mini", quantity="10000", member=user),
    ).event
    assert (recorded.credits_per_unit, recorded.credits_micros) == (Decimal("0.00025"), 2_500_000)


@pytest.mark.parametrize("mode", MODES)
def test_an_event_without_a_member_is_refused_only_in_personal_mode(community, mode):
    set_mode(community, mode)
    if mode == MemberUsage.POOL:
        assert services.usage_record(org=community, event=event()).event.account.org == community
        return
    with pytest.raises(MemberRequired) as raised:
        services.usage_record(org=community, event=event())
    assert raised.value.status == 400 and raised.value.code == "member_required"
    assert not UsageEvent.objects.exists()
    assert balance(community) == 100 * C


def test_the_402_names_the_member_and_links_their_own_top_up_page(community):
    user, personal = person("bo@example.test", orgs=[community], credits=1)
    set_mode(community, MemberUsage.PERSONAL)
    with pytest.raises(InsufficientCredits) as raised:
        services.usage_record(org=community, event=event(meter="action.xl", member=user))
    body = raised.value.as_dict()
    assert body["payer"] == "member" and body["payer_email"] == "bo@example.test"
    assert body["top_up_url"].endswith(f"/billing/top-up/?org={personal.slug}")
    assert "bo@example.test" in body["message"]
    assert (body["balance"], body["available"], body["required"]) == (None, None, "15")  # not the org's to see
    assert balance(community) == 100 * C and not UsageEvent.objects.exists()


def test_the_402_in_pool_mode_names_the_organization(community):
    user, _personal = person("bo@example.test", orgs=[community], credits=500)
    with pytest.raises(InsufficientCredits) as raised:
        services.usage_record(org=community, event=event(meter="action.xl", quantity="7", member=user))
    body = raised.value.as_dict()
    assert body["payer"] == "organization" and "payer_email" not in body
    assert body["top_up_url"].endswith("/billing/top-up/")


@pytest.mark.parametrize("mode", MODES)
def test_a_members_cap_holds_in_both_modes(community, ada, mode):
    user, personal = ada
    services.member_limit_set(org=community, member=user, monthly_limit_micros=5 * C)
    set_mode(community, mode)
    services.usage_record(org=community, event=event("a", member=user))  # 2.5
    services.usage_record(org=community, event=event("b", member=user))  # 5
    with pytest.raises(SpendLimitReached) as raised:
        services.usage_record(org=community, event=event("c", meter="action.small", member=user))
    assert raised.value.as_dict()["spent"] == "5"
    # The spend counts on the organization's account, whose cap it is.
    spend = MemberSpend.objects.get(member=user)
    assert spend.account.org == community and spend.spent_micros == 5 * C
    assert UsageEvent.objects.count() == 2


def test_a_cap_the_personal_org_sets_for_itself_does_not_limit_usage_for_another_org(community, ada):
    user, personal = ada
    services.member_limit_set(org=personal, member=user, monthly_limit_micros=1 * C)
    set_mode(community, MemberUsage.PERSONAL)
    assert services.usage_record(org=community, event=event(member=user)).event.credits_micros == 2_500_000


@pytest.mark.parametrize("mode", MODES)
def test_the_audit_trail_records_usage_in_both_modes(community, ada, mode):
    user, personal = ada
    set_mode(community, mode)
    services.usage_record(org=community, event=event(member=user))
    org_rows = AuditEvent.objects.filter(org=community, action="usage.recorded")
    assert org_rows.count() == 1
    if mode == MemberUsage.PERSONAL:
        assert org_rows.get().data["paid_by"] == "ada@example.test"
        assert "balance_after" not in org_rows.get().data  # the member's balance stays theirs
        assert AuditEvent.objects.get(org=personal, action="usage.recorded").data["for_org"] == "Acme"
    else:
        assert not AuditEvent.objects.filter(org=personal, action="usage.recorded").exists()


def test_the_members_ledger_entry_says_what_org_it_was_for(community, ada):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    services.usage_record(org=community, event=event(member=user))
    entry = LedgerEntry.objects.get(account__org=personal, kind="usage")
    assert entry.reason.endswith("for Acme")


def test_idempotency_keys_of_two_orgs_routing_to_one_member_never_meet(community, ada):
    user, personal = ada
    globex = OrganizationFactory(name="Globex", slug="globex")
    MembershipFactory(org=globex, user=user)
    set_mode(community, MemberUsage.PERSONAL)
    set_mode(globex, MemberUsage.PERSONAL)
    first = services.usage_record(org=community, event=event("run-1", member=user))
    second = services.usage_record(org=globex, event=event("run-1", meter="action.small", member=user))
    own = services.usage_record(org=personal, event=event("run-1", meter="action.large", member=user))
    assert not first.replayed and not second.replayed and not own.replayed
    assert {first.event.for_org_id, second.event.for_org_id, own.event.for_org_id} == {community.pk, globex.pk, None}
    assert balance(personal) == 10 * C - (2_500_000 + 1_000_000 + 5_000_000)
    # A replay is the org's own, and a different request with its key is a conflict.
    assert services.usage_record(org=community, event=event("run-1", member=user)).event.pk == first.event.pk
    with pytest.raises(IdempotencyConflict):
        services.usage_record(org=globex, event=event("run-1", member=user))


def test_a_batch_in_personal_mode_charges_each_member_and_refuses_events_without_one(community, ada):
    user, personal = ada
    bo, bo_personal = person("bo@example.test", orgs=[community], credits=3)
    set_mode(community, MemberUsage.PERSONAL)
    results = services.usage_record_batch(org=community, events=[
        event("1", member=user), event("2", member=bo), event("3"), event("4", member=bo), event("5", member=user),
    ])
    assert [r.status for r in results] == ["recorded", "recorded", "refused", "refused", "recorded"]
    assert results[2].error.code == "member_required"
    assert results[3].error.code == "insufficient_credits" and results[3].error.as_dict()["payer_email"] == bo.email
    assert balance(personal) == 5 * C and balance(bo_personal) == 500_000 and balance(community) == 100 * C
    assert services.ledger_reconcile(org_ids=[community.pk, personal.pk, bo_personal.pk]) == []
    # A replay of the batch replays each recorded event on its own payer.
    again = services.usage_record_batch(org=community, events=[event("1", member=user), event("2", member=bo)])
    assert [r.status for r in again] == ["replayed", "replayed"]
    assert again[0].event.pk == results[0].event.pk


@pytest.mark.parametrize("mode", MODES)
def test_holds_reserve_on_the_payer_and_the_org_captures_and_releases_them(community, ada, mode):
    user, personal = ada
    set_mode(community, mode)
    payer = payer_of(mode, community, personal)
    hold = services.hold_create(org=community, amount_micros=4 * C, member=user, idempotency_key="h")
    assert hold.account.org == payer and hold.for_org == (community if mode == MemberUsage.PERSONAL else None)
    assert CreditAccount.objects.get(org=payer).held_micros == 4 * C
    assert services.hold_create(org=community, amount_micros=4 * C, member=user, idempotency_key="h").pk == hold.pk
    hold, events = services.hold_capture_events(org=community, hold_id=hold.pk, events=[event("x", member=user)])
    assert hold.status == "captured" and events[0].for_org_id == hold.for_org_id
    assert balance(payer) == (100 if payer is community else 10) * C - 2_500_000
    assert CreditAccount.objects.get(org=payer).held_micros == 0
    other = services.hold_create(org=community, amount_micros=1 * C, member=user)
    assert services.hold_release(org=community, hold_id=other.pk).status == "released"
    assert services.ledger_reconcile(org_ids=[community.pk, personal.pk]) == []


def test_no_other_org_touches_a_hold_made_for_an_org(community, ada, other_org):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    hold = services.hold_create(org=community, amount_micros=1 * C, member=user)
    for org in (other_org, personal):  # not even the member's personal org: it was for Acme
        with pytest.raises(NotFound):
            services.hold_capture(org=org, hold_id=hold.pk, amount_micros=C)
        with pytest.raises(NotFound):
            services.hold_release(org=org, hold_id=hold.pk)
    assert Hold.objects.get(pk=hold.pk).status == "open"


def test_a_hold_in_personal_mode_needs_a_member_and_respects_the_orgs_cap(community, ada):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    with pytest.raises(MemberRequired):
        services.hold_create(org=community, amount_micros=C)
    services.member_limit_set(org=community, member=user, monthly_limit_micros=3 * C)
    services.hold_create(org=community, amount_micros=2 * C, member=user)
    with pytest.raises(SpendLimitReached):
        services.hold_create(org=community, amount_micros=2 * C, member=user)  # 2 held + 2 > 3
    with pytest.raises(InsufficientCredits) as raised:
        services.hold_create(org=community, amount_micros=9 * C, member=user)
    assert raised.value.as_dict()["payer"] == "member"


def test_a_capture_past_the_hold_counts_on_the_orgs_cap(community, ada):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    services.member_limit_set(org=community, member=user, monthly_limit_micros=3 * C)
    hold = services.hold_create(org=community, amount_micros=2 * C, member=user)
    with pytest.raises(SpendLimitReached):
        services.hold_capture(org=community, hold_id=hold.pk, amount_micros=4 * C)
    hold, entry = services.hold_capture(org=community, hold_id=hold.pk, amount_micros=3 * C)
    assert entry.account.org == personal and entry.reason.endswith("for Acme")
    assert MemberSpend.objects.get(account__org=community, member=user).spent_micros == 3 * C


def test_the_org_sees_its_members_totals_and_the_member_sees_what_it_was_for(community, ada):
    user, personal = ada
    bo, _ = person("bo@example.test", orgs=[community], credits=10)
    set_mode(community, MemberUsage.PERSONAL)
    services.usage_record_batch(org=community, events=[
        event("1", member=user), event("2", member=bo, meter="action.small"), event("3", member=user),
    ])
    totals = selectors.member_usage_totals(org=community)
    assert [(t.email, t.credits_micros, t.events) for t in totals] == [
        ("ada@example.test", 5 * C, 2), ("bo@example.test", 1 * C, 1),
    ]
    history = selectors.history_entries(account_id=CreditAccount.objects.get(org=personal).pk)
    assert [e.reason for e in history if e.kind == "usage"] == ["2 usage events for Acme"]
    # The org's usage summary counts its members' usage, by member.
    rows = selectors.usage_series(community, period="month", group_by="member")
    assert {(r.key, r.credits_micros) for r in rows} == {("ada@example.test", 5 * C), ("bo@example.test", 1 * C)}


def test_switching_modes_is_audited_and_refused_for_a_personal_org(community, ada):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    assert AuditEvent.objects.get(org=community, action="org.member_usage").data == {
        "member_usage": "personal", "previous": "pool"}
    with pytest.raises(InvalidRequest) as raised:
        org_member_usage_set(org=personal, member_usage="personal")
    assert raised.value.code == "invalid_member_usage"


def test_a_gated_meter_is_decided_on_the_plan_of_whoever_pays(community, ada):
    billing_services.catalog_load()  # the refusal names the cheapest plan with the feature
    user, personal = ada
    media = ["basic_workflows", "media_generation"]
    services.account_set_plan(org=community, plan_code="pro", overage_allowed=False, features=media)
    services.account_set_plan(org=personal, plan_code="free", overage_allowed=False, features=["basic_workflows"])
    image = event(meter="image.generated", model="gpt-image-1", member=user)
    assert services.usage_record(org=community, event=image).event.account.org == community  # pooled: Pro
    set_mode(community, MemberUsage.PERSONAL)
    with pytest.raises(TollgateError) as refused:
        services.usage_record(org=community, event=event("img-2", meter="image.generated", model="gpt-image-1",
                                                         member=user))
    assert refused.value.code == "feature_not_in_plan" and refused.value.details["plan"] == "free"
    with pytest.raises(TollgateError) as refused:
        services.hold_create(org=community, amount_micros=C, member=user, meters=["image.generated"])
    assert refused.value.code == "feature_not_in_plan"
    services.account_set_plan(org=personal, plan_code="pro", overage_allowed=False, features=media)
    recorded = services.usage_record(org=community, event=event("img-3", meter="image.generated",
                                                                model="gpt-image-1", member=user)).event
    assert recorded.account.org == personal and recorded.for_org == community


def test_a_retry_across_the_switch_to_personal_replays_what_the_org_paid(community, ada):
    user, personal = ada
    first = services.usage_record(org=community, event=event("run-9", member=user)).event
    set_mode(community, MemberUsage.PERSONAL)
    again = services.usage_record(org=community, event=event("run-9", member=user))
    assert again.replayed and again.event.pk == first.pk
    with pytest.raises(IdempotencyConflict):
        services.usage_record(org=community, event=event("run-9", meter="action.small", member=user))
    assert balance(personal) == 10 * C and balance(community) == 100 * C - 2_500_000


def test_a_retry_across_the_switch_back_to_pool_replays_what_the_member_paid(community, ada):
    user, personal = ada
    set_mode(community, MemberUsage.PERSONAL)
    first = services.usage_record(org=community, event=event("run-10", member=user)).event
    assert community.members_paid_since is not None
    set_mode(community, MemberUsage.POOL)
    again = services.usage_record(org=community, event=event("run-10", member=user))
    assert again.replayed and again.event.pk == first.pk and again.event.for_org_id == community.pk
    (batch_again, new) = services.usage_record_batch(
        org=community, events=[event("run-10", member=user), event("run-11", member=user)])
    assert batch_again.status == "replayed" and batch_again.event.pk == first.pk
    assert new.status == "recorded"
    with pytest.raises(IdempotencyConflict):
        services.usage_record(org=community, event=event("run-10", meter="action.small", member=user))
    # The member paid once; the org paid only for run-11.
    assert balance(personal) == 10 * C - 2_500_000 and balance(community) == 100 * C - 2_500_000
