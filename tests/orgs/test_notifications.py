"""The notification seam: one place that picks recipients by role and
preference, renders a kind's templates and sends after commit."""

import pytest
from django.db import transaction
from django.template.loader import get_template

from orgs import notifications
from orgs.models import Role
from orgs.notifications import (
    Notification,
    NotificationKind,
    NotificationNotRegistered,
    notification_channel_register,
    notification_kind_register,
    notification_kinds,
    notification_send,
)
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def kind_templates(name: str) -> dict[str, str]:
    """A new kind's three templates, here served from memory instead of templates/notifications/<name>/."""
    return {
        f"notifications/{name}/subject.txt": "[Tollgate] {{ org.name }} says {{ word }}\n",
        f"notifications/{name}/body.txt": "{{ word|capfirst }} from {{ org.name }}.\n\n— Tollgate\n",
        f"notifications/{name}/body.html": (
            '{% extends "notifications/base.html" %}'
            "{% block content %}<p>{{ word|capfirst }} from {{ org.name }}.</p>{% endblock %}"
        ),
    }


def members_who_are_not_owners(org, members):
    return [m for m in members if m.role != Role.OWNER]


@pytest.fixture
def registry(monkeypatch):
    """Kinds and channels a test registers do not outlive it."""
    monkeypatch.setattr(notifications, "_kinds", dict(notifications._kinds))
    monkeypatch.setattr(notifications, "_channels", dict(notifications._channels))


@pytest.fixture
def greeting(registry, settings):
    """A new kind, added the way an app adds one: a declaration, its registration and three templates."""
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{
        **engine,
        "APP_DIRS": False,
        "OPTIONS": {**engine["OPTIONS"], "loaders": [
            ("django.template.loaders.locmem.Loader",
             {**kind_templates("greeting"), **kind_templates("nudge"), **kind_templates("announcement")}),
            "django.template.loaders.filesystem.Loader",
            "django.template.loaders.app_directories.Loader",
        ]},
    }]
    notification_kind_register(
        NotificationKind(name="nudge", roles={Role.OWNER, Role.BILLING}, wants=members_who_are_not_owners)
    )
    return notification_kind_register(NotificationKind(name="greeting", roles={Role.OWNER, Role.BILLING}))


@pytest.fixture
def billing_manager(org):
    return MembershipFactory(org=org, role=Role.BILLING, user=UserFactory(email="billing@acme.test")).user


@pytest.fixture
def send(mailoutbox, django_capture_on_commit_callbacks):
    """Send in a transaction that commits; returns the mails that left."""
    def run(kind="greeting", **kwargs):
        kwargs.setdefault("context", {"word": "hello"})
        with django_capture_on_commit_callbacks(execute=True):
            notification_send(kind, **kwargs)
        return mailoutbox
    return run


def test_it_sends_a_new_kind_from_its_templates(greeting, org, owner, send):
    [mail] = send(org=org)

    assert mail.subject == "[Tollgate] Acme says hello"
    assert mail.body == (
        "Hello from Acme.\n\n— Tollgate\n\n--\n"
        "You get this as owner of Acme. Choose what Tollgate tells you: http://testserver/notifications/preferences/\n"
    )
    assert mail.to == ["owner@acme.test"]


def test_it_says_in_the_html_footer_why_they_got_it(greeting, org, owner, send):
    [mail] = send(org=org)

    [(html, _)] = mail.alternatives
    assert "You get this as owner of Acme." in html and "/notifications/preferences/" in html


def test_it_attaches_the_html_body_beside_the_text(greeting, org, owner, send):
    [mail] = send(org=org)

    [(html, mimetype)] = mail.alternatives
    assert mimetype == "text/html"
    assert "<p>Hello from Acme.</p>" in html and html.lstrip().startswith("<!doctype html>")


def test_it_escapes_html_but_not_text(greeting, org, owner, send):
    org.name = "Smith & <Sons>"
    org.save()

    [mail] = send(org=org)

    assert mail.subject == "[Tollgate] Smith & <Sons> says hello"
    assert mail.body.startswith("Hello from Smith & <Sons>.")
    assert "Hello from Smith &amp; &lt;Sons&gt;." in mail.alternatives[0][0]


def test_it_picks_the_members_with_the_kinds_roles(greeting, org, owner, member, billing_manager, outsider, send):
    MembershipFactory(org=org, role=Role.ADMIN)

    mails = send(org=org)

    # each their own message, oldest member first; not the member, the admin nor another org's owner
    assert [m.to for m in mails] == [["owner@acme.test"], ["billing@acme.test"]]


def test_it_asks_the_kinds_preference(greeting, org, owner, billing_manager, send):
    mails = send("nudge", org=org)

    assert [m.to for m in mails] == [["billing@acme.test"]]


def test_it_sends_nothing_when_nobody_wants_it(greeting, org, owner, send):
    assert notification_send("nudge", org=org, context={}) is None
    assert send("nudge", org=org) == []


def test_it_sends_to_explicit_addresses(greeting, org, owner, send):
    mails = send(org=org, emails=["new@person.test"])

    assert [m.to for m in mails] == [["new@person.test"]]
    assert mails[0].subject == "[Tollgate] Acme says hello"


def test_it_sends_to_one_user(greeting, org, owner, member, send):
    mails = send(org=org, user=member)

    assert [m.to for m in mails] == [["member@acme.test"]]


def test_it_sends_nothing_when_the_transaction_rolls_back(greeting, org, owner, mailoutbox,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            notification_send("greeting", org=org, context={"word": "hello"})
            1 / 0

    assert callbacks == []
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_it_sends_only_once_the_transaction_commits(greeting, org, owner, mailoutbox):
    with transaction.atomic():
        notification_send("greeting", org=org, context={"word": "hello"})
        assert mailoutbox == []

    assert [m.to for m in mailoutbox] == [["owner@acme.test"]]


def test_it_refuses_an_unknown_kind_before_anything_is_queued(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(NotificationNotRegistered, match="greting"):
        notification_send("greting", org=org, context={})
    assert callbacks == []


def test_it_refuses_a_second_kind_under_a_taken_name(greeting):
    notification_kind_register(NotificationKind(name="greeting", roles={Role.OWNER, Role.BILLING}))  # the same: fine

    with pytest.raises(ValueError, match="already registered"):
        notification_kind_register(NotificationKind(name="greeting", roles={Role.MEMBER}))


def test_a_new_channel_is_one_function(greeting, org, owner, billing_manager, mailoutbox,
                                       django_capture_on_commit_callbacks):
    inbox: list[Notification] = []
    notification_channel_register("in_app", inbox.append)
    notification_kind_register(NotificationKind(name="announcement", roles={Role.OWNER}, channels=("email", "in_app")))

    with django_capture_on_commit_callbacks(execute=True):
        sent = notification_send("announcement", org=org, context={"word": "hi"})
        assert inbox == []

    assert inbox == [sent]
    assert [(r.email, r.user) for r in sent.recipients] == [("owner@acme.test", owner)]
    assert len(mailoutbox) == 1


def test_every_registered_kind_has_its_three_templates():
    names = [kind.name for kind in notification_kinds()]

    assert {"invitation", "billing_notice", "alert_low_balance", "alert_allowance_95"} <= set(names)
    for kind in notification_kinds():
        for part in ("subject.txt", "body.txt", "body.html"):
            get_template(kind.template_name(part))  # raises TemplateDoesNotExist
