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

Foreign keys are DEFERRABLE INITIALLY DEFERRED (Django's default on
PostgreSQL), so rows inserted by one statement may reference each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils.dateparse import parse_datetime

from usage.models import CreditAccount, Grant

_ACCOUNT_COLUMNS = ["id", "org_id", "balance_micros", "debt_micros", "held_micros", "plan_code", "overage_allowed", "updated_at"]
_ACCOUNT_SELECT = ", ".join(_ACCOUNT_COLUMNS)
_GRANT_COLUMNS = [
    "id", "account_id", "source", "amount_micros", "remaining_micros", "frozen_micros", "expires_at", "priority",
    "reference", "created_at",
]
_sequences: dict[str, str] = {}


def dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"))


def _sequence(table: str) -> str:
    if table not in _sequences:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            _sequences[table] = cursor.fetchone()[0]
    return _sequences[table]


def lock_account(org_id: int) -> CreditAccount | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_ACCOUNT_SELECT} FROM usage_creditaccount WHERE org_id = %s FOR UPDATE", [org_id])
        row = cursor.fetchone()
    if row is None:
        return None
    # Only the columns the ledger uses are loaded; `save()` on this instance is
    # never called (the writer updates the row), so deferred fields stay unread.
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
    parts = [
        """(SELECT coalesce(json_agg(g ORDER BY g.expires_at ASC NULLS LAST, g.priority, g.created_at, g.id), '[]')
            FROM (SELECT id, account_id, source, amount_micros, remaining_micros, frozen_micros, expires_at,
                         priority, reference, created_at
                  FROM usage_grant WHERE account_id = %(account)s AND remaining_micros > 0) g)""",
        # Expired grants still holding credits are written off by this write,
        # one entry each: draw ids for them too.
        """ARRAY(SELECT nextval(%(entry_seq)s) FROM generate_series(1, %(entries)s + (
              SELECT count(*) FROM usage_grant
              WHERE account_id = %(account)s AND remaining_micros > 0 AND expires_at <= %(now)s)))""",
    ]
    params: dict[str, Any] = {
        "account": account.pk, "entry_seq": _sequence("usage_ledgerentry"), "entries": entries, "now": now,
    }
    if events:
        parts.append("ARRAY(SELECT nextval(%(event_seq)s) FROM generate_series(1, %(events)s))")
        params.update(event_seq=_sequence("usage_usageevent"), events=events)
    else:
        parts.append("NULL")
    if entry_key:
        parts.append(
            """(SELECT row_to_json(e) FROM (SELECT id, kind, amount_micros, balance_after_micros FROM usage_ledgerentry
                WHERE account_id = %(account)s AND idempotency_key = %(entry_key)s) e)"""
        )
        params["entry_key"] = entry_key
    else:
        parts.append("NULL")
    if event_keys:
        parts.append(
            """(SELECT json_agg(v) FROM (SELECT ev.id, ev.idempotency_key, ev.request_fingerprint,
                       le.balance_after_micros
                FROM usage_usageevent ev LEFT JOIN usage_ledgerentry le ON le.id = ev.ledger_entry_id
                WHERE ev.account_id = %(account)s AND ev.idempotency_key = ANY(%(event_keys)s)) v)"""
        )
        params["event_keys"] = list(event_keys)
    else:
        parts.append("NULL")
    if member_ids:
        parts.append(
            """(SELECT json_agg(m) FROM (
                 SELECT l.member_id, l.monthly_limit_micros AS "limit",
                   coalesce((SELECT s.spent_micros FROM usage_memberspend s WHERE s.account_id = l.account_id
                             AND s.member_id = l.member_id AND s.month = %(month)s), 0) AS spent,
                   coalesce((SELECT sum(h.amount_micros) FROM usage_hold h WHERE h.account_id = l.account_id
                             AND h.member_id = l.member_id AND h.status = 'open'), 0) AS held
                 FROM usage_memberspendlimit l
                 WHERE l.account_id = %(account)s AND l.member_id = ANY(%(members)s)) m)"""
        )
        params.update(month=month, members=list(member_ids))
    else:
        parts.append("NULL")
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        grants_json, entry_ids, event_ids, existing_entry, existing_events, members = cursor.fetchone()
    return Loaded(
        grants=[_grant(row) for row in grants_json],
        entry_ids=list(entry_ids),
        event_ids=list(event_ids or []),
        existing_entry=existing_entry,
        existing_events={row["idempotency_key"]: row for row in existing_events or []},
        members={row["member_id"]: {"limit": int(row["limit"]), "spent": int(row["spent"]), "held": int(row["held"])}
                 for row in members or []},
    )


def reserve_entry_ids(count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ARRAY(SELECT nextval(%s) FROM generate_series(1, %s))", [_sequence("usage_ledgerentry"), count]
        )
        return list(cursor.fetchone()[0])


# --- the flush ----------------------------------------------------------------

_ENTRY_COLUMNS = [
    ("id", "bigint"), ("account_id", "bigint"), ("kind", "varchar"), ("amount_micros", "bigint"),
    ("balance_after_micros", "bigint"), ("grant_id", "bigint"), ("member_id", "bigint"), ("hold_id", "bigint"),
    ("transfer_id", "bigint"), ("staff_user_id", "bigint"), ("stripe_object_id", "varchar"), ("reason", "varchar"),
    ("idempotency_key", "varchar"), ("metadata", "jsonb"), ("created_at", "timestamptz"),
]
_ALLOCATION_COLUMNS = [("entry_id", "bigint"), ("grant_id", "bigint"), ("amount_micros", "bigint")]
_EVENT_COLUMNS = [
    ("id", "bigint"), ("account_id", "bigint"), ("member_id", "bigint"), ("meter_id", "bigint"), ("model", "varchar"),
    ("quantity", "numeric"), ("credits_per_unit", "numeric"), ("credits_micros", "bigint"),
    ("billing_mode", "varchar"), ("provider_key_id", "bigint"), ("workflow_run_id", "varchar"),
    ("occurred_at", "timestamptz"), ("created_at", "timestamptz"), ("metadata", "jsonb"),
    ("idempotency_key", "varchar"), ("request_fingerprint", "varchar"), ("ledger_entry_id", "bigint"),
    ("hold_id", "bigint"), ("balance_after_micros", "bigint"),
]
_AUDIT_COLUMNS = [
    ("org_id", "bigint"), ("action", "varchar"), ("actor_user_id", "bigint"), ("actor_api_key", "varchar"),
    ("actor_label", "varchar"), ("source", "varchar"), ("request_id", "varchar"), ("ip", "inet"),
    ("data", "jsonb"), ("created_at", "timestamptz"),
]


def _insert(name: str, table: str, columns: list[tuple[str, str]], rows: list[tuple], params: list) -> str:
    names = ", ".join(c for c, _t in columns)
    arrays = ", ".join(f"%s::{t}[]" for _c, t in columns)
    params.extend(list(col) for col in zip(*rows))
    return f"{name} AS (INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}))"


def flush(
    *,
    account: CreditAccount,
    account_fields: dict[str, Any],
    entries: list[tuple],
    allocations: list[tuple],
    grants: list[tuple[int, int]],
    events: list[tuple],
    audits: list[tuple],
    spend: list[tuple[int, date, int]],
) -> None:
    """Write everything one locked write decided, in one statement."""
    ctes: list[str] = []
    params: list = []
    if entries:
        ctes.append(_insert("e", "usage_ledgerentry", _ENTRY_COLUMNS, entries, params))
    if allocations:
        ctes.append(_insert("a", "usage_ledgerallocation", _ALLOCATION_COLUMNS, allocations, params))
    if events:
        ctes.append(_insert("v", "usage_usageevent", _EVENT_COLUMNS, events, params))
    if audits:
        ctes.append(_insert("au", "orgs_auditevent", _AUDIT_COLUMNS, audits, params))
    if grants:
        ctes.append(
            "g AS (UPDATE usage_grant SET remaining_micros = t.remaining FROM unnest(%s::bigint[], %s::bigint[])"
            " AS t(id, remaining) WHERE usage_grant.id = t.id)"
        )
        params.extend([[g[0] for g in grants], [g[1] for g in grants]])
    if spend:
        ctes.append(
            "s AS (INSERT INTO usage_memberspend (account_id, member_id, month, spent_micros)"
            " SELECT %s, * FROM unnest(%s::bigint[], %s::date[], %s::bigint[])"
            " ON CONFLICT (account_id, member_id, month)"
            " DO UPDATE SET spent_micros = usage_memberspend.spent_micros + EXCLUDED.spent_micros)"
        )
        params.extend([account.pk, [s[0] for s in spend], [s[1] for s in spend], [s[2] for s in spend]])
    sets = ", ".join(f"{column} = %s" for column in account_fields)
    params.extend(account_fields.values())
    params.append(account.pk)
    sql = (("WITH " + ", ".join(ctes) + " ") if ctes else "") + f"UPDATE usage_creditaccount SET {sets} WHERE id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
