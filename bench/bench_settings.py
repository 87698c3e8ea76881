"""The production settings plus one bench-only URL: the bare DRF baseline."""

from billing_project.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench_urls"
