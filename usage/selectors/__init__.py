"""Reads of credits and usage, for the API, the pages and billing. Everything is
scoped to one organization or its account; nothing here writes or locks.

One module per concern: `balances` (credits, grants, transfers, and billing's
reads of them), `history` (the ledger, keyset-paginated), `charts` (usage over
time, workflow runs' costs), `estimates`, `members` (spend, caps, provider
keys), `keys` (API keys' spend this month), `receipts` (one workflow run, itemised), `runaway` (spend rates for the runaway breaker), `upkeep` (how far behind scheduled upkeep is, for /metrics). Callers import from here.
"""

from usage.balance_changes import low_balance_micros  # noqa: F401
from usage.selectors.balances import (  # noqa: F401
    ALLOWANCE_SOURCES,
    AvailableBalance,
    BalanceStatus,
    BalanceSummary,
    GrantBalance,
    account_for,
    account_has_used,
    allowances_mostly_used,
    available_balance,
    balance_micros_for,
    balance_status,
    balance_summary,
    grant_latest_unexpired,
    grants_unspent,
    live_grants,
    low_balances,
    org_ids_in_overage,
    overage_debt_micros,
    recent_transfers,
    sendable_micros,
)
from usage.selectors.charts import (  # noqa: F401
    CHART_GROUPS,
    CHART_PERIODS,
    CHART_TOP,
    ChartSeries,
    GROUPS,
    GroupBy,
    PERIODS,
    Period,
    RunCost,
    RunCosts,
    UsageChart,
    UsageRow,
    chart_buckets,
    chart_labels,
    rolled_until,
    usage_chart,
    usage_series,
    workflow_run_costs,
)
from usage.selectors.estimates import (  # noqa: F401
    Estimate,
    EstimateLine,
    WorkflowEstimate,
    estimate,
    meters_gated,
    workflow_estimates,
    workflows,
)
from usage.selectors.history import (  # noqa: F401
    HISTORY_PAGE_SIZE,
    HistoryFilters,
    HistoryPage,
    cursor_for,
    cursor_parse,
    history_entries,
    ledger_entries,
    ledger_export_rows,
    ledger_page,
    meters_by_code,
)
from usage.selectors.keys import api_key_spend_this_month, key_meter_choices  # noqa: F401
from usage.selectors.members import (  # noqa: F401
    MemberSpendRow,
    MemberUsageTotal,
    member_spend,
    member_usage_totals,
    provider_keys,
)
from usage.selectors.receipts import (  # noqa: F401
    RECEIPT_LINES,
    MeterSubtotal,
    Receipt,
    ReceiptHold,
    ReceiptLine,
    ReceiptToken,
    RunNotFound,
    run_receipt,
    run_receipt_lines,
)
from usage.selectors.runaway import Baseline, HourSpend, hourly_baseline, spend_last_hour  # noqa: F401
from usage.selectors.tokens import hold_of_org, spending_tokens  # noqa: F401,E402
from usage.selectors.upkeep import hold_oldest_overdue_at  # noqa: F401
