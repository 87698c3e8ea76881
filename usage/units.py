"""Credits as exact integers, and the one place amounts are converted or rounded.

The ledger counts in **micro-credits**: 1 credit = 1,000,000 micros, stored in
BigIntegerFields named `*_micros`. Prices per unit (a token can cost 0.000025
credits) are Decimals in the catalog; a charge is quantity x price, computed
exactly in Decimal and rounded once, half up, to a whole micro-credit. Nothing
here or anywhere else in Tollgate uses float.

On the API, credit amounts are decimal strings ("2.5", "1250", "0.000025"),
so no client's JSON parser can round them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

MICROS_PER_CREDIT = 1_000_000
_MICRO = Decimal("0.000001")
# The largest amount any one input may name: far beyond any real purchase or
# usage, and its micros (10^18) still fit the ledger's 64-bit columns.
MAX_CREDITS = Decimal(10**12)


class AmountError(ValueError):
    """An amount that is not an exact, finite number of micro-credits."""


def to_decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float):
        raise AmountError("Amounts must be exact: pass a string, int or Decimal, not a float.")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise AmountError(f"“{value}” is not a number.") from None
    if not number.is_finite():
        raise AmountError(f"“{value}” is not a finite number.")
    return number


def credits_to_micros(value: Decimal | int | str) -> int:
    """Exact conversion; refuses anything finer than a micro-credit rather than rounding it away."""
    number = to_decimal(value)
    if number.copy_abs() > MAX_CREDITS:  # before any arithmetic: 1e999999 would overflow, 1e99999 take seconds
        raise AmountError(f"{value} is more than the largest amount, {MAX_CREDITS:,} credits.")
    micros = number * MICROS_PER_CREDIT
    if micros != micros.to_integral_value():
        raise AmountError(f"{value} has more than 6 decimal places; the smallest amount is 0.000001 credits.")
    return int(micros)


def credit_price() -> Decimal:
    """The list price of one credit in the deployment's currency: `CREDIT_PRICE`
    (default 0.01), the one place it is read. The rate card turns provider
    prices into credits with it, estimates and the pages show money with it,
    and custom top-ups are charged at it (packs carry their own, usually
    lower, prices in the catalog)."""
    price = to_decimal(settings.CREDIT_PRICE)
    if price <= 0:
        raise AmountError("CREDIT_PRICE must be greater than zero.")
    return price


def credits_value(micros: int) -> Decimal:
    """What `micros` credits are worth at the list price (`credit_price`), to
    the cent, half up: the money shown beside credits on pages, receipts and
    tools (billing.money.credits_value is this)."""
    exact = Decimal(micros) * credit_price() / MICROS_PER_CREDIT
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def micros_to_credits(micros: int) -> Decimal:
    """Exact, normalized: 2_500_000 -> Decimal('2.5'), 1_000_000_000 -> Decimal('1000')."""
    value = (Decimal(micros) / MICROS_PER_CREDIT).quantize(_MICRO)
    normalized = value.normalize()
    # normalize() turns 1000 into 1E+3; keep plain notation.
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized


def credits_str(micros: int) -> str:
    """The API form of an amount: a plain decimal string ("2.5", "-1000", "0.000025").

    Integer arithmetic only: it renders every amount of every API answer."""
    whole, fraction = divmod(abs(micros), MICROS_PER_CREDIT)
    sign = "-" if micros < 0 else ""
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:06d}".rstrip("0")


def charge_micros(quantity: Decimal | int | str, credits_per_unit: Decimal | int | str) -> int:
    """What `quantity` units cost at `credits_per_unit`, rounded half up to a micro-credit.

    Rounding happens here only, once per charge, never on intermediate sums.
    """
    exact = to_decimal(quantity) * to_decimal(credits_per_unit) * MICROS_PER_CREDIT
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_credits(micros: int, places: int = 2) -> str:
    """For people: thousands separators, at most `places` decimals, exact (half up).

    12_345_678_900 -> "12,345.68"; 2_500_000 -> "2.5"; 1_000_000 -> "1".
    """
    value = (Decimal(micros) / MICROS_PER_CREDIT).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{value:,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
