"""Every change of a credit balance, and everything that prices usage.

`ledger` holds the account lock and the one writer; `events` prices and
records usage; `rates`, `keys` and `limits` keep the rate card, the provider
keys and the members' spend caps. Callers import from here.
"""

from usage.services.events import (  # noqa: F401
    BatchItem,
    RecordedUsage,
    UsageInput,
    hold_capture_events,
    usage_record,
    usage_record_batch,
)
from usage.services.keys import provider_key_create, provider_key_revoke  # noqa: F401
from usage.services.ledger import (  # noqa: F401
    DEFAULT_HOLD_TTL,
    MAX_HOLD_TTL,
    Clawback,
    Mismatch,
    account_open,
    account_set_auto_topup_threshold,
    account_set_low_balance_threshold,
    account_set_plan,
    credits_adjust,
    credits_clawback,
    credits_debit,
    credits_freeze,
    credits_grant,
    credits_transfer,
    credits_unfreeze,
    grant_expire_now,
    grants_expire,
    hold_capture,
    hold_create,
    hold_release,
    holds_expire,
    ledger_reconcile,
    month_start,
    transfer_sendable_micros,
    transferable_micros,
)
from usage.services.limits import member_limit_set  # noqa: F401
from usage.services.rates import rate_card_load, rate_set  # noqa: F401
from usage.services.rollup import usage_rollup  # noqa: F401
