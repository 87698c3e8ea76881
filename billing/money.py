"""Credits shown as money, for people. The one place a credit gets a price on the pages.

Credits are sold at `CREDIT_PRICE` (default $0.01, read through
usage.units.credit_price) in `CURRENCY`. Amounts are
Decimals, rounded once, half up, to the cent; nothing here uses float. Packs
and plans carry their own prices in the catalog; this is only the list price
of one credit, used to show "worth $12.34" beside a balance.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from usage import units

_CENT = Decimal("0.01")
# The most one amount of money typed on a page or sent to a service may be
# (in minor units): $10,000,000, within the PositiveIntegerField it is kept in.
MAX_MONEY_CENTS = 1_000_000_000
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def credit_price() -> Decimal:
    return units.credit_price()


def currency() -> str:
    return settings.CURRENCY.upper()


def credits_value(micros: int) -> Decimal:
    """What `micros` credits are worth at list price, to the cent (half up)."""
    return units.credits_value(micros)


def credits_price_cents(micros: int) -> int:
    """What `micros` credits cost at list price, in whole minor units (cents), half up."""
    return int(credits_value(micros) * 100)


def format_money(amount: Decimal | int, *, minor_units: bool = False, currency_code: str | None = None) -> str:
    """`Decimal("1234.5")` -> "$1,234.50"; with `minor_units`, 123450 -> "$1,234.50".
    Negative amounts read "-$3.00"; currencies without a symbol read "CHF 3.00"."""
    if isinstance(amount, float):
        raise TypeError("Money is never a float.")
    value = Decimal(amount) / 100 if minor_units else Decimal(amount)
    value = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    code = (currency_code or currency()).upper()
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.2f}"
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{code} {digits}"


def minor_units_str(cents: int) -> str:
    """The API form of an amount in minor units: 4999 -> "49.99", exact."""
    return format((Decimal(cents) / 100).quantize(_CENT), "f")
