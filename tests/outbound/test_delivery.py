"""Deliveries to a real receiver on loopback: signature, retries, backoff, disabling, SSRF, replay, rotation."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from outbound import delivery, services, signing, tasks
from outbound.models import Delivery, DeliveryState, Event, WebhookEndpoint


@pytest.fixture
def endpoint(org, receiver):
    return services.endpoint_create(org=org, url=receiver.url, events=["*"])


def send(org, django_capture_on_commit_callbacks, key="k1", type="balance.low"):
    with django_capture_on_commit_callbacks(execute=True):
        return services.event_send(org_id=org.pk, type=type, data={"available": "12.5"}, key=key)


def test_it_delivers_a_signed_event_the_receiver_can_verify(org, endpoint, receiver, owner,
                                                              django_capture_on_commit_callbacks):
    event = send(org, django_capture_on_commit_callbacks)
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.headers["Tollgate-Event-Id"] == event.public_id
    assert signing.signature_verify(endpoint.secret, got.headers["Tollgate-Signature"], got.body, now=int(time.time()))
    assert not signing.signature_verify("whsec_wrong", got.headers["Tollgate-Signature"], got.body, now=int(time.time()))
    payload = json.loads(got.body)
    assert payload["id"] == event.public_id and payload["type"] == "balance.low"
    assert payload["org"] == {"id": org.pk, "slug": "acme"}
    assert payload["sequence"] == 1 and payload["data"] == {"available": "12.5"}
    assert Delivery.objects.get().state == DeliveryState.SUCCEEDED


def test_a_signature_outside_the_tolerance_fails(org, endpoint, receiver, django_capture_on_commit_callbacks):
    send(org, django_capture_on_commit_callbacks)
    got = receiver.received[0]
    assert not signing.signature_verify(endpoint.secret, got.headers["Tollgate-Signature"], got.body,
                                        now=int(time.time()) + 301)


def test_it_sends_an_event_once_per_key_and_numbers_them(org, endpoint, receiver, django_capture_on_commit_callbacks):
    first = send(org, django_capture_on_commit_callbacks, key="a")
    assert send(org, django_capture_on_commit_callbacks, key="a") is None
    second = send(org, django_capture_on_commit_callbacks, key="b")
    assert (first.sequence, second.sequence) == (1, 2)
    assert len(receiver.received) == 2


def test_it_retries_a_500_with_backoff_until_a_2xx(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.answer((500, 0, b"boom"), (500, 0, b"boom"), (200, 0, b"ok"))
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False) as traveller:
        send(org, django_capture_on_commit_callbacks)
        d = Delivery.objects.get()
        assert d.state == DeliveryState.PENDING and d.attempts == 1
        first_wait = d.next_attempt_at - timezone.now()
        assert timedelta(seconds=24) <= first_wait <= timedelta(seconds=36)
        assert tasks.deliveries_sweep() == 0  # not due yet
        traveller.shift(first_wait)
        assert tasks.deliveries_sweep() == 1
        d.refresh_from_db()
        second_wait = d.next_attempt_at - timezone.now()
        assert timedelta(seconds=48) <= second_wait <= timedelta(seconds=72)
        traveller.shift(second_wait)
        tasks.deliveries_sweep()
    d.refresh_from_db()
    assert (d.state, d.attempts, d.last_status_code) == (DeliveryState.SUCCEEDED, 3, 200)
    log = list(d.attempt_log.order_by("id").values_list("status_code", "response_excerpt", "succeeded"))
    assert log == [(500, "boom", False), (500, "boom", False), (200, "ok", True)]
    assert WebhookEndpoint.objects.get().failing_since is None


def test_a_timeout_is_a_failed_attempt(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.answer((200, 3.0, b"late"))  # the tests' timeout is 2 s
    send(org, django_capture_on_commit_callbacks)
    attempt = Delivery.objects.get().attempt_log.get()
    assert attempt.status_code is None and "timed out" in attempt.error.lower()
    assert Delivery.objects.get().state == DeliveryState.PENDING


def test_redirects_are_not_followed(org, endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.answer((302, 0, b""))
    send(org, django_capture_on_commit_callbacks)
    d = Delivery.objects.get()
    assert (d.state, d.last_status_code) == (DeliveryState.PENDING, 302)
    assert len(receiver.received) == 1


def test_the_backoff_doubles_with_jitter_and_spans_about_three_days():
    import random

    rng = random.Random(7)
    waits = [delivery.retry_delay(n, rng=rng).total_seconds() for n in range(1, 30)]
    assert 24 <= waits[0] <= 36 and 48 <= waits[1] <= 72 and 96 <= waits[2] <= 144
    assert max(waits) <= 6 * 3600 * 1.2
    total, attempts = 0.0, 0
    while total < 3 * 86400:
        attempts += 1
        total += delivery.retry_delay(attempts, rng=rng).total_seconds()
    assert 15 <= attempts <= 30


def test_an_endpoint_failing_for_three_days_is_disabled_and_its_owners_told(
    org, owner, endpoint, receiver, django_capture_on_commit_callbacks,
):
    receiver.answer((503, 0, b"down"))
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False) as traveller:
        send(org, django_capture_on_commit_callbacks)
        for _ in range(40):
            d = Delivery.objects.get()
            if d.state != DeliveryState.PENDING or WebhookEndpoint.objects.get().disabled_at:
                break
            traveller.move_to(d.next_attempt_at)
            with django_capture_on_commit_callbacks(execute=True):
                tasks.deliveries_sweep()
    endpoint.refresh_from_db()
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_at - endpoint.failing_since >= timedelta(days=3)
    assert [m.to for m in mail.outbox] == [["owner@acme.test"]]
    assert "disabled" in mail.outbox[0].subject
    # A disabled endpoint gets no new deliveries.
    send(org, django_capture_on_commit_callbacks, key="later")
    assert not Delivery.objects.filter(event__key="later").exists()


@override_settings(OUTBOUND_WEBHOOKS_ALLOW_LOCAL=False)
@pytest.mark.parametrize("url", [
    "https://localhost:9/hook",  # a name that resolves to 127.0.0.1 when delivering
    "https://127.0.0.1/hook", "https://10.0.0.5/hook", "https://192.168.1.1/hook", "https://169.254.169.254/latest",
    "https://[::1]/hook", "https://[fd00:ec2::254]/hook", "https://0.0.0.0/hook", "https://224.0.0.1/hook",
    "https://[::ffff:127.0.0.1]/hook", "https://100.64.0.1/hook",
])
def test_it_refuses_targets_inside_the_network_at_delivery_time(org, url, django_capture_on_commit_callbacks):
    WebhookEndpoint.objects.create(org=org, url=url, events=["*"], secret="whsec_x")
    send(org, django_capture_on_commit_callbacks)
    attempt = Delivery.objects.get().attempt_log.get()
    assert attempt.status_code is None and "events are not sent there" in attempt.error


@override_settings(OUTBOUND_WEBHOOKS_ALLOW_LOCAL=False)
def test_without_allow_local_only_https_is_accepted(org):
    from billing_project.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        services.endpoint_create(org=org, url="http://example.com/hook", events=["*"])


def test_a_name_resolving_to_loopback_is_refused_when_local_targets_are_off(
    org, endpoint, receiver, django_capture_on_commit_callbacks,
):
    """Saved while local targets were allowed, then delivered with them off: checked when delivering."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"https://localhost:{receiver.port}/hooks")
    with override_settings(OUTBOUND_WEBHOOKS_ALLOW_LOCAL=False):
        send(org, django_capture_on_commit_callbacks)
    assert receiver.received == []
    assert "loopback" in Delivery.objects.get().attempt_log.get().error


def test_send_again_replays_a_delivery_from_the_log(org, endpoint, receiver, django_capture_on_commit_callbacks):
    send(org, django_capture_on_commit_callbacks)
    d = Delivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        services.delivery_resend(delivery=d)
    assert len(receiver.received) == 2
    assert receiver.received[0].body == receiver.received[1].body
    assert d.attempt_log.count() == 2


def test_a_rotated_secret_signs_beside_the_old_one_for_24_hours(
    org, endpoint, receiver, django_capture_on_commit_callbacks,
):
    old = endpoint.secret
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False) as traveller:
        rotated = services.endpoint_secret_rotate(endpoint=endpoint)
        assert rotated.secret != old
        send(org, django_capture_on_commit_callbacks, key="during")
        got = receiver.received[-1]
        now = int(time.time())
        assert signing.signature_verify(old, got.headers["Tollgate-Signature"], got.body, now=now)
        assert signing.signature_verify(rotated.secret, got.headers["Tollgate-Signature"], got.body, now=now)
        traveller.shift(timedelta(hours=24, seconds=1))
        send(org, django_capture_on_commit_callbacks, key="after")
        got = receiver.received[-1]
        now = int(time.time())
        assert not signing.signature_verify(old, got.headers["Tollgate-Signature"], got.body, now=now)
        assert signing.signature_verify(rotated.secret, got.headers["Tollgate-Signature"], got.body, now=now)


def test_only_subscribed_endpoints_get_an_event(org, receiver, django_capture_on_commit_callbacks):
    services.endpoint_create(org=org, url=receiver.url, events=["invoice.paid"])
    send(org, django_capture_on_commit_callbacks, type="balance.low")
    assert Event.objects.count() == 1 and Delivery.objects.count() == 0
