from usage import services
from usage.models import GrantSource

C = 1_000_000  # one credit in micros


def grant(org, credits, source=GrantSource.PURCHASE, **kw):
    return services.credits_grant(org=org, amount_micros=int(credits * C), source=source, **kw)


def spend(org, credits, key, **kw):
    return services.credits_debit(org=org, amount_micros=int(credits * C), idempotency_key=key, **kw)
