"""SQL that lives in the database: the ledger's functions (ledger_functions.sql)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def ledger_functions() -> str:
    """The text of ledger_functions.sql: CREATE OR REPLACE of every ledger function."""
    return (_HERE / "ledger_functions.sql").read_text()
