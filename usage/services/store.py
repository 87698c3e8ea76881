"""The ledger's SQL, kept to as few round trips as the invariants allow.

Every write of the ledger holds the account row lock from its first
statement to COMMIT, so the time between the two is what limits one busy
organization, and the statements themselves are what limits many. A debit is
therefore three statements:

1. `lock_account`: `SELECT ... FOR UPDATE` of the account row.
2. `load`: everything the decision needs, read in one statement *after* the
   lock is held (under READ COMMITTED a new statement sees every commit that
   happened while we waited; reading grants in the locking statement would
   see the snapshot from before the wait): the spendable grants in burn
   order, entry and event rows an idempotency key already wrote, a member's
   cap and month-to-date spend, and ids drawn from the sequences for the rows
   about to be written (so entries, allocations, events and audit rows can
   name each other before they exist).
3. `flush`: one statement of data-modifying CTEs that inserts the entries,
   allocations, usage events and audit rows, updates the touched grants and
   member spend, and updates the account's cached columns.

A write that counts against an API key's monthly limit reads the key's limit,
spend and holds in one more statement under the lock (`key_budget`); such
writes never take the one-statement debit, which knows nothing of keys.

Foreign keys are DEFERRABLE INITIALLY DEFERRED (Django's default on
PostgreSQL), so rows inserted by one statement may reference each other.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection
from django.utils.dateparse import parse_datetime

from accounts.models import OrgAPIKey
from orgs.models import AuditEvent
from usage.models import CreditAccount, Grant

_ACCOUNT_COLUMNS = [
    "id", "org_id", "balance_micros", "debt_micros", "held_micros", "plan_code", "overage_allowed",
    "auto_topup_threshold_micros", "low_balance_threshold_micros",
    "updated_at",  # updated_at last: account_from parses it
]
_ACCOUNT_SELECT = ", ".join(_ACCOUNT_COLUMNS)
_GRANT_COLUMNS = [
    "id", "account_id", "source", "amount_micros", "remaining_micros", "frozen_micros", "expires_at", "priority",
    "reference", "created_at",
]
_sequences: dict[str, str] = {}


@contextmanager
def _cursor():
    """A server-side-binding psycopg cursor on Django's connection (in its transaction),
    with database errors mapped to Django's as Django's own cursors do."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _one(sql: str, params) -> tuple | None:
    with _cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone() if cursor.description else None


def _sequence(table: str) -> str:
    if table not in _sequences:
        _sequences[table] = _one("SELECT pg_get_serial_sequence(%s, 'id')", [table])[0]
    return _sequences[table]


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()  # full precision (DjangoJSONEncoder would cut to milliseconds)
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def row_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


# --- lock and load ------------------------------------------------------------

# The SQL functions called here live in usage/sql/ledger_functions.sql,
# installed by a migration. `usage_ledger_load` reads what a write decides
# on; `usage_ledger_lock` takes the account row lock and then calls it: each
# statement of a VOLATILE PL/pgSQL function takes a new snapshot under READ
# COMMITTED, so the load sees everything committed before the lock was
# granted, and lock + load cost one round trip. `usage_ledger_debit` is the
# strict debit in one statement.


def account_from(row: dict) -> CreditAccount:
    """An account row as usage_ledger_lock and usage_ledger_debit answer it (JSON)."""
    values = [row[c] for c in _ACCOUNT_COLUMNS]
    values[-1] = parse_datetime(values[-1])
    # Only the columns the ledger uses are loaded; the writer updates the row itself.
    return CreditAccount.from_db("default", _ACCOUNT_COLUMNS, values)


def lock_account(org_id: int) -> CreditAccount | None:
    row = _one(f"SELECT {_ACCOUNT_SELECT} FROM usage_creditaccount WHERE org_id = %s FOR UPDATE", [org_id])
    if row is None:
        return None
    return CreditAccount.from_db("default", _ACCOUNT_COLUMNS, row)


@dataclass
class Loaded:
    grants: list[Grant]
    entry_ids: list[int]
    event_ids: list[int]
    existing_entry: dict | None = None
    existing_events: dict[str, dict] = field(default_factory=dict)
    members: dict[int, dict] = field(default_factory=dict)  # member id -> {limit, spent, held}


def _grant(row: dict) -> Grant:
    values = [row[c] for c in _GRANT_COLUMNS]
    values[6] = parse_datetime(values[6]) if values[6] else None
    values[9] = parse_datetime(values[9])
    return Grant.from_db("default", _GRANT_COLUMNS, values)


def _load_args(now, entries, events, entry_key, event_keys, member_ids, month) -> list:
    return [entries, events, entry_key, list(event_keys or []), list(member_ids or []), month, now]


def _loaded(data: dict) -> Loaded:
    return Loaded(
        grants=[_grant(row) for row in data["grants"]],
        entry_ids=list(data["entry_ids"]),
        event_ids=list(data["event_ids"]),
        existing_entry=data["existing_entry"],
        existing_events={row["idempotency_key"]: row for row in data["existing_events"] or []},
        members={row["member_id"]: {"limit": int(row["limit"]), "spent": int(row["spent"]), "held": int(row["held"])}
                 for row in data["members"] or []},
    )


_LOAD_SQL = "SELECT usage_ledger_load(%s, %s::integer, %s::integer, %s::text, %s::text[], %s::bigint[], %s::date, %s)"
_LOCK_SQL = "SELECT usage_ledger_lock(%s, %s::integer, %s::integer, %s::text, %s::text[], %s::bigint[], %s::date, %s)"


def load(
    account: CreditAccount,
    *,
    now: datetime,
    entries: int = 0,
    events: int = 0,
    entry_key: str | None = None,
    event_keys: list[str] | None = None,
    member_ids: list[int] | None = None,
    month: date | None = None,
) -> Loaded:
    """Read, under the lock, what a write of `entries` entries and `events` usage
    events decides on. One statement, one row."""
    (data,) = _one(_LOAD_SQL, [account.pk, *_load_args(now, entries, events, entry_key, event_keys, member_ids, month)])
    return _loaded(data)


def lock_and_load(org_id: int, *, now: datetime, entries: int = 0, events: int = 0, entry_key: str | None = None,
                  event_keys: list[str] | None = None, member_ids: list[int] | None = None,
                  month: date | None = None) -> tuple[CreditAccount, Loaded] | None:
    """`lock_account` and `load` in one round trip (the hot path)."""
    (data,) = _one(_LOCK_SQL, [org_id, *_load_args(now, entries, events, entry_key, event_keys, member_ids, month)])
    if data is None:
        return None
    return account_from(data["account"]), _loaded(data["loaded"])


_DEBIT_SQL = ("SELECT usage_ledger_debit(%s, %s, %s::text, %s::bigint, %s::date, %s, %s::text, "
              "%s::jsonb, %s::jsonb, %s::jsonb)")


def debit(org_id: int, amount_micros: int, *, now: datetime, entry_key: str | None, member_id: int | None,
          month: date, plan_code: str | None, entry: dict, audit: dict | None, event: dict | None) -> dict:
    """Lock, decide and write a strict debit (and its usage event) in one statement;
    see `usage_ledger_debit`. Returns its JSON answer, `status` first."""
    (result,) = _one(_DEBIT_SQL, [
        org_id, amount_micros, entry_key, member_id, month, now, plan_code, row_dumps(entry),
        row_dumps(audit) if audit is not None else None, row_dumps(event) if event is not None else None,
    ])
    return result


def member_spend_lock(account_id: int, member_id: int, month: date) -> int:
    """Lock a member's spend row of `account_id` for `month` (creating it at zero) and
    return what it holds. Usage routed to a member's personal account counts on the
    organization's row without that organization's account lock: the row lock is
    what keeps its cap exact (usage.services.routing)."""
    (spent,) = _one(
        "INSERT INTO usage_memberspend (account_id, member_id, month, spent_micros) VALUES (%s, %s, %s, 0) "
        "ON CONFLICT (account_id, member_id, month) DO UPDATE SET spent_micros = usage_memberspend.spent_micros "
        "RETURNING spent_micros",
        [account_id, member_id, month],
    )
    return int(spent)


@dataclass
class KeyBudget:
    """An API key's monthly limit and what counts against it, read under the lock."""

    prefix: str
    limit_micros: int
    spent_micros: int  # this month (KeySpend)
    held_micros: int  # its open holds


_KEY_BUDGET_SQL = (
    f"SELECT k.monthly_limit_micros, "
    "  coalesce((SELECT s.spent_micros FROM usage_keyspend s WHERE s.account_id = %(account)s "
    "            AND s.api_key_prefix = k.prefix AND s.month = %(month)s), 0), "
    "  coalesce((SELECT sum(h.amount_micros - h.used_micros) FROM usage_hold h WHERE h.account_id = %(account)s "
    "            AND h.api_key_prefix = k.prefix AND h.status = 'open'), 0) "
    f"FROM {OrgAPIKey._meta.db_table} k WHERE k.prefix = %(prefix)s AND k.monthly_limit_micros IS NOT NULL"
)


def key_budget(account_id: int, prefix: str, month: date) -> KeyBudget | None:
    """The key's limit, month-to-date spend and open holds, or None when it has no
    limit (any more). One statement; call it under the account lock, which a
    change of the limit takes too."""
    row = _one(_KEY_BUDGET_SQL, {"account": account_id, "prefix": prefix, "month": month})
    if row is None:
        return None
    return KeyBudget(prefix, int(row[0]), int(row[1]), int(row[2]))


def key_spend_lock(account_id: int, prefix: str, month: date) -> int:
    """Lock an API key's spend row of `account_id` for `month` (creating it at zero)
    and return what it holds: usage routed to members' personal accounts counts on
    the organization's row without the organization's lock (usage.services.routing)."""
    (spent,) = _one(
        "INSERT INTO usage_keyspend (account_id, api_key_prefix, month, spent_micros) VALUES (%s, %s, %s, 0) "
        "ON CONFLICT (account_id, api_key_prefix, month) DO UPDATE SET spent_micros = usage_keyspend.spent_micros "
        "RETURNING spent_micros",
        [account_id, prefix, month],
    )
    return int(spent)


def reserve_entry_ids(count: int) -> list[int]:
    return list(_one("SELECT ARRAY(SELECT nextval(%s) FROM generate_series(1, %s))", [_sequence("usage_ledgerentry"), count])[0])


# --- the flush ----------------------------------------------------------------

_ENTRY_COLUMNS = [
    "id", "account_id", "kind", "amount_micros", "balance_after_micros", "grant_id", "member_id", "hold_id",
    "transfer_id", "staff_user_id", "stripe_object_id", "reason", "idempotency_key", "metadata", "created_at",
]
_ALLOCATION_COLUMNS = ["entry_id", "grant_id", "amount_micros"]
_EVENT_COLUMNS = [
    "id", "account_id", "member_id", "meter_id", "model", "quantity", "credits_per_unit", "credits_micros",
    "billing_mode", "provider_key_id", "workflow_run_id", "occurred_at", "created_at", "metadata", "idempotency_key",
    "request_fingerprint", "ledger_entry_id", "hold_id", "balance_after_micros", "api_key_prefix", "for_org_id",
    "spending_token_id",
]
# The audit trail's columns are the orgs app's (AuditEvent.insert_columns()).
_AUDIT_COLUMNS = AuditEvent.insert_columns()


def _insert(name: str, table: str, key: str, columns: list[str]) -> str:
    names = ", ".join(columns)
    picked = ", ".join(f"r.{c}" for c in columns)
    return (f"{name} AS (INSERT INTO {table} ({names}) SELECT {picked} "
            f"FROM d, jsonb_populate_recordset(NULL::{table}, d.j->'{key}') r)")


# One statement text for every write (empty lists insert nothing), so it is
# prepared once per connection. All rows arrive as one JSON parameter, parsed once (jsonb).
FLUSH_SQL = (
    "WITH d AS (SELECT %s::jsonb AS j), "
    + _insert("e", "usage_ledgerentry", "entries", _ENTRY_COLUMNS) + ", "
    + _insert("a", "usage_ledgerallocation", "allocations", _ALLOCATION_COLUMNS) + ", "
    + _insert("v", "usage_usageevent", "events", _EVENT_COLUMNS) + ", "
    + _insert("au", "orgs_auditevent", "audits", _AUDIT_COLUMNS) + ", "
    # `id = ANY(ARRAY(...))` keeps the grant update on the primary key index
    # (a join with the JSON rows would be planned as a scan of every grant).
    "g AS (UPDATE usage_grant SET remaining_micros = (r.value->>'remaining_micros')::bigint "
    "      FROM d, jsonb_array_elements(d.j->'grants') r "
    "      WHERE usage_grant.id = ANY(ARRAY(SELECT (x->>'id')::bigint FROM d, jsonb_array_elements(d.j->'grants') x)) "
    "        AND usage_grant.id = (r.value->>'id')::bigint), "
    "s AS (INSERT INTO usage_memberspend (account_id, member_id, month, spent_micros) "
    "      SELECT r.account_id, r.member_id, r.month, r.spent_micros "
    "      FROM d, jsonb_populate_recordset(NULL::usage_memberspend, d.j->'spend') r "
    "      ON CONFLICT (account_id, member_id, month) "
    "      DO UPDATE SET spent_micros = usage_memberspend.spent_micros + EXCLUDED.spent_micros), "
    "k AS (INSERT INTO usage_keyspend (account_id, api_key_prefix, month, spent_micros) "
    "      SELECT r.account_id, r.api_key_prefix, r.month, r.spent_micros "
    "      FROM d, jsonb_populate_recordset(NULL::usage_keyspend, d.j->'key_spend') r "
    "      ON CONFLICT (account_id, api_key_prefix, month) "
    "      DO UPDATE SET spent_micros = usage_keyspend.spent_micros + EXCLUDED.spent_micros) "
    "UPDATE usage_creditaccount SET balance_micros = (d.j->>'balance_micros')::bigint, "
    "  debt_micros = (d.j->>'debt_micros')::bigint, held_micros = (d.j->>'held_micros')::bigint, "
    "  updated_at = (d.j->>'updated_at')::timestamptz "
    "FROM d WHERE id = (d.j->>'account_id')::bigint"
)


def flush(
    *,
    account: CreditAccount,
    now: datetime,
    entries: list[dict],
    allocations: list[dict],
    grants: list[dict],
    events: list[str],
    audits: list[dict],
    spend: list[dict],
    key_spend: list[dict] | None = None,
) -> None:
    """Write everything one locked write decided, in one statement."""
    payload = {
        "events": "__EVENTS__",  # first, so the placeholder below is the first match
        "account_id": account.pk, "balance_micros": account.balance_micros, "debt_micros": account.debt_micros,
        "held_micros": account.held_micros, "updated_at": now, "entries": entries, "allocations": allocations,
        "grants": grants, "audits": audits, "spend": spend, "key_spend": key_spend or [],
    }
    # Usage events arrive as JSON rows already (rendered before the lock); splice them in.
    body = row_dumps(payload).replace('"__EVENTS__"', "[" + ",".join(events) + "]", 1)
    _one(FLUSH_SQL, [body])
