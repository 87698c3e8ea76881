"""The usage app's models: the credit ledger (`ledger`) and what usage is and
costs (`metering`). Import them from here."""

from usage.models.ledger import (  # noqa: F401
    DEFAULT_PRIORITY,
    TRANSFERABLE_SOURCES,
    CreditAccount,
    EntryKind,
    Grant,
    GrantQuerySet,
    GrantSource,
    Hold,
    HoldStatus,
    KeySpend,
    LedgerAllocation,
    LedgerEntry,
    MemberSpend,
    MemberSpendLimit,
    Transfer,
)
from usage.models.metering import (  # noqa: F401
    BillingMode,
    Meter,
    MeterCategory,
    Provider,
    ProviderKey,
    Rate,
    RollupCursor,
    UsageEvent,
    UsageRollup,
    UsageRunRollup,
)
from usage.models.runaway import PausedApiKey, RunawayOccurrence  # noqa: F401,E402
from usage.models.tokens import TOKEN_PREFIX, SpendingToken  # noqa: F401,E402
