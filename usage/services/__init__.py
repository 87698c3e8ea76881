"""Every change of a credit balance, and everything that prices usage.

Callers import the verbs from here. Inside, one module per concern:

- `writer`: the account lock and the one writer every balance change goes
  through (it announces each change on usage.balance_changes); `store`: its SQL.
- `credits` (grants, the strict debit, staff adjustments), `holds` (and
  `quotes`: an estimate with a hold whose prices are locked),
  `transfers`, `refunds` (clawbacks and disputes), `expiry`, `reconcile`.
- `account`: the plan and trigger lines billing keeps on the account.
- `pricing` (events checked and priced before the lock) and `events`
  (recorded under it); `routing`: who pays, the organization or (member_usage:
  personal) each member's personal account; `rates`, `keys`, `limits`, `keybudget`: the rate
  card, provider keys, members' spend caps and API keys' limits and meters; `rollup`: usage totals.
"""

from usage.services.events import (  # noqa: F401
    BatchItem,
    RecordedUsage,
    hold_capture_events,
    usage_record,
    usage_record_batch,
)
from usage.services.account import (  # noqa: F401
    account_open,
    account_set_auto_topup_threshold,
    account_set_low_balance_threshold,
    account_set_plan,
    accounts_set_plan_features,
)
from usage.services.credits import credits_adjust, credits_debit, credits_grant  # noqa: F401
from usage.services.expiry import grant_expire_now, grant_expiry_extend, grants_expire  # noqa: F401
from usage.services.holds import (  # noqa: F401
    DEFAULT_HOLD_TTL,
    MAX_HOLD_TTL,
    hold_capture,
    hold_create,
    hold_release,
    holds_expire,
)
from usage.services.keybudget import api_key_budget_set  # noqa: F401
from usage.services.keys import provider_key_create, provider_key_last_four, provider_key_revoke  # noqa: F401
from usage.services.limits import member_limit_set  # noqa: F401
from usage.services.pricing import UsageInput  # noqa: F401
from usage.services.quotes import Quote, quote_create  # noqa: F401
from usage.services.rates import rate_card_load, rate_set  # noqa: F401
from usage.services.reconcile import Mismatch, ledger_reconcile  # noqa: F401
from usage.services.refunds import Clawback, credits_clawback, credits_freeze, credits_unfreeze  # noqa: F401
from usage.services.rollup import usage_rollup  # noqa: F401
from usage.services.runaway import (  # noqa: F401
    Trip,
    api_key_resume,
    occurrence_key,
    paused_keys,
    runaway_check,
)
from usage.services.transfers import credits_transfer, transfer_sendable_micros, transferable_micros  # noqa: F401
from usage.services.writer import month_start  # noqa: F401
from usage.services.tokens import (  # noqa: F401,E402
    DEFAULT_TOKEN_TTL,
    MAX_TOKEN_TTL,
    TokenCheck,
    spending_token_authenticate,
    spending_token_create,
    spending_token_revoke,
)
