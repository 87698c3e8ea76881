"""Back office fixtures: the staff roles as migration 0001 makes them, and a
staff member in each (support, finance), beside a superuser."""

from __future__ import annotations

import functools
import importlib

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings

# Stripe at the HTTP edge and signed webhooks, as the billing tests have them.
from tests.billing.conftest import catalog, fake_stripe, rate_card, stripe_account, stripe_keys, webhooks  # noqa: F401
from tests.factories import UserFactory

roles_migration = importlib.import_module("backoffice.migrations.0001_staff_roles")


@functools.cache
def _state_apps():
    # The suite runs without migrations: the models as migration 0001 sees them.
    with override_settings(MIGRATION_MODULES={}):
        loader = MigrationLoader(connection)
        return loader.project_state(("backoffice", "0001_staff_roles")).apps


def roles_create() -> None:
    roles_migration.roles_create(_state_apps(), None)


def staff_in(group: str | None, email: str):
    user = UserFactory(email=email, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def roles(db) -> None:
    roles_create()


@pytest.fixture
def support(roles):
    return staff_in("Support", "support@tollgate.test")


@pytest.fixture
def finance(roles):
    return staff_in("Finance", "finance@tollgate.test")


@pytest.fixture
def finance_client(client, finance):
    client.force_login(finance)
    return client


@pytest.fixture
def support_client(client, support):
    client.force_login(support)
    return client
