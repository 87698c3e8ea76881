import pytest

from usage.services import credits, rates


@pytest.fixture(autouse=True)
def rate_card(db):
    """The default rate card, as the data migration loads it (the suite skips migrations)."""
    rates.clear_cache()
    rates.load_card_data(rates.read_data_file())
    yield rates.current_card()
    rates.clear_cache()


@pytest.fixture(params=["in_database", "python_writer"])
def debit_path(request, monkeypatch):
    """Run a test through both implementations of the strict debit: the one
    statement in PostgreSQL (usage_ledger_debit) and the Python writer."""
    monkeypatch.setattr(credits, "SERVER_DEBIT", request.param == "in_database")
    return request.param
