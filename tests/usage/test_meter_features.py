"""Meters that need a plan feature: usage, batches, holds and captures on them
are refused (403 feature_not_in_plan, nothing recorded) for an account whose
plan lacks it, decided on the plan the account is on under its lock."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing import services as billing_services
from billing_project.errors import InvalidRequest
from orgs.entitlements import FeatureNotInPlan
from orgs.models import AuditEvent
from tests.factories import api_key_for
from usage import services
from usage.models import CreditAccount, GrantSource, Hold, LedgerEntry, UsageEvent
from usage.services import UsageInput, events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debit_path")]

C = 1_000_000
MEDIA = ["basic_workflows", "advanced_workflows", "api_access", "media_generation"]


@pytest.fixture
def catalog(db):
    billing_services.catalog_load()


def fund(org, credits):
    services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def image(key="img", quantity="1"):
    return UsageInput(idempotency_key=key, meter="image.generated", model="gpt-image-1", quantity=Decimal(quantity))


def on_plan(org, code, features):
    services.account_set_plan(org=org, plan_code=code, overage_allowed=False, features=features)


def test_the_default_card_gates_image_speech_and_video_on_media_generation(rate_card):
    gated = {code: m.required_feature for code, m in rate_card.meters.items() if m.required_feature}
    assert gated == {"image.generated": "media_generation", "tts.characters": "media_generation",
                     "video.seconds": "media_generation"}


def test_an_image_on_a_plan_without_media_generation_is_refused_and_records_nothing(org, catalog):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])
    entries = LedgerEntry.objects.count()

    with pytest.raises(FeatureNotInPlan) as refused:
        services.usage_record(org=org, event=image())

    error = refused.value
    assert (error.status, error.code) == (403, "feature_not_in_plan")
    assert error.details["required_feature"] == "media_generation"
    assert error.details["meter"] == "image.generated"
    assert (error.details["plan"], error.details["upgrade_plan"], error.details["upgrade_plan_name"]) == (
        "free", "pro", "Pro")
    assert error.details["upgrade_url"].endswith("/billing/plans/#plan-pro")
    assert not UsageEvent.objects.exists() and LedgerEntry.objects.count() == entries
    assert CreditAccount.objects.get(org=org).balance_micros == 100 * C


def test_the_same_image_on_a_plan_with_the_feature_is_recorded(org):
    fund(org, 100)
    on_plan(org, "pro", MEDIA)

    recorded = services.usage_record(org=org, event=image())

    assert recorded.event.credits_micros == 6_300_000
    assert UsageEvent.objects.get().meter_id == recorded.event.meter_id


def test_ungated_meters_stay_open_to_every_plan(org):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])

    recorded = services.usage_record(org=org, event=UsageInput(idempotency_key="a", meter="action.small",
                                                              quantity=Decimal(1)))
    assert recorded.event.credits_micros == 1 * C


def test_a_downgrade_since_the_plan_was_last_seen_is_caught_under_the_lock(org):
    fund(org, 100)
    on_plan(org, "pro", MEDIA)
    services.usage_record(org=org, event=image("first"))  # the plan is now the org's hint
    assert events._plan_hint(org.pk) == "pro"

    on_plan(org, "free", ["basic_workflows"])  # e.g. grace ended: Free, at once
    with pytest.raises(FeatureNotInPlan):
        services.usage_record(org=org, event=image("second"))
    assert UsageEvent.objects.count() == 1


def test_an_upgrade_opens_the_meter_at_once(org):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])
    with pytest.raises(FeatureNotInPlan):
        services.usage_record(org=org, event=image("x"))

    on_plan(org, "pro", MEDIA)
    assert services.usage_record(org=org, event=image("x")).event.meter.code == "image.generated"


def test_what_was_recorded_before_a_downgrade_stays_and_its_replay_answers_it(org):
    fund(org, 100)
    on_plan(org, "pro", MEDIA)
    first = services.usage_record(org=org, event=image("kept")).event

    on_plan(org, "free", ["basic_workflows"])
    replay = services.usage_record(org=org, event=image("kept"))

    assert replay.replayed and replay.event.pk == first.pk
    assert UsageEvent.objects.get().credits_micros == first.credits_micros


def test_a_batch_refuses_each_gated_event_on_its_own_and_records_the_rest(org):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])

    results = services.usage_record_batch(org=org, events=[
        UsageInput(idempotency_key="a", meter="action.small", quantity=Decimal(1)),
        image("b"),
        UsageInput(idempotency_key="c", meter="video.seconds", model="sora-2", quantity=Decimal(2)),
        UsageInput(idempotency_key="d", meter="action.medium", quantity=Decimal(1)),
    ])

    assert [r.status for r in results] == ["recorded", "refused", "refused", "recorded"]
    assert [r.error.code for r in results if r.error] == ["feature_not_in_plan", "feature_not_in_plan"]
    assert results[2].error.details["meter"] == "video.seconds"
    assert sorted(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["a", "d"]
    assert CreditAccount.objects.get(org=org).balance_micros == 96_500_000  # 100 - 1 - 2.5 credits
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_hold_naming_a_gated_meter_is_refused_and_holds_nothing(org):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])

    with pytest.raises(FeatureNotInPlan) as refused:
        services.hold_create(org=org, amount_micros=10 * C, idempotency_key="h", meters=["action.small", "tts.characters"])

    assert refused.value.details["meter"] == "tts.characters"
    assert not Hold.objects.exists() and CreditAccount.objects.get(org=org).held_micros == 0
    # Naming only open meters, or none, holds as before.
    assert services.hold_create(org=org, amount_micros=10 * C, idempotency_key="h", meters=["action.small"]).pk
    assert services.hold_create(org=org, amount_micros=10 * C, idempotency_key="h2").pk


def test_a_hold_naming_an_unknown_meter_is_bad_input(org):
    fund(org, 100)
    with pytest.raises(InvalidRequest) as refused:
        services.hold_create(org=org, amount_micros=10 * C, meters=["nope.meter"])
    assert (refused.value.status, refused.value.code) == (400, "unknown_meter")


def test_a_hold_naming_a_gated_meter_on_a_plan_with_it_holds(org):
    fund(org, 100)
    on_plan(org, "max", MEDIA + ["priority_processing"])

    hold = services.hold_create(org=org, amount_micros=10 * C, meters=["video.seconds"])
    assert CreditAccount.objects.get(org=org).held_micros == hold.amount_micros


def test_capturing_a_hold_with_gated_events_after_a_downgrade_is_refused_and_keeps_the_hold(org):
    fund(org, 100)
    on_plan(org, "pro", MEDIA)
    hold = services.hold_create(org=org, amount_micros=20 * C)
    on_plan(org, "free", ["basic_workflows"])

    with pytest.raises(FeatureNotInPlan):
        services.hold_capture_events(org=org, hold_id=hold.pk, events=[image("cap")])

    hold.refresh_from_db()
    assert hold.status == "open" and not UsageEvent.objects.exists()
    # The run's ungated usage still captures.
    hold, kept = services.hold_capture_events(
        org=org, hold_id=hold.pk, events=[UsageInput(idempotency_key="s", meter="action.small", quantity=Decimal(1))])
    assert hold.status == "captured" and [e.idempotency_key for e in kept] == ["s"]


def test_account_set_plan_writes_the_features_down_and_audits_them(org):
    on_plan(org, "pro", MEDIA)
    assert sorted(CreditAccount.objects.get(org=org).features) == sorted(MEDIA)
    row = AuditEvent.objects.filter(action="credits.plan_set").latest("id")
    assert row.data["features"] == sorted(MEDIA)
    # Without features (an older caller), the ones on record stay.
    services.account_set_plan(org=org, plan_code="pro", overage_allowed=True)
    assert sorted(CreditAccount.objects.get(org=org).features) == sorted(MEDIA)


# --- the API ---------------------------------------------------------------------------


def test_the_api_answers_403_in_the_envelope_for_an_event_a_batch_item_and_a_hold(org, catalog):
    fund(org, 100)
    on_plan(org, "free", ["basic_workflows"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(org)[1]}")

    one = client.post("/api/v1/usage/events", {"idempotency_key": "i", "meter": "image.generated",
                                                "model": "gpt-image-1", "quantity": 1}, format="json")
    assert one.status_code == 403
    body = one.json()["error"]
    assert (body["type"], body["code"], body["required_feature"], body["upgrade_plan"]) == (
        "permission_denied", "feature_not_in_plan", "media_generation", "pro")
    assert body["upgrade_url"] == "http://testserver/billing/plans/#plan-pro"

    batch = client.post("/api/v1/usage/events/batch", {"events": [
        {"idempotency_key": "a", "meter": "action.small", "quantity": 1},
        {"idempotency_key": "b", "meter": "tts.characters", "model": "gpt-4o-mini-tts", "quantity": 100}]},
        format="json")
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["recorded", "refused"]
    assert (results[1]["error"]["status"], results[1]["error"]["code"]) == (403, "feature_not_in_plan")

    hold = client.post("/api/v1/holds", {"idempotency_key": "h", "credits": "10", "meters": ["video.seconds"]},
                       format="json")
    assert hold.status_code == 403 and hold.json()["error"]["meter"] == "video.seconds"
    assert not Hold.objects.exists()
