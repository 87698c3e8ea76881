"""What the billing pages show about an organization's credits. Reads only.

The header indicator runs on every signed-in page, so `header_balance` is one
indexed row read (CreditAccount by its unique org_id) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import TextChoices

from usage import selectors as ledger
from usage.models import CreditAccount, Grant
from usage.units import credits_to_micros


class BalanceStatus(TextChoices):
    OK = "ok", "OK"
    LOW = "low", "Low"
    DEPLETED = "depleted", "Empty"


def low_balance_threshold_micros(org_id: int) -> int:
    """Available credits below which the balance counts as low.

    The deployment default (LOW_BALANCE_CREDITS) for now; an org's own alert
    preference takes its place once alert settings exist."""
    return credits_to_micros(settings.LOW_BALANCE_CREDITS)


def balance_status(available_micros: int, low_threshold_micros: int) -> BalanceStatus:
    if available_micros <= 0:
        return BalanceStatus.DEPLETED
    if available_micros < low_threshold_micros:
        return BalanceStatus.LOW
    return BalanceStatus.OK


@dataclass(frozen=True)
class HeaderBalance:
    available_micros: int
    status: BalanceStatus


def header_balance(org_id: int) -> HeaderBalance:
    row = CreditAccount.objects.filter(org_id=org_id).values_list("balance_micros", "held_micros").first()
    available = row[0] - row[1] if row else 0
    return HeaderBalance(available, balance_status(available, low_balance_threshold_micros(org_id)))


# --- the overview --------------------------------------------------------------

# What one action of each size costs, in credits, until the rate card prices
# the action.small|medium|large|xl meters per plan (then read from there).
ACTION_TIERS: tuple[tuple[str, str, Decimal], ...] = (
    ("small", "Small", Decimal("1")),
    ("medium", "Medium", Decimal("2.5")),
    ("large", "Large", Decimal("5")),
    ("xl", "XL", Decimal("15")),
)


@dataclass(frozen=True)
class ActionEstimate:
    code: str
    label: str
    cost_micros: int
    count: int


def actions_affordable(available_micros: int) -> list[ActionEstimate]:
    """Roughly how many actions of each size the available credits still buy."""
    estimates = []
    for code, label, cost in ACTION_TIERS:
        cost_micros = credits_to_micros(cost)
        estimates.append(ActionEstimate(code, label, cost_micros, max(available_micros, 0) // cost_micros))
    return estimates


@dataclass(frozen=True)
class CreditsOverview:
    account: CreditAccount
    status: BalanceStatus
    low_threshold_micros: int
    grants: list[Grant]
    sendable_micros: int
    actions: list[ActionEstimate]

    @property
    def available_micros(self) -> int:
        return self.account.available_micros


def credits_overview(org_id: int) -> CreditsOverview:
    """Balance, holds, status, live grants and what the balance buys: a row
    read and one index scan of the (few) grants with credits left; nothing
    reads the ledger's entries, however many there are."""
    account = ledger.account_for(org_id)
    grants = ledger.live_grants(account=account)
    threshold = low_balance_threshold_micros(org_id)
    return CreditsOverview(
        account=account,
        status=balance_status(account.available_micros, threshold),
        low_threshold_micros=threshold,
        grants=grants,
        sendable_micros=ledger.sendable_micros(account=account, grants=grants),
        actions=actions_affordable(account.available_micros),
    )
