from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orgs.models import AuditEvent
from usage import services
from usage.models import CreditAccount, Grant, GrantSource, LedgerEntry

pytestmark = pytest.mark.django_db

C = 1_000_000


def test_grant_credits_writes_an_adjustment_entry_with_the_reason(org):
    out = StringIO()
    call_command("grant_credits", "--org", "acme", "--credits", "2.5", "--reason", "launch promo",
                 "--expires-at", "2099-01-01T00:00:00Z", stdout=out)
    entry = LedgerEntry.objects.get(account__org=org)
    assert (entry.amount_micros, entry.reason, entry.kind) == (2_500_000, "launch promo", "adjustment")
    assert Grant.objects.get(account__org=org).expires_at.year == 2099
    assert "Granted 2.5 credits to acme" in out.getvalue()
    event = AuditEvent.objects.get(org=org, action="credits.granted")
    assert event.source == "command:grant_credits"


def test_grant_credits_is_idempotent_with_a_key(org):
    for _ in range(2):
        call_command("grant_credits", "--org", "acme", "--credits", "5", "--reason", "r", "--idempotency-key", "once",
                     stdout=StringIO())
    assert CreditAccount.objects.get(org=org).balance_micros == 5 * C


@pytest.mark.parametrize("args", [
    ["--org", "nope", "--credits", "1", "--reason", "r"],
    ["--org", "acme", "--credits", "0", "--reason", "r"],
    ["--org", "acme", "--credits", "1.0000001", "--reason", "r"],
    ["--org", "acme", "--credits", "1", "--reason", " "],
    ["--org", "acme", "--credits", "1", "--reason", "r", "--expires-at", "tomorrow"],
])
def test_grant_credits_refuses_bad_input(org, args):
    with pytest.raises(CommandError):
        call_command("grant_credits", *args, stdout=StringIO())
    assert not LedgerEntry.objects.exists()


def test_reconcile_ledger_passes_then_names_the_account_that_drifted(org, other_org):
    services.credits_grant(org=org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    services.credits_grant(org=other_org, amount_micros=10 * C, source=GrantSource.PURCHASE)
    out = StringIO()
    call_command("reconcile_ledger", stdout=out)
    assert "Every cached balance" in out.getvalue()

    CreditAccount.objects.filter(org=other_org).update(balance_micros=9 * C)
    err = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("reconcile_ledger", stderr=err)
    assert "globex" in str(failed.value) and "acme" not in str(failed.value)
    assert "globex: balance cached 9, entries say 10" in err.getvalue()


def test_reconcile_ledger_names_an_unknown_org_instead_of_passing(org):
    with pytest.raises(CommandError, match="acmee"):
        call_command("reconcile_ledger", "--org", "acme", "--org", "acmee", stdout=StringIO())
