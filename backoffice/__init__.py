"""The staff back office: business figures, one page per customer,
reconciliation with Stripe. Reads every app below it; writes only through
their services."""
