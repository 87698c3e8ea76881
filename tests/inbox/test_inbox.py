"""The in-app channel, the bell, the notifications page and the preferences page."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from inbox.models import InboxItem
from orgs.models import NotificationPreference
from orgs.notifications import notification_send
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TRIAL = {"trial_ends_at": timezone.now(), "days_left": 1, "plan_name": "Starter", "link": "/billing/plans/"}


@pytest.fixture
def told(org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notification_send("trial_ending", org=org, context=TRIAL)
    return InboxItem.objects.get(user=owner)


def test_it_keeps_the_title_a_line_and_the_link_that_fixes_it(told):
    assert told.title == "Your trial ends tomorrow"  # the subject, less what the page already says
    assert told.body.startswith("Acme's Starter trial ends on")
    assert told.link == "/billing/plans/" and told.read_at is None


def test_it_never_links_off_the_site(org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notification_send("trial_ending", org=org, context={**TRIAL, "link": "//evil.test/"})

    assert InboxItem.objects.get().link == ""


def test_the_bell_counts_unread_items(client, owner, told):
    client.force_login(owner)
    page = client.get(reverse("billing:overview")).content.decode()

    assert 'data-testid="inbox-count">1<' in page


def test_the_bell_shows_no_count_when_all_is_read(client, owner, told):
    told.read_at = timezone.now()
    told.save()
    client.force_login(owner)

    assert 'data-testid="inbox-count"' not in client.get(reverse("billing:overview")).content.decode()


def test_the_page_lists_the_items(client, owner, told):
    client.force_login(owner)
    response = client.get(reverse("inbox:list"))

    assert response.status_code == 200 and "Your trial ends tomorrow" in response.content.decode()


def test_open_marks_read_and_goes_to_the_page_that_fixes_it(client, owner, told):
    client.force_login(owner)
    response = client.post(reverse("inbox:read", args=[told.pk]), {"go": "1"})

    assert response.status_code == 302 and response["Location"] == "/billing/plans/"
    told.refresh_from_db()
    assert told.read_at is not None


def test_mark_all_read(client, owner, told, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        notification_send("trial_ending", org=org, context=TRIAL)
    client.force_login(owner)
    client.post(reverse("inbox:read_all"))

    assert not InboxItem.objects.filter(read_at__isnull=True).exists()


def test_someone_elses_item_is_a_404(client, told, org):
    stranger = MembershipFactory(org=org, role="member", user=UserFactory()).user
    client.force_login(stranger)

    assert client.post(reverse("inbox:read", args=[told.pk])).status_code == 404
    assert client.post(reverse("inbox:read", args=[999999])).status_code == 404


def test_reading_is_a_post(client, owner, told):
    client.force_login(owner)

    assert client.get(reverse("inbox:read", args=[told.pk])).status_code == 405


def test_the_pages_need_a_sign_in(client):
    assert client.get(reverse("inbox:list")).status_code == 302
    assert client.get(reverse("inbox:preferences")).status_code == 302


# --- preferences -----------------------------------------------------------------


def test_preferences_list_registered_kinds_grouped_with_the_roles_default(client, member):
    client.force_login(member)
    page = client.get(reverse("inbox:preferences")).content.decode()

    for text in ("Payments", "Balance", "Trial ending", "Allowance 80 % used", 'name="trial_ending:email"'):
        assert text in page
    assert "invitation" not in page  # sent to whom the inviter names: nothing to choose


def test_saving_stores_only_what_differs_from_the_default(client, owner, org):
    client.force_login(owner)
    page = client.get(reverse("inbox:preferences")).content.decode()
    ticked = {name for name in _checked(page)} - {"trial_ending:email"}

    response = client.post(reverse("inbox:preferences"), {name: "on" for name in ticked})

    assert response.status_code == 302
    assert list(NotificationPreference.objects.values_list("kind", "channel", "enabled")) == [
        ("trial_ending", "email", False)
    ]


def test_a_saved_choice_stops_the_mail(client, owner, org, django_capture_on_commit_callbacks):
    client.force_login(owner)
    ticked = set(_checked(client.get(reverse("inbox:preferences")).content.decode())) - {"trial_ending:email"}
    client.post(reverse("inbox:preferences"), {name: "on" for name in ticked})
    with django_capture_on_commit_callbacks(execute=True):
        notification_send("trial_ending", org=org, context=TRIAL)

    assert mail.outbox == [] and InboxItem.objects.filter(user=owner).count() == 1


def test_unknown_names_in_the_form_are_ignored(client, owner):
    client.force_login(owner)

    assert client.post(reverse("inbox:preferences"), {"nonsense:email": "on", "x": "1"}).status_code == 302
    assert NotificationPreference.objects.filter(kind="nonsense").count() == 0


def _checked(page: str) -> list[str]:
    return re.findall(r'name="([a-z0-9_]+:[a-z_]+)" data-testid="[^"]+" checked', page)
