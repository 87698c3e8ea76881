"""Billing's writes, one function per state change (see each module's notes).

    catalog   load the data file, push it to Stripe
    state     the per-org lock, the Stripe customer link, notices
    plans     the trial, Free, and the period allowances every plan brings
    subscriptions  subscriptions as Stripe described them, invoices, grace, the demo's simulation
    checkout  Checkout and portal sessions, plan changes
    fulfilment  a paid checkout becomes credits or a plan; the demo's simulated payment
    promotions  promotion codes' labels, staff grants of promotional credits
    refunds   refunds claw back, disputes freeze
    topup     auto top-up settings and off-session charges
    alerts    low / empty balance and allowance e-mails, alert preferences
    overage   usage past zero reported to the Stripe meter
    setup     the Stripe key and webhook endpoint
    reconciliation  what Stripe was paid against what the ledger granted, clawed back and settled
    staff     staff actions from the customer page: extend a trial, resend an invoice link
"""

from billing.services.alerts import (
    alert_preference_for,
    alert_preference_set,
    alert_threshold_set,
    alerts_check,
    alerts_sweep,
)
from billing.services.catalog import catalog_load, catalog_sync, plan_features_write_down
from billing.services.checkout import (
    checkout_start,
    custom_amount_limits,
    custom_amount_price,
    plan_cancel_start,
    plan_change_start,
    portal_start,
)
from billing.services.fulfilment import (
    checkout_session_closed,
    checkout_session_paid,
    checkout_simulate_pay,
    credits_fulfil,
    pack_fulfil,
)
from billing.services.overage import overage_report, overage_report_all
from billing.services.plans import (
    billing_state_for,
    free_periods_renew,
    free_start_for_new_org,
    trial_start,
    trial_start_for_signup,
    trials_end,
)
from billing.services.promotions import promo_credits_grant, promotion_label
from billing.services.refunds import charge_refunded, dispute_closed, dispute_opened, purchase_refund
from billing.services.reminders import Reminder, reminder_send, reminders_due, reminders_send
from billing.services.setup import stripe_setup
from billing.services.staff import invoice_link_resend, trial_extend
from billing.services.state import customer_for_org
from billing.services.reconciliation import stripe_reconcile
from billing.services.subscriptions import (
    grace_periods_end,
    invoice_paid,
    invoice_payment_failed,
    plan_simulate_cancel,
    plan_simulate_subscribe,
    subscription_refresh,
)
from billing.services.topup import (
    auto_topup_check,
    auto_topup_configure,
    auto_topup_retry_due,
    topup_charge,
    topup_intent_update,
)

__all__ = [
    "Reminder", "reminder_send", "reminders_due", "reminders_send",
    "alert_preference_for", "alert_preference_set", "alert_threshold_set", "alerts_check", "alerts_sweep",
    "auto_topup_check", "auto_topup_configure", "auto_topup_retry_due", "billing_state_for", "catalog_load",
    "catalog_sync", "plan_features_write_down", "charge_refunded", "checkout_session_closed", "checkout_session_paid", "checkout_simulate_pay",
    "checkout_start", "credits_fulfil", "custom_amount_limits", "custom_amount_price", "customer_for_org", "dispute_closed", "dispute_opened", "free_periods_renew", "free_start_for_new_org",
    "grace_periods_end", "invoice_paid", "invoice_payment_failed", "overage_report", "overage_report_all",
    "pack_fulfil", "promo_credits_grant", "promotion_label", "plan_cancel_start", "plan_change_start", "plan_simulate_cancel", "plan_simulate_subscribe", "purchase_refund", "portal_start", "stripe_setup",
    "stripe_reconcile", "subscription_refresh", "topup_charge", "topup_intent_update", "trial_start", "trial_start_for_signup", "trials_end",
    "invoice_link_resend", "trial_extend",
]
