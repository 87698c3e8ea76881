"""Test settings: the real ones, with the outside world made local and fast."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from billing_project.settings import *  # noqa: F401,F403

# Tests build their schema without running migrations (dj-stripe's take a
# minute of CPU); pgtrigger then installs the append-only triggers on
# post_migrate. `makemigrations --check` in bin/test keeps models and
# migrations in step, and bin/test applies the real migrations once too.
PGTRIGGER_INSTALL_ON_MIGRATE = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SITE_URL = "http://testserver"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "1000/min"}}  # noqa: F405
# Tests edit keys and organizations and call the API in the same second: each
# call reads the key's row. tests/accounts/test_api_key_cache.py turns the
# per-process cache on and proves its one-second window.
API_KEY_CACHE_SECONDS = 0
STRIPE_SECRET_KEY = ""
# Billing: no Stripe keys and no simulated payments unless a test turns them on;
# the rest pinned to the defaults the tests assume, whatever the environment says.
BILLING_SIMULATED_PAYMENTS = False
STRIPE_WEBHOOK_SECRET = ""
STRIPE_PORTAL_CONFIGURATION = ""
STRIPE_ALLOW_PROMOTION_CODES = True
BILLING_SIGNUP_TRIAL_PLAN = "starter"
BILLING_GRACE_DAYS = 7
BILLING_OVERAGE_METER_EVENT = "tollgate_overage_credits"
BILLING_TAX_AUTO_TOPUP = True
# Outbound webhooks: the tests' receivers listen on loopback over plain http.
OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
OUTBOUND_WEBHOOKS_TIMEOUT_SECONDS = 2.0
# Metrics: each test run counts into its own directory, removed when it ends.
METRICS_DIR = Path(tempfile.mkdtemp(prefix="tollgate-test-metrics-"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR / "web")
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
atexit.register(shutil.rmtree, METRICS_DIR, ignore_errors=True)
METRICS_TOKEN = ""
