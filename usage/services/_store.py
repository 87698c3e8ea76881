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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection
from django.utils.dateparse import parse_datetime

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

# Installed (CREATE OR REPLACE) after every `migrate` by usage.apps; see the
# module docstring. `usage_ledger_load` reads what a write decides on;
# `usage_ledger_lock` takes the account row lock and then calls it: each
# statement of a VOLATILE PL/pgSQL function takes a new snapshot under READ
# COMMITTED, so the load sees everything committed before the lock was
# granted, and lock + load cost one round trip.
FUNCTIONS_SQL = """
CREATE OR REPLACE FUNCTION usage_ledger_load(
    p_account bigint, p_entries integer, p_events integer, p_entry_key text, p_event_keys text[],
    p_member_ids bigint[], p_month date, p_now timestamptz
) RETURNS json LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    result json;
BEGIN
    SELECT json_build_object(
        'grants', (SELECT coalesce(json_agg(g ORDER BY g.expires_at ASC NULLS LAST, g.priority, g.created_at, g.id), '[]')
                   FROM (SELECT id, account_id, source, amount_micros, remaining_micros, frozen_micros, expires_at,
                                priority, reference, created_at
                         FROM usage_grant WHERE account_id = p_account AND remaining_micros > 0) g),
        -- expired grants still holding credits are written off by this write, one entry each
        'entry_ids', ARRAY(SELECT nextval(pg_get_serial_sequence('usage_ledgerentry', 'id'))
                           FROM generate_series(1, p_entries + (
                               SELECT count(*)::integer FROM usage_grant
                               WHERE account_id = p_account AND remaining_micros > 0 AND expires_at <= p_now))),
        'event_ids', ARRAY(SELECT nextval(pg_get_serial_sequence('usage_usageevent', 'id'))
                           FROM generate_series(1, p_events)),
        'existing_entry', (SELECT row_to_json(e) FROM (
                               SELECT id, kind, amount_micros, balance_after_micros FROM usage_ledgerentry
                               WHERE p_entry_key IS NOT NULL AND account_id = p_account
                                 AND idempotency_key = p_entry_key) e),
        'existing_events', (SELECT json_agg(v) FROM (
                               SELECT ev.id, ev.idempotency_key, ev.request_fingerprint FROM usage_usageevent ev
                               WHERE cardinality(p_event_keys) > 0 AND ev.account_id = p_account
                                 AND ev.idempotency_key = ANY(p_event_keys)) v),
        'members', (SELECT json_agg(m) FROM (
                        SELECT l.member_id, l.monthly_limit_micros AS "limit",
                          coalesce((SELECT s.spent_micros FROM usage_memberspend s WHERE s.account_id = l.account_id
                                    AND s.member_id = l.member_id AND s.month = p_month), 0) AS spent,
                          coalesce((SELECT sum(h.amount_micros) FROM usage_hold h WHERE h.account_id = l.account_id
                                    AND h.member_id = l.member_id AND h.status = 'open'), 0) AS held
                        FROM usage_memberspendlimit l
                        WHERE cardinality(p_member_ids) > 0 AND l.account_id = p_account
                          AND l.member_id = ANY(p_member_ids)) m)
    ) INTO result;
    RETURN result;
END
$fn$;

CREATE OR REPLACE FUNCTION usage_ledger_lock(
    p_org bigint, p_entries integer, p_events integer, p_entry_key text, p_event_keys text[],
    p_member_ids bigint[], p_month date, p_now timestamptz
) RETURNS json LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    account record;
BEGIN
    SELECT id, org_id, balance_micros, debt_micros, held_micros, plan_code, overage_allowed, auto_topup_threshold_micros,
           low_balance_threshold_micros, updated_at
    INTO account FROM usage_creditaccount WHERE org_id = p_org FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- a new statement, so a new snapshot: taken after the lock was granted
    RETURN json_build_object('account', row_to_json(account), 'loaded', usage_ledger_load(
        account.id, p_entries, p_events, p_entry_key, p_event_keys, p_member_ids, p_month, p_now));
END
$fn$;

-- The strict debit in one round trip: lock, decide and write inside the
-- database, so the account lock is held for one statement and COMMIT, as in a
-- hand-written transaction. It implements the common case only: whatever it
-- does not (a grant to write off, a plan other than the caller priced with)
-- answers 'fallback' with the lock held, and the Python writer takes over in
-- the same transaction. The burn order and the entry's fields are those of
-- usage.services.ledger._Writer; tests run both paths against each other.
CREATE OR REPLACE FUNCTION usage_ledger_debit(
    p_org bigint, p_amount bigint, p_entry_key text, p_member bigint, p_month date, p_now timestamptz,
    p_plan text, p_entry jsonb, p_audit jsonb, p_event jsonb
) RETURNS json LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a record;
    g record;
    v_found json;
    v_left bigint := p_amount;
    v_part bigint;
    v_grants bigint[] := '{}';
    v_entry_id bigint;
    v_event_id bigint;
    v_limit bigint;
    v_committed bigint;
    v_balance bigint;
BEGIN
    SELECT id, org_id, balance_micros, debt_micros, held_micros, plan_code, overage_allowed, auto_topup_threshold_micros,
           low_balance_threshold_micros, updated_at
    INTO a FROM usage_creditaccount WHERE org_id = p_org FOR UPDATE;
    IF NOT FOUND THEN
        RETURN json_build_object('status', 'no_account');
    END IF;
    -- Each statement from here on sees everything committed before the lock was granted.
    IF p_event IS NOT NULL THEN
        SELECT json_build_object('id', id, 'request_fingerprint', request_fingerprint) INTO v_found
        FROM usage_usageevent WHERE account_id = a.id AND idempotency_key = p_event->>'idempotency_key';
        IF v_found IS NOT NULL THEN
            RETURN json_build_object('status', 'existing_event', 'account', row_to_json(a), 'event', v_found);
        END IF;
    END IF;
    IF p_entry_key IS NOT NULL THEN
        SELECT row_to_json(e) INTO v_found FROM (
            SELECT id, kind, amount_micros, balance_after_micros FROM usage_ledgerentry
            WHERE account_id = a.id AND idempotency_key = p_entry_key) e;
        IF v_found IS NOT NULL THEN
            RETURN json_build_object('status', 'existing_entry', 'account', row_to_json(a), 'entry', v_found);
        END IF;
    END IF;
    IF (p_plan IS NOT NULL AND a.plan_code <> p_plan) OR EXISTS (
        SELECT 1 FROM usage_grant WHERE account_id = a.id AND remaining_micros > 0 AND expires_at <= p_now
    ) THEN
        RETURN json_build_object('status', 'fallback', 'account', row_to_json(a));
    END IF;
    v_balance := a.balance_micros;
    IF p_amount > 0 THEN
        IF p_member IS NOT NULL THEN
            SELECT monthly_limit_micros INTO v_limit FROM usage_memberspendlimit
            WHERE account_id = a.id AND member_id = p_member;
            IF FOUND THEN
                v_committed := coalesce((SELECT spent_micros FROM usage_memberspend WHERE account_id = a.id
                                         AND member_id = p_member AND month = p_month), 0)
                             + coalesce((SELECT sum(amount_micros) FROM usage_hold WHERE account_id = a.id
                                         AND member_id = p_member AND status = 'open'), 0);
                IF v_committed + p_amount > v_limit THEN
                    RETURN json_build_object('status', 'spend_limit_reached', 'limit', v_limit, 'spent', v_committed);
                END IF;
            END IF;
        END IF;
        IF NOT a.overage_allowed AND p_amount > a.balance_micros - a.held_micros THEN
            RETURN json_build_object('status', 'insufficient_credits', 'account', row_to_json(a));
        END IF;
        v_entry_id := nextval(pg_get_serial_sequence('usage_ledgerentry', 'id'));
        -- What expires first, then priority, then oldest (GrantQuerySet.burn_order).
        FOR g IN SELECT id, remaining_micros FROM usage_grant WHERE account_id = a.id AND remaining_micros > 0
                 ORDER BY expires_at ASC NULLS LAST, priority, created_at, id LOOP
            EXIT WHEN v_left = 0;
            v_part := least(g.remaining_micros, v_left);
            UPDATE usage_grant SET remaining_micros = remaining_micros - v_part WHERE id = g.id;
            INSERT INTO usage_ledgerallocation (entry_id, grant_id, amount_micros) VALUES (v_entry_id, g.id, -v_part);
            v_grants := v_grants || g.id;
            v_left := v_left - v_part;
        END LOOP;
        v_balance := a.balance_micros - p_amount;
        INSERT INTO usage_ledgerentry (id, account_id, kind, amount_micros, balance_after_micros, grant_id, member_id,
                                       stripe_object_id, reason, idempotency_key, metadata, created_at)
        VALUES (v_entry_id, a.id, p_entry->>'kind', -p_amount, v_balance,
                CASE WHEN cardinality(v_grants) = 1 THEN v_grants[1] END, p_member, '', p_entry->>'reason',
                p_entry_key, coalesce(p_entry->'metadata', '{}'::jsonb), p_now);
        -- What no grant covered is debt (overage plans only).
        UPDATE usage_creditaccount SET balance_micros = v_balance, debt_micros = debt_micros + v_left, updated_at = p_now
        WHERE id = a.id;
        IF p_member IS NOT NULL THEN
            INSERT INTO usage_memberspend (account_id, member_id, month, spent_micros) VALUES (a.id, p_member, p_month, p_amount)
            ON CONFLICT (account_id, member_id, month)
            DO UPDATE SET spent_micros = usage_memberspend.spent_micros + EXCLUDED.spent_micros;
        END IF;
    END IF;
    IF p_event IS NOT NULL THEN
        v_event_id := nextval(pg_get_serial_sequence('usage_usageevent', 'id'));
        INSERT INTO usage_usageevent (id, account_id, member_id, meter_id, model, quantity, credits_per_unit, credits_micros,
            billing_mode, provider_key_id, workflow_run_id, occurred_at, created_at, metadata, idempotency_key,
            request_fingerprint, ledger_entry_id, hold_id, balance_after_micros)
        SELECT v_event_id, a.id, r.member_id, r.meter_id, r.model, r.quantity, r.credits_per_unit, p_amount,
            r.billing_mode, r.provider_key_id, r.workflow_run_id, coalesce(r.occurred_at, p_now), p_now,
            coalesce(p_event->'metadata', '{}'::jsonb), r.idempotency_key, r.request_fingerprint, v_entry_id, NULL, v_balance
        FROM jsonb_populate_record(NULL::usage_usageevent, p_event) r;
    END IF;
    IF p_audit IS NOT NULL THEN
        INSERT INTO orgs_auditevent (org_id, action, actor_user_id, actor_api_key, actor_label, source, request_id, ip,
                                     data, created_at)
        SELECT a.org_id, r.action, r.actor_user_id, r.actor_api_key, r.actor_label, r.source, r.request_id, r.ip,
            (p_audit->'data') || jsonb_strip_nulls(jsonb_build_object(
                'entry', v_entry_id, 'event', v_event_id,
                'balance_after', trim_scale(v_balance::numeric / 1000000)::text)),
            p_now
        FROM jsonb_populate_record(NULL::orgs_auditevent, p_audit) r;
    END IF;
    RETURN json_build_object('status', 'ok', 'entry_id', v_entry_id, 'event_id', v_event_id, 'balance_after', v_balance,
                             'debt_added', v_left, 'grant_id', CASE WHEN cardinality(v_grants) = 1 THEN v_grants[1] END,
                             'account', row_to_json(a));
END
$fn$;
"""


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
    "request_fingerprint", "ledger_entry_id", "hold_id", "balance_after_micros",
]
_AUDIT_COLUMNS = [
    "org_id", "action", "actor_user_id", "actor_api_key", "actor_label", "source", "request_id", "ip", "data", "created_at",
]


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
    "      DO UPDATE SET spent_micros = usage_memberspend.spent_micros + EXCLUDED.spent_micros) "
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
) -> None:
    """Write everything one locked write decided, in one statement."""
    payload = {
        "events": "__EVENTS__",  # first, so the placeholder below is the first match
        "account_id": account.pk, "balance_micros": account.balance_micros, "debt_micros": account.debt_micros,
        "held_micros": account.held_micros, "updated_at": now, "entries": entries, "allocations": allocations,
        "grants": grants, "audits": audits, "spend": spend,
    }
    # Usage events arrive as JSON rows already (rendered before the lock); splice them in.
    body = row_dumps(payload).replace('"__EVENTS__"', "[" + ",".join(events) + "]", 1)
    _one(FLUSH_SQL, [body])
