"""Back office fixtures: the catalog and the rate card (the suite skips data migrations)."""

import pytest

from billing import services as billing_services
from usage.services import rates


@pytest.fixture
def catalog(db):
    billing_services.catalog_load()


@pytest.fixture
def rate_card(db):
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield rates.current_card()
    rates.clear_cache()
