import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing_project.errors import Conflict, PermissionDenied
from orgs import services
from orgs.models import Membership, Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_member_cannot_invite(org, owner, member):
    with pytest.raises(PermissionDenied):
        services.invitation_create(org=org, actor=member, email="new@acme.test")


def test_a_member_sees_no_invite_form_and_a_post_is_refused(client, org, owner, member, mailoutbox):
    client.force_login(member)
    page = client.get(reverse("billing:members"))
    assert b"Send invitation" not in page.content

    response = client.post(reverse("billing:members"), {"email": "new@acme.test", "role": "member"}, follow=True)
    assert "Only owners and admins can invite people." in response.content.decode()
    assert mailoutbox == []


def test_the_members_page_reads_the_memberships_once(client, org, owner, member):
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("billing:members"))
    assert page.status_code == 200 and "member@acme.test" in page.content.decode()
    listed = [q for q in queries.captured_queries if q["sql"].startswith('SELECT "orgs_membership"')
              and 'ORDER BY "orgs_membership"."created_at"' in q["sql"]]
    assert len(listed) == 1


def test_the_last_owner_cannot_be_removed(org, owner):
    own = Membership.objects.get(org=org, user=owner)
    with pytest.raises(Conflict) as caught:
        services.membership_remove(org=org, actor=owner, membership=own)
    assert caught.value.code == "last_owner"
    assert Membership.objects.filter(org=org, role=Role.OWNER).count() == 1


def test_the_last_owner_cannot_step_down(org, owner):
    own = Membership.objects.get(org=org, user=owner)
    with pytest.raises(Conflict):
        services.membership_change_role(org=org, actor=owner, membership=own, role=Role.ADMIN)


def test_an_owner_can_step_down_once_another_owner_exists(org, owner, member):
    theirs = Membership.objects.get(org=org, user=member)
    services.membership_change_role(org=org, actor=owner, membership=theirs, role=Role.OWNER)
    own = Membership.objects.get(org=org, user=owner)
    services.membership_change_role(org=org, actor=owner, membership=own, role=Role.MEMBER)
    assert list(Membership.objects.filter(org=org, role=Role.OWNER).values_list("user__email", flat=True)) == [
        "member@acme.test"
    ]


def test_an_admin_cannot_demote_or_remove_an_owner(org, owner):
    admin = MembershipFactory(org=org, role=Role.ADMIN).user
    own = Membership.objects.get(org=org, user=owner)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(org=org, actor=admin, membership=own, role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        services.membership_remove(org=org, actor=admin, membership=own)


def test_an_admin_manages_members(org, owner, member):
    admin = MembershipFactory(org=org, role=Role.ADMIN).user
    theirs = Membership.objects.get(org=org, user=member)
    services.membership_change_role(org=org, actor=admin, membership=theirs, role=Role.BILLING)
    assert Membership.objects.get(pk=theirs.pk).role == Role.BILLING
    services.membership_remove(org=org, actor=admin, membership=theirs)
    assert not Membership.objects.filter(pk=theirs.pk).exists()


def test_a_member_may_leave(client, org, owner, member):
    client.force_login(member)
    theirs = Membership.objects.get(org=org, user=member)
    client.post(reverse("orgs:member_remove", args=[theirs.pk]))
    assert not Membership.objects.filter(pk=theirs.pk).exists()


def test_the_role_page_changes_a_role_and_audits_it(client, org, owner, member):
    client.force_login(owner)
    theirs = Membership.objects.get(org=org, user=member)
    client.post(reverse("orgs:member_role", args=[theirs.pk]), {"role": "billing"})
    assert Membership.objects.get(pk=theirs.pk).role == "billing"
    event = org_events(org, "member.role_changed")[0]
    assert event.data == {"member": "member@acme.test", "from": "member", "to": "billing"}
    assert event.actor_user == owner


def org_events(org, action):
    from orgs.models import AuditEvent

    return list(AuditEvent.objects.filter(org=org, action=action))


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner():
    org = OrganizationFactory()
    a = MembershipFactory(org=org, role=Role.OWNER, user=UserFactory())
    b = MembershipFactory(org=org, role=Role.OWNER, user=UserFactory())
    barrier = threading.Barrier(2)
    outcomes = []

    def demote(actor, target):
        try:
            barrier.wait()
            services.membership_change_role(org=org, actor=actor.user, membership=target, role=Role.MEMBER)
            outcomes.append("ok")
        except (Conflict, PermissionDenied) as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=demote, args=(a, b)), threading.Thread(target=demote, args=(b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert Membership.objects.filter(org=org, role=Role.OWNER).count() == 1
    # The second to take the lock is no longer an owner, so it may not demote one.
    assert sorted(outcomes) == ["ok", "role_required"]
