"""/metrics: who may read it, and what it counts."""

from __future__ import annotations

import os

import pytest
from celery import shared_task
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing_project import metrics
from billing_project.settings import metrics_process_kind
from billing_project.tasks import health_ping
from tests.billing import stripe_builders as b
from tests.billing.helpers import paid_session, start_pack_checkout
from outbound import services as outbound_services
from usage import services
from usage.models import CreditAccount, GrantSource

pytestmark = pytest.mark.django_db

C = 1_000_000
TOKEN = "s3cret-scrape-token"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token=TOKEN) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Delta:
    """What a block of work added to each sample."""

    def __init__(self, client) -> None:
        self.client = client

    def __enter__(self) -> Delta:
        self.before = scrape(self.client)
        return self

    def __exit__(self, *exc) -> None:
        self.after = scrape(self.client)

    def __call__(self, name: str, **labels) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)


# --- who may read it -----------------------------------------------------------


def test_it_is_a_404_while_no_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_it_is_a_404_with_a_missing_or_wrong_token(client, token):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 404


def test_prometheus_may_scrape_over_plain_http_behind_the_https_redirect(client, token, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_another_method_is_a_404_even_with_the_token(token):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/metrics").status_code == 404
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


def test_it_answers_the_text_format_with_the_right_token(client, token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert "tollgate_outbound_oldest_due_delivery_age_seconds" in names
    assert all(name.startswith("tollgate_") for name in names), names


def test_the_token_is_compared_as_a_whole():
    assert metrics.bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert metrics.bearer_matches(f"bearer {TOKEN}", TOKEN)
    assert not metrics.bearer_matches(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert not metrics.bearer_matches("Bearer ", "")


# --- what it counts --------------------------------------------------------------


def test_it_counts_requests_by_route_name_not_path(client, token, api, org):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    with Delta(client) as delta:
        api.get("/api/v1/balance")
        api.post("/api/v1/holds/12345/release", {}, format="json")  # not found: still one route
        api.post("/api/v1/holds/67890/release", {}, format="json")
    assert delta("tollgate_http_requests_total", route="api:balance", method="GET", status="2xx") == 1
    assert delta("tollgate_http_requests_total", route="api:hold-release", method="POST", status="4xx") == 2
    assert delta("tollgate_http_request_duration_seconds_count", route="api:balance", method="GET") == 1
    after = scrape(client)
    assert not any("12345" in str(labels) for _name, labels in after)


def test_it_counts_usage_events_credits_debited_and_402s_by_code(
    client, token, api, org, django_capture_on_commit_callbacks,
):
    with Delta(client) as delta, django_capture_on_commit_callbacks(execute=True):
        refused = api.post("/api/v1/usage/events", {"idempotency_key": "e0", "meter": "action.medium", "quantity": 1},
                           format="json")
        services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
        event = {"idempotency_key": "e1", "meter": "action.medium", "quantity": 1}
        assert api.post("/api/v1/usage/events", event, format="json").status_code == 201
        assert api.post("/api/v1/usage/events", event, format="json").status_code == 201  # a replay
        batch = api.post("/api/v1/usage/events/batch", {"events": [
            {"idempotency_key": "b1", "meter": "action.small", "quantity": 1},
            {"idempotency_key": "b2", "meter": "action.small", "quantity": 1},
        ]}, format="json")
    assert refused.status_code == 402
    assert batch.status_code == 200 and batch.json()["recorded"] == 2
    assert delta("tollgate_api_errors_total", status="402", code="insufficient_credits") == 1
    assert delta("tollgate_usage_events_total", surface="api", result="recorded") == 3
    assert delta("tollgate_usage_events_total", surface="api", result="replayed") == 1
    assert delta("tollgate_credits_granted_micros_total", source="purchase") == 100 * C
    spent = 100 * C - CreditAccount.objects.get(org=org).balance_micros
    assert spent > 0
    assert delta("tollgate_credits_debited_micros_total") == spent
    assert delta("tollgate_ledger_writes_total") >= 3


def test_it_counts_holds_created_captured_and_released(client, token, api, org, django_capture_on_commit_callbacks):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    with Delta(client) as delta, django_capture_on_commit_callbacks(execute=True):
        first = api.post("/api/v1/holds", {"idempotency_key": "h1", "credits": "10"}, format="json").json()
        second = api.post("/api/v1/holds", {"idempotency_key": "h2", "credits": "10"}, format="json").json()
        assert api.post(f"/api/v1/holds/{first['id']}/capture", {"credits": "4"}, format="json").status_code == 200
        assert api.post(f"/api/v1/holds/{second['id']}/release", {}, format="json").status_code == 200
        too_big = api.post("/api/v1/holds", {"idempotency_key": "h3", "credits": "1000"}, format="json")
    assert too_big.status_code == 402
    assert delta("tollgate_holds_total", event="created") == 2
    assert delta("tollgate_holds_total", event="captured") == 1
    assert delta("tollgate_holds_total", event="released") == 1
    assert delta("tollgate_credits_debited_micros_total") == 4 * C


def test_it_counts_stripe_webhooks_by_result(client, token, webhooks, fake_stripe, org, owner):
    event = b.event("checkout.session.completed", paid_session(fake_stripe, start_pack_checkout(org, owner)))
    with Delta(client) as delta:
        assert webhooks.post(event).status_code == 200
        assert webhooks.post(event, secret="whsec_not_the_endpoints_secret").status_code == 400
    assert delta("tollgate_stripe_webhooks_total", result="processed") == 1
    assert delta("tollgate_stripe_webhooks_total", result="invalid") == 1
    assert delta("tollgate_credits_granted_micros_total", source="purchase") == 500 * C


def test_it_counts_outbound_delivery_attempts_by_result(client, token, org, receiver,
                                                         django_capture_on_commit_callbacks):
    outbound_services.endpoint_create(org=org, url=receiver.url, events=["*"])
    receiver.answer((500, 0, b"boom"))
    with Delta(client) as delta:
        with django_capture_on_commit_callbacks(execute=True):
            outbound_services.event_send(org_id=org.pk, type="balance.low", data={"available": "1"}, key="k1")
        receiver.answer((200, 0, b"ok"))
        with django_capture_on_commit_callbacks(execute=True):
            outbound_services.event_send(org_id=org.pk, type="balance.low", data={"available": "1"}, key="k2")
    assert delta("tollgate_outbound_delivery_attempts_total", result="refused") == 1
    assert delta("tollgate_outbound_delivery_attempts_total", result="succeeded") == 1
    # The refused one waits for its retry, which is not due yet.
    assert value(delta.after, "tollgate_outbound_oldest_due_delivery_age_seconds") == 0


@shared_task(name="tests.ops.always_fails")
def always_fails():
    raise RuntimeError("on purpose")


def test_it_counts_task_failures_by_task(client, token):
    with Delta(client) as delta:
        # As a worker runs it: the error is kept in the result, not raised here.
        assert always_fails.apply(throw=False).failed()
    assert delta("tollgate_celery_task_failures_total", task="tests.ops.always_fails") == 1


def test_it_reports_the_worker_heartbeat_and_queue_lags(client, token):
    cache.clear()
    assert ("tollgate_worker_heartbeat_age_seconds", frozenset()) not in scrape(client)
    health_ping.delay()
    samples = scrape(client)
    assert 0 <= value(samples, "tollgate_worker_heartbeat_age_seconds") < 5
    assert value(samples, "tollgate_outbound_oldest_due_delivery_age_seconds") == 0
    assert value(samples, "tollgate_holds_oldest_overdue_age_seconds") == 0


def test_it_reports_how_long_an_expired_hold_has_waited(client, token, org):
    services.credits_grant(org=org, amount_micros=100 * C, source=GrantSource.PURCHASE)
    hold = services.hold_create(org=org, amount_micros=5 * C)
    type(hold).objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timezone.timedelta(minutes=3))
    assert 170 < value(scrape(client), "tollgate_holds_oldest_overdue_age_seconds") < 200


def test_a_process_cleans_only_what_earlier_processes_left(tmp_path):
    (tmp_path / "counter_1.db").write_bytes(b"")
    mine = tmp_path / f"counter_{os.getpid()}.db"
    mine.write_bytes(b"")
    metrics.directory_clean(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]


@pytest.mark.parametrize(("argv", "kind"), [
    (["/venv/bin/gunicorn", "-c", "python:billing_project.gunicorn_conf", "billing_project.wsgi"], "web"),
    (["manage.py", "runserver"], "web"),
    (["manage.py", "grant_credits", "--org", "acme"], "web"),
    (["/venv/bin/celery", "-A", "billing_project", "worker", "--loglevel", "INFO"], "worker"),
    (["/venv/bin/celery", "-A", "billing_project", "beat"], "beat"),
    (["/venv/lib/python3.11/site-packages/celery/__main__.py", "-A", "billing_project", "worker"], "worker"),
    (["/venv/lib/python3.11/site-packages/celery/__main__.py", "-A", "billing_project", "beat"], "beat"),
])
def test_each_kind_of_process_counts_in_its_own_directory(argv, kind):
    assert metrics_process_kind(argv) == kind
