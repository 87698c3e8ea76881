from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.models import OrgAPIKey
from orgs.models import AuditEvent
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def _client(secret: str | None = None, header: str | None = None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif secret is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_valid_key_authenticates_as_its_org(org, api_key):
    response = _client(api_key).get("/api/v1/org")
    assert response.status_code == 200
    assert response.json()["slug"] == "acme"


def test_it_records_when_a_key_was_last_used(org, api_key):
    key = OrgAPIKey.objects.get(org=org)
    assert key.last_used_at is None
    _client(api_key).get("/api/v1/org")
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nodot", "Bearer AAAAAAAA.wrongsecret", "Token abc.def", "Basic dXNlcjpwYXNz"],
)
def test_missing_or_wrong_keys_get_401_with_the_envelope(org, api_key, header):
    response = _client(header=header).get("/api/v1/org") if header else _client().get("/api/v1/org")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_right_prefix_with_a_wrong_secret_is_refused(org, api_key):
    prefix = api_key.split(".")[0]
    response = _client(f"{prefix}.not-the-secret").get("/api/v1/org")
    assert response.status_code == 401


def test_a_revoked_key_stops_working_at_once(org, owner, api_key):
    key = OrgAPIKey.objects.get(org=org)
    services.api_key_revoke(org=org, key=key, actor=owner)

    response = _client(api_key).get("/api/v1/org")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(org=org, action="api_key.revoked").exists()


def test_an_expired_key_is_refused(org):
    key, secret = api_key_for(org)
    OrgAPIKey.objects.filter(pk=key.pk).update(expiry_date=timezone.now() - timedelta(minutes=1))
    assert _client(secret).get("/api/v1/org").status_code == 401


def test_a_key_without_the_read_scope_gets_403(org):
    _key, secret = api_key_for(org, scopes=["usage:write"])
    response = _client(secret).get("/api/v1/org")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "type": "permission_denied",
        "code": "permission_denied",
        "message": "This API key lacks the `read` scope.",
    }


def test_the_key_is_stored_hashed_and_shown_once(org, owner):
    key, secret = services.api_key_create(org=org, name="runner", actor=owner)
    assert secret.startswith(key.prefix + ".")
    assert secret.split(".", 1)[1] not in key.hashed_key
    assert key.hashed_key.startswith("sha512$$")


def test_unknown_scopes_are_refused(org, owner):
    from billing_project.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        services.api_key_create(org=org, name="x", scopes=["admin"], actor=owner)


def test_create_api_key_prints_the_key_alone_on_the_last_line(org, capsys):
    call_command("create_api_key", "--org", "acme", "--name", "runner", "--scopes", "read")
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert _client(secret).get("/api/v1/org").json()["slug"] == "acme"
    assert OrgAPIKey.objects.get(org=org).scopes == ["read"]


def test_create_api_key_fails_clearly_for_an_unknown_org(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organization"):
        call_command("create_api_key", "--org", "nope")


def test_the_keys_page_shows_a_new_secret_once(client, org, owner):
    client.force_login(owner)
    response = client.post(reverse("keys:list"), {"name": "runner", "scopes": ["read", "usage:write"]})
    secret = response.context["new_secret"]
    assert secret and secret in response.content.decode()

    again = client.get(reverse("keys:list"))
    assert secret not in again.content.decode()
    assert OrgAPIKey.objects.get(org=org).prefix in again.content.decode()


def test_a_member_cannot_create_or_revoke_keys(client, org, member, api_key):
    client.force_login(member)
    page = client.get(reverse("keys:list"))
    assert b"Create key" not in page.content

    client.post(reverse("keys:list"), {"name": "sneaky", "scopes": ["read"]})
    prefix = api_key.split(".")[0]
    client.post(reverse("keys:revoke", args=[prefix]))

    assert OrgAPIKey.objects.filter(org=org).count() == 1
    assert not OrgAPIKey.objects.get(org=org).revoked


def test_revoking_another_orgs_key_by_url_is_a_404(client, org, owner, other_org):
    _key, other_secret = api_key_for(other_org)
    client.force_login(owner)
    response = client.post(reverse("keys:revoke", args=[other_secret.split(".")[0]]))
    assert response.status_code == 404
    assert not OrgAPIKey.objects.get(org=other_org).revoked


def test_staff_revoke_keys_in_the_admin_without_a_role_in_the_org(client, org, api_key):
    from tests.factories import UserFactory

    client.force_login(UserFactory(email="staff@tollgate.test", is_staff=True, is_superuser=True))
    key = OrgAPIKey.objects.get(org=org)
    response = client.post(reverse("admin:accounts_orgapikey_changelist"),
                           {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked
    assert _client(api_key).get("/api/v1/org").status_code == 401
    assert AuditEvent.objects.get(org=org, action="api_key.revoked").actor_user.email == "staff@tollgate.test"
