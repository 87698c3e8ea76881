# Stripe's fake and signed deliveries, as the billing tests use them.
from tests.billing.conftest import catalog, fake_stripe, rate_card, stripe_account, stripe_keys, webhooks  # noqa: F401
# A real HTTP receiver on loopback, as the outbound tests use it.
from tests.outbound.conftest import receiver  # noqa: F401,E402
