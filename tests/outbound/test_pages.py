"""Settings → Webhooks: owners and admins only, secret shown once, the log with "send again"."""

from __future__ import annotations

import pytest

from outbound import services
from outbound.models import Delivery, WebhookEndpoint

PAGE = "/billing/settings/webhooks/"


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(client, owner, org, receiver):
    client.force_login(owner)
    answer = client.post(PAGE, {"url": receiver.url, "all_events": "on", "description": "prod"})
    endpoint = WebhookEndpoint.objects.get()
    assert answer.status_code == 200 and endpoint.secret in answer.content.decode()
    again = client.get(PAGE).content.decode()
    assert receiver.url in again and endpoint.secret not in again


def test_a_member_cannot_open_the_page(client, member):
    client.force_login(member)
    assert client.get(PAGE).status_code == 403


def test_another_orgs_endpoint_is_a_404(client, owner, other_org, receiver):
    theirs = services.endpoint_create(org=other_org, url=receiver.url, events=["*"])
    client.force_login(owner)
    assert client.get(f"{PAGE}{theirs.pk}/").status_code == 404
    assert client.post(f"{PAGE}{theirs.pk}/delete/").status_code == 404


def test_the_log_sends_again_and_rotation_shows_the_new_secret_once(client, owner, org, receiver,
                                                                     django_capture_on_commit_callbacks):
    endpoint = services.endpoint_create(org=org, url=receiver.url, events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        services.event_send(org_id=org.pk, type="balance.low", data={}, key="x")
    client.force_login(owner)
    page = client.get(f"{PAGE}{endpoint.pk}/").content.decode()
    assert "balance.low" in page and "HTTP 200" in page
    delivery = Delivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/billing/settings/webhooks/deliveries/{delivery.pk}/resend/")
    assert len(receiver.received) == 2
    client.post(f"{PAGE}{endpoint.pk}/rotate/")
    endpoint.refresh_from_db()
    assert endpoint.secret in client.get(f"{PAGE}{endpoint.pk}/").content.decode()
    assert endpoint.secret not in client.get(f"{PAGE}{endpoint.pk}/").content.decode()


@pytest.mark.parametrize("bad", ["ftp://x/y", ""])
def test_a_bad_url_is_a_form_error(client, owner, bad):
    client.force_login(owner)
    answer = client.post(PAGE, {"url": bad, "all_events": "on"})
    assert answer.status_code == 200 and not WebhookEndpoint.objects.exists()
