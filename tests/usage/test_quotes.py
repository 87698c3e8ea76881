"""Quotes: `POST /api/v1/estimates` with `"reserve": true` answers the estimate
and a hold of its upper bound whose prices are locked. Usage recorded or
captured against it (or a child of it) is priced as quoted, even when the rate
card changes during the run."""

import pytest

from usage import services
from usage.models import CreditAccount, GrantSource, Hold, UsageEvent
from usage.services import rates

pytestmark = pytest.mark.django_db

C = 1_000_000
QUOTE = {"items": [{"meter": "action.medium", "quantity": 4}], "reserve": True, "idempotency_key": "run-1"}


def fund(org, credits):
    services.credits_grant(org=org, amount_micros=credits * C, source=GrantSource.PURCHASE)


def post(api, url, body):
    return api.post(url, body, format="json")


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def reprice(meter, credits_per_unit):
    """A staff change of the rate card, in force at once (as after its commit)."""
    rates.rate_set(meter_code=meter, credits_per_unit=credits_per_unit)
    rates.clear_cache()


def event(key, **kw):
    return {"idempotency_key": key, "meter": "action.medium", "quantity": 1, **kw}


def test_a_quote_holds_the_upper_bound_and_keeps_its_prices_through_a_rate_change(api, org):
    fund(org, 100)
    response = post(api, "/api/v1/estimates", QUOTE)
    assert response.status_code == 201, response.content
    quote = response.json()
    assert quote["credits"] == {"low": "10", "high": "10"}
    hold = quote["hold"]
    assert (hold["credits"], hold["status"], hold["prices_locked"]) == ("10", "open", True)
    assert CreditAccount.objects.get(org=org).held_micros == 10 * C

    reprice("action.medium", "4")  # mid-run, the price goes up
    against = post(api, "/api/v1/usage/events", event("a", hold_id=hold["id"])).json()
    assert (against["credits_per_unit"], against["credits_charged"]) == ("2.5", "2.5")
    elsewhere = post(api, "/api/v1/usage/events", event("b")).json()
    assert elsewhere["credits_charged"] == "4"  # usage outside the quote pays today's price

    # a sub-agent's child hold of the quote is priced as quoted too
    child = post(api, "/api/v1/holds", {"idempotency_key": "run-1:sub", "credits": "5",
                                        "parent_hold_id": hold["id"]}).json()
    assert child["prices_locked"] is True
    assert post(api, "/api/v1/usage/events", event("c", hold_id=child["id"])).json()["credits_charged"] == "2.5"

    captured = post(api, f"/api/v1/holds/{hold['id']}/capture", {"events": [event("d")]})
    assert captured.status_code == 200, captured.content
    body = captured.json()
    assert body["hold"]["captured"] == "7.5"  # 2.5 recorded, 2.5 by the child, 2.5 captured with events
    assert UsageEvent.objects.get(idempotency_key="d").credits_micros == 2_500_000
    account = CreditAccount.objects.get(org=org)
    assert (account.balance_micros, account.held_micros) == (100 * C - 3 * 2_500_000 - 4 * C, 0)
    assert services.ledger_reconcile(org_ids=[org.pk]) == []


def test_a_replayed_quote_answers_the_first_at_its_prices(api, org):
    fund(org, 100)
    first = post(api, "/api/v1/estimates", QUOTE).json()
    reprice("action.medium", "4")
    again = post(api, "/api/v1/estimates", QUOTE)
    assert again.status_code == 201, again.content
    assert again.json()["hold"]["id"] == first["hold"]["id"]
    assert again.json()["credits"] == first["credits"]
    assert Hold.objects.count() == 1
    # without `reserve`, the estimate is today's
    assert post(api, "/api/v1/estimates", {"items": QUOTE["items"]}).json()["credits"]["high"] == "16"


def test_a_batch_against_a_quote_is_priced_as_quoted(api, org):
    fund(org, 100)
    hold_id = post(api, "/api/v1/estimates", QUOTE).json()["hold"]["id"]
    reprice("action.medium", "4")
    body = post(api, "/api/v1/usage/events/batch", {"events": [event("a", hold_id=hold_id), event("b")]}).json()
    assert [r["event"]["credits_charged"] for r in body["results"]] == ["2.5", "4"]


def test_a_quote_needs_a_key_and_credits_to_cover_it(api, org):
    fund(org, 5)
    error(post(api, "/api/v1/estimates", {**QUOTE, "idempotency_key": ""}), 400, "invalid_request")
    error(post(api, "/api/v1/estimates", {"items": QUOTE["items"], "reserve": True}), 400, "invalid_request")
    error(post(api, "/api/v1/estimates", QUOTE), 402, "insufficient_credits")
    assert not Hold.objects.exists()
    error(post(api, "/api/v1/estimates", {**QUOTE, "billing_mode": "own_key",
                                          "items": [{"meter": "ai.output_tokens", "model": "gpt-5-mini",
                                                     "quantity": 10}]}), 400, "nothing_to_reserve")
