"""Billing's models, one module per concern: the plans and packs on sale
(`catalog`), each organization's billing state and purchases (`state`), and
what runs on its own: auto top-up, overage, alerts (`upkeep`), and the runs
of reconciliation with Stripe (`reconciliation`). Import them
from here."""

from billing.models.catalog import (  # noqa: F401
    Interval,
    OveragePrice,
    Pack,
    Plan,
    PlanPrice,
)
from billing.models.history import BillingStateChange, PAYING_STATUSES  # noqa: F401
from billing.models.reconciliation import (  # noqa: F401
    DriftKind,
    ReconciliationFinding,
    ReconciliationRun,
    RunStatus,
)
from billing.models.state import (  # noqa: F401
    AllowancePeriod,
    BillingState,
    BillingStatus,
    CheckoutKind,
    CheckoutStart,
    CheckoutStatus,
    DisputeRecord,
    Purchase,
    PurchaseKind,
    RefundRecord,
)
from billing.models.upkeep import (  # noqa: F401
    AlertKind,
    AlertPreference,
    AlertState,
    AttemptStatus,
    AutoTopUpSettings,
    OPEN_ATTEMPT_STATUSES,
    OverageReport,
    TopUpAttempt,
)
