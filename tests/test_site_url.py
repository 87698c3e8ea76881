"""Links that leave the service point at the address it is served on when
SITE_URL is unset: the 402's top_up_url and billing_url, e-mails, Stripe returns."""

import json
import urllib.error
import urllib.request

import pytest

from billing_project.management.commands import serve
from usage.services import rates


@pytest.mark.django_db(transaction=True)
def test_a_402_from_a_server_on_another_port_links_to_that_port(live_server, settings, org, api_key):
    settings.SITE_URL = ""
    _load_rate_card()
    assert not live_server.url.endswith(":8000")
    request = urllib.request.Request(
        live_server.url + "/api/v1/usage/events",
        data=json.dumps({"idempotency_key": "e1", "meter": "action.medium", "quantity": 1}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=20)
    rates.clear_cache()
    assert raised.value.code == 402
    body = json.loads(raised.value.read())["error"]
    assert body["top_up_url"] == live_server.url + "/billing/top-up/"
    assert body["billing_url"] == live_server.url + "/billing/"


def test_a_set_site_url_wins_over_the_request(api, org, settings):
    settings.SITE_URL = "https://billing.example.test"
    _load_rate_card()
    body = api.post("/api/v1/usage/events", {"idempotency_key": "e1", "meter": "action.medium", "quantity": 1},
                    format="json").json()["error"]
    rates.clear_cache()
    assert body["top_up_url"] == "https://billing.example.test/billing/top-up/"


def test_serve_gives_its_processes_the_address_it_serves(monkeypatch):
    monkeypatch.delenv("SITE_URL", raising=False)
    assert serve.child_env(host="127.0.0.1", port=8731)["SITE_URL"] == "http://localhost:8731"
    assert serve.child_env(host="0.0.0.0", port=9000)["SITE_URL"] == "http://localhost:9000"
    assert serve.child_env(host="billing.internal", port=80)["SITE_URL"] == "http://billing.internal:80"


def test_serve_keeps_a_site_url_that_is_set(monkeypatch):
    monkeypatch.setenv("SITE_URL", "https://billing.example.test")
    assert serve.child_env(host="127.0.0.1", port=8731)["SITE_URL"] == "https://billing.example.test"


def _load_rate_card() -> None:
    """The default rate card, as the data migration loads it (the suite skips migrations)."""
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
