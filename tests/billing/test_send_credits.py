import threading
import uuid

import pytest
from django.db import connection
from django.urls import reverse

from orgs.models import Role
from tests.billing.helpers import C, grant
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from usage import selectors, services
from usage.models import CreditAccount, GrantSource, Transfer

pytestmark = pytest.mark.django_db

URL = reverse("billing:send")
CONFIRM = reverse("billing:send_confirm")


@pytest.fixture
def friend(db):
    """A person with their personal organization, as sign-up makes them."""
    from accounts.services import user_signup

    return user_signup(email="friend@example.test", password="correct horse battery", full_name="Fran Friend")


def review(client, **data):
    """The first step: the form, answered by the confirmation page when it is valid."""
    data.setdefault("idempotency_key", uuid.uuid4().hex)
    data.setdefault("note", "")
    return client.post(URL, data)


def post(client, **data):
    """Both steps, as a person who reads the confirmation and confirms."""
    response = review(client, **data)
    if response.status_code == 200 and "pending" in (response.context or {}):
        return client.post(CONFIRM, {"pending": response.context["pending"]})
    return response


def balance(org) -> int:
    return CreditAccount.objects.get(org=org).balance_micros


def test_it_shows_only_purchased_credits_as_sendable(client, org, owner):
    grant(org, 100, GrantSource.PURCHASE)
    grant(org, 40, GrantSource.TRIAL)
    grant(org, 10, GrantSource.AUTO_TOPUP)
    services.hold_create(org=org, amount_micros=135 * C)  # holds leave 15 available
    client.force_login(owner)
    content = client.get(URL).content.decode()
    assert 'data-testid="sendable"><span class="num">15</span>' in content


def test_the_page_and_the_service_agree_on_what_is_sendable(org):
    grant(org, 30, GrantSource.PURCHASE)
    grant(org, 30, GrantSource.PROMO)
    account = selectors.account_for(org.pk)
    shown = selectors.sendable_micros(account=account, grants=selectors.live_grants(account=account))
    other = OrganizationFactory()
    from usage.errors import InsufficientCredits

    with pytest.raises(InsufficientCredits):
        services.credits_transfer(from_org=org, to_org=other, amount_micros=shown + 1, idempotency_key="a")
    services.credits_transfer(from_org=org, to_org=other, amount_micros=shown, idempotency_key="b")


def test_an_owner_sends_credits_to_a_person_by_email(client, org, owner, friend):
    grant(org, 100)
    client.force_login(owner)
    response = post(client, recipient="  Friend@Example.test ", amount="25.5", note="For the coffee")
    assert response.status_code == 302
    transfer = Transfer.objects.get()
    personal = friend.memberships.get().org
    assert (transfer.to_account.org, transfer.amount_micros, transfer.note, transfer.sent_by) == (personal, 25_500_000, "For the coffee", owner)
    assert balance(personal) == 25_500_000
    assert "Sent 25.5 credits to Fran Friend." in client.get(URL).content.decode()


def test_it_sends_to_a_team_organization_by_its_id(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    assert post(client, recipient="GLOBEX", amount="10").status_code == 302
    assert balance(other_org) == 10 * C


@pytest.mark.parametrize(
    "recipient, amount, field, message",
    [
        ("nobody@example.test", "5", "recipient", "We can’t send credits to this e-mail."),
        ("no-such-team", "5", "recipient", "We can’t send credits to this ID."),
        ("acme", "5", "recipient", "That is the organization you are sending from."),
        ("globex", "", "amount", "This field is required."),
        ("globex", "abc", "amount", "Enter an amount of credits, such as 250 or 12.5."),
        ("globex", "0", "amount", "Send more than zero credits."),
        ("globex", "-5", "amount", "Send more than zero credits."),
        ("globex", "0.0000001", "amount", "the smallest amount is 0.000001 credits"),
        ("globex", "61", "amount", "You can send up to 60 credits"),
        ("globex", "1e999999", "amount", "the largest amount"),
        ("", "5", "recipient", "This field is required."),
    ],
)
def test_bad_input_is_explained_and_nothing_moves(client, org, owner, other_org, recipient, amount, field, message):
    grant(org, 60)
    grant(org, 500, GrantSource.TRIAL)
    client.force_login(owner)
    response = post(client, recipient=recipient, amount=amount)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert Transfer.objects.count() == 0
    assert balance(org) == 560 * C


def test_a_too_long_note_is_refused(client, org, owner, other_org):
    grant(org, 60)
    client.force_login(owner)
    response = post(client, recipient="globex", amount="1", note="x" * 281)
    assert "at most 280 characters" in " ".join(response.context["form"].errors["note"])


def test_a_forged_idempotency_key_is_refused(client, org, owner, other_org):
    grant(org, 60)
    client.force_login(owner)
    response = post(client, recipient="globex", amount="1", idempotency_key="'; drop table")
    assert "Reload the page" in " ".join(response.context["form"].errors["idempotency_key"])


def test_submitting_the_same_form_twice_sends_once(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    key = uuid.uuid4().hex
    for _ in range(2):
        assert post(client, recipient="globex", amount="10", idempotency_key=key).status_code == 302
    assert Transfer.objects.count() == 1
    assert balance(other_org) == 10 * C


def test_reusing_a_sent_form_for_a_different_amount_asks_to_send_again(client, org, owner, other_org):
    grant(org, 100)
    client.force_login(owner)
    key = uuid.uuid4().hex
    post(client, recipient="globex", amount="10", idempotency_key=key)
    response = post(client, recipient="globex", amount="20", idempotency_key=key)
    assert response.status_code == 200
    assert "This form was already used to send credits." in response.content.decode()
    assert response.context["form"]["idempotency_key"].value() != key
    assert Transfer.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_double_click_racing_in_two_requests_sends_once(org, owner, other_org):
    from django.test import Client

    grant(org, 100)
    key = uuid.uuid4().hex
    barrier = threading.Barrier(2)
    codes = []

    def submit():
        client = Client()
        client.force_login(owner)
        barrier.wait()
        try:
            codes.append(post(client, recipient="globex", amount="10", idempotency_key=key).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [302, 302]
    assert Transfer.objects.count() == 1
    assert balance(org) == 90 * C


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.BILLING])
def test_every_billing_role_may_send(client, org, other_org, role):
    user = MembershipFactory(org=org, role=role).user
    grant(org, 10)
    client.force_login(user)
    assert 'data-testid="send-form"' in client.get(URL).content.decode()
    assert post(client, recipient="globex", amount="1").status_code == 302


def test_a_member_sees_a_read_only_page_and_cannot_post(client, org, owner, member, other_org):
    grant(org, 10)
    client.force_login(member)
    content = client.get(URL).content.decode()
    assert 'data-testid="send-form"' not in content
    assert "Only owners, admins and billing managers of Acme can send credits." in content
    response = post(client, recipient="globex", amount="1")
    assert response.status_code == 403
    assert "Only owners, admins and billing managers can send credits." in response.content.decode()
    assert Transfer.objects.count() == 0


def test_recent_transfers_list_both_directions_for_this_org_only(client, org, owner, other_org):
    third = OrganizationFactory(name="Initech", slug="initech")
    grant(org, 100)
    grant(other_org, 100)
    grant(third, 100)
    services.credits_transfer(from_org=org, to_org=other_org, amount_micros=5 * C, idempotency_key="1", note="out")
    services.credits_transfer(from_org=other_org, to_org=org, amount_micros=7 * C, idempotency_key="2", note="in")
    services.credits_transfer(from_org=third, to_org=other_org, amount_micros=9 * C, idempotency_key="3", note="not ours")
    client.force_login(owner)
    content = client.get(URL).content.decode()
    assert "To Globex" in content and "“out”" in content and "−5" in content
    assert "From Globex" in content and "“in”" in content and "+7" in content
    assert "not ours" not in content and "Initech" not in content


def test_the_csrf_token_is_required(org, owner, other_org):
    from django.test import Client

    grant(org, 10)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(URL, {"recipient": "globex", "amount": "1", "idempotency_key": uuid.uuid4().hex})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
    assert Transfer.objects.count() == 0


def test_a_personal_organization_is_reached_by_email_not_by_its_id(client, org, owner, friend):
    grant(org, 10)
    client.force_login(owner)
    personal = friend.memberships.get().org
    response = post(client, recipient=personal.slug, amount="1")
    assert "We can’t send credits to this ID." in " ".join(response.context["form"].errors["recipient"])


def test_amounts_may_carry_thousands_separators(client, org, owner, other_org):
    grant(org, 2000)
    client.force_login(owner)
    assert post(client, recipient="globex", amount="1,250.5").status_code == 302
    assert balance(other_org) == 1_250_500_000
