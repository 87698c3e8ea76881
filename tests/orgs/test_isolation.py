"""Org A can never see or change org B: by API key, by page, by URL."""

import pytest
from django.urls import reverse

from orgs.models import Membership
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def test_a_key_of_org_a_only_ever_sees_org_a(api, org, other_org):
    _k, _other_secret = api_key_for(other_org)
    body = api.get("/api/v1/org").json()
    assert body["slug"] == "acme"
    assert "globex" not in str(body)


def test_switching_to_an_org_one_is_not_in_is_a_404(client, owner, other_org):
    client.force_login(owner)
    response = client.post(reverse("orgs:switch", args=[other_org.slug]))
    assert response.status_code == 404
    assert client.get(reverse("billing:overview")).context["current_org"].slug == "acme"


def test_changing_a_role_in_another_org_by_url_is_a_404(client, owner, other_org):
    client.force_login(owner)
    theirs = Membership.objects.get(org=other_org)
    response = client.post(reverse("orgs:member_role", args=[theirs.pk]), {"role": "member"})
    assert response.status_code == 404
    assert Membership.objects.get(pk=theirs.pk).role == "owner"


def test_removing_a_member_of_another_org_by_url_is_a_404(client, owner, other_org):
    client.force_login(owner)
    theirs = Membership.objects.get(org=other_org)
    assert client.post(reverse("orgs:member_remove", args=[theirs.pk])).status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


def test_the_members_page_lists_only_the_current_org(client, owner, member, outsider):
    client.force_login(owner)
    content = client.get(reverse("billing:members")).content.decode()
    assert "member@acme.test" in content
    assert outsider.email not in content


def test_a_user_removed_from_their_current_org_falls_back_to_another(client, org, owner, member):
    client.force_login(member)
    client.get(reverse("billing:overview"))  # current org: Acme (their only one)
    Membership.objects.filter(org=org, user=member).delete()
    from orgs.services import org_create

    org_create(name="Member's own", owner=member)
    assert client.get(reverse("billing:overview")).context["current_org"].name == "Member's own"
