"""Money for people: integer minor units in, text out. Never float."""

from __future__ import annotations

from decimal import Decimal

ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "pyg", "ugx", "xaf", "xof"}
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def cents_to_decimal(cents: int, currency: str = "usd") -> Decimal:
    return Decimal(cents) if currency.lower() in ZERO_DECIMAL else Decimal(cents) / 100


def format_cents(cents: int, currency: str = "usd") -> str:
    """4999 -> "$49.99"; 9990 -> "$99.90"; 100000 -> "$1,000"."""
    amount = cents_to_decimal(cents, currency)
    places = 0 if currency.lower() in ZERO_DECIMAL or cents % 100 == 0 else 2
    text = f"{amount:,.{places}f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def decimal_str(cents: int, currency: str = "usd") -> str:
    """The API form: "49.99", exact."""
    return format(cents_to_decimal(cents, currency).quantize(Decimal(1) if currency.lower() in ZERO_DECIMAL else Decimal("0.01")), "f")
