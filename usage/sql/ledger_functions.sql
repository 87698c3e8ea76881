-- The ledger's functions in PostgreSQL: lock-and-load and the strict debit
-- in one round trip (see usage/services/store.py for why each exists).
--
-- Installed by the migration usage/migrations/0009_ledger_functions.py and,
-- for a test database built without migrations, by tests/conftest.py. Every
-- statement is CREATE OR REPLACE: a change to a function edits this file and
-- adds a migration that runs it again (usage.sql.ledger_functions()).
--
-- Usage events and holds with a `for_org_id` were recorded on a member's personal
-- account for another organization (usage.services.routing, in Python): the
-- account's own idempotency keys and its own caps' holds leave them out.
--
-- An open hold reserves amount_micros - used_micros: usage recorded against
-- it (usage.services.events) spends its reservation as it goes. Every sum of
-- open holds here counts that, like usage.models.HoldQuerySet.reserved_sum.

-- The burn order, written once for SQL: what expires first, then priority,
-- then the oldest. Its Python twin is usage.models.GrantQuerySet.burn_order;
-- tests/usage/test_burn_order.py proves the two agree. Callers read it WITH
-- ORDINALITY, which numbers the rows in the order the function returns them.
CREATE OR REPLACE FUNCTION usage_grants_to_burn(p_account bigint)
RETURNS SETOF usage_grant LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN QUERY SELECT * FROM usage_grant WHERE account_id = p_account AND remaining_micros > 0
                 ORDER BY expires_at ASC NULLS LAST, priority, created_at, id;
END
$fn$;
CREATE OR REPLACE FUNCTION usage_ledger_load(
    p_account bigint, p_entries integer, p_events integer, p_entry_key text, p_event_keys text[],
    p_member_ids bigint[], p_month date, p_now timestamptz
) RETURNS json LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    result json;
BEGIN
    SELECT json_build_object(
        'grants', (SELECT coalesce(json_agg(json_build_object(
                           'id', g.id, 'account_id', g.account_id, 'source', g.source, 'amount_micros', g.amount_micros,
                           'remaining_micros', g.remaining_micros, 'frozen_micros', g.frozen_micros,
                           'expires_at', g.expires_at, 'priority', g.priority, 'reference', g.reference,
                           'created_at', g.created_at) ORDER BY g.ordinality), '[]')
                   FROM usage_grants_to_burn(p_account) WITH ORDINALITY AS g),
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
                                 AND ev.idempotency_key = ANY(p_event_keys) AND ev.for_org_id IS NULL) v),
        'members', (SELECT json_agg(m) FROM (
                        SELECT l.member_id, l.monthly_limit_micros AS "limit",
                          coalesce((SELECT s.spent_micros FROM usage_memberspend s WHERE s.account_id = l.account_id
                                    AND s.member_id = l.member_id AND s.month = p_month), 0) AS spent,
                          coalesce((SELECT sum(h.amount_micros - h.used_micros) FROM usage_hold h
                                    WHERE h.account_id = l.account_id
                                    AND h.member_id = l.member_id AND h.status = 'open'
                                    AND h.for_org_id IS NULL), 0) AS held
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
-- usage.services.writer.Writer; tests run both paths against each other.
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
        FROM usage_usageevent WHERE account_id = a.id AND idempotency_key = p_event->>'idempotency_key'
          AND for_org_id IS NULL;
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
                             + coalesce((SELECT sum(amount_micros - used_micros) FROM usage_hold WHERE account_id = a.id
                                         AND member_id = p_member AND status = 'open' AND for_org_id IS NULL), 0);
                IF v_committed + p_amount > v_limit THEN
                    RETURN json_build_object('status', 'spend_limit_reached', 'limit', v_limit, 'spent', v_committed);
                END IF;
            END IF;
        END IF;
        IF NOT a.overage_allowed AND p_amount > a.balance_micros - a.held_micros THEN
            RETURN json_build_object('status', 'insufficient_credits', 'account', row_to_json(a));
        END IF;
        v_entry_id := nextval(pg_get_serial_sequence('usage_ledgerentry', 'id'));
        FOR g IN SELECT b.id, b.remaining_micros FROM usage_grants_to_burn(a.id) WITH ORDINALITY AS b
                 ORDER BY b.ordinality LOOP
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
            request_fingerprint, ledger_entry_id, hold_id, balance_after_micros, api_key_prefix)
        SELECT v_event_id, a.id, r.member_id, r.meter_id, r.model, r.quantity, r.credits_per_unit, p_amount,
            r.billing_mode, r.provider_key_id, r.workflow_run_id, coalesce(r.occurred_at, p_now), p_now,
            coalesce(p_event->'metadata', '{}'::jsonb), r.idempotency_key, r.request_fingerprint, v_entry_id, NULL, v_balance,
            r.api_key_prefix
        FROM jsonb_populate_record(NULL::usage_usageevent, p_event) r;
    END IF;
    IF p_audit IS NOT NULL THEN
        -- No column list: the row takes the shape of orgs_auditevent itself (the
        -- orgs app's one definition); p_audit carries every column but these.
        INSERT INTO orgs_auditevent
        SELECT r.* FROM jsonb_populate_record(NULL::orgs_auditevent, p_audit || jsonb_build_object(
            'id', nextval(pg_get_serial_sequence('orgs_auditevent', 'id')),
            'org_id', a.org_id,
            'created_at', p_now,
            'data', (p_audit->'data') || jsonb_strip_nulls(jsonb_build_object(
                'entry', v_entry_id, 'event', v_event_id,
                'balance_after', trim_scale(v_balance::numeric / 1000000)::text)))) r;
    END IF;
    RETURN json_build_object('status', 'ok', 'entry_id', v_entry_id, 'event_id', v_event_id, 'balance_after', v_balance,
                             'debt_added', v_left, 'grant_id', CASE WHEN cardinality(v_grants) = 1 THEN v_grants[1] END,
                             'account', row_to_json(a));
END
$fn$;
