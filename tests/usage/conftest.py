import pytest

from usage.services import rates


@pytest.fixture(autouse=True)
def rate_card(db):
    """The default rate card, as the data migration loads it (the suite skips migrations)."""
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield rates.current_card()
    rates.clear_cache()
