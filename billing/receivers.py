"""What billing does when a balance changes (the ledger's balance-change seam).

Registered in BillingConfig.ready(). Each receiver only decides whether to
queue its task; the task re-checks under its own locks, so a trigger that is
stale by the time it runs does nothing.
"""

from __future__ import annotations

from billing import tasks
from usage.balance_changes import BalanceChange, Line


def auto_topup_when_below_threshold(change: BalanceChange) -> None:
    """The balance fell below the org's auto top-up threshold."""
    if change.fell_below(change.auto_topup_threshold_micros):
        tasks.auto_topup_check.delay(change.org_id)


def overage_report_when_debt_grows(change: BalanceChange) -> None:
    """Debt grew on an account whose plan bills overage in arrears."""
    if change.overage_allowed and change.debt_grew:
        tasks.overage_report.delay(change.org_id)


def alerts_when_running_low(change: BalanceChange) -> None:
    """Available credits fell below the low-balance line or to nothing."""
    if change.crossed & {Line.BELOW_LOW, Line.DEPLETED}:
        tasks.alerts_check.delay(change.org_id)


RECEIVERS = (auto_topup_when_below_threshold, overage_report_when_debt_grows, alerts_when_running_low)
