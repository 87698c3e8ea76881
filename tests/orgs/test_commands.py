import pytest
from django.core.management import call_command

from accounts.models import User
from orgs.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_prints_a_working_key(capsys):
    from rest_framework.test import APIClient

    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    secret = [line for line in out.splitlines() if line.startswith("Demo API key:")][-1].split(": ", 1)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/org").json()["slug"] == "demo"
    assert Organization.objects.filter(slug="demo").count() == 1
    assert User.objects.get(email="demo@tollgate.local").check_password("tollgate-demo")
