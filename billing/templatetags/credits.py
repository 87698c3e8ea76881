"""Template filters for credits (stored as micro-credits) and money.

    {% load credits %}
    {{ account.balance_micros|credits }}        12,345.68
    {{ entry.amount_micros|credits_signed }}     +250 / −12.5
    {{ line.credits_micros|credits_precise }}    0.0035 (every digit, with separators)
    {{ account.balance_micros|credits_money }}  $123.46
    {{ pack.price_cents|money }}                $9.00

Formatting lives in usage.units (credits) and billing.money (money); these
filters only expose it to templates.
"""

from __future__ import annotations

from django import template

from billing import money
from usage.units import MICROS_PER_CREDIT, credits_str, format_credits

register = template.Library()

# U+2212, the typographic minus: lines up with "+" and reads clearly.
MINUS = "\u2212"


def _micros(value) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Credit amounts are integers of micro-credits, not {type(value).__name__}.")
    return value


@register.filter
def credits(micros: int | None) -> str:
    """Thousands separators, at most two decimals (half up): 12_345_678_900 -> "12,345.68"."""
    micros = _micros(micros)
    if micros is None:
        return ""
    text = format_credits(abs(micros))
    return f"{MINUS}{text}" if micros < 0 else text


@register.filter
def credits_precise(micros: int | None) -> str:
    """Like `credits`, to the micro-credit: an itemised receipt's small charges
    (0.0035 credits of tokens) must not read as 0. 12_345_678_900 -> "12,345.6789"."""
    micros = _micros(micros)
    if micros is None:
        return ""
    text = format_credits(abs(micros), places=6)
    return f"{MINUS}{text}" if micros < 0 else text


@register.filter
def credits_signed(micros: int | None) -> str:
    """Like `credits`, with the sign always shown: "+250", "−12.5"."""
    micros = _micros(micros)
    if micros is None:
        return ""
    return ("+" if micros > 0 else "") + credits(micros)


@register.filter
def credits_label(micros: int | None) -> str:
    """An amount with its unit: "1 credit", "2.5 credits"."""
    micros = _micros(micros)
    if micros is None:
        return ""
    return f"{credits(micros)} credit{'' if abs(micros) == MICROS_PER_CREDIT else 's'}"


@register.filter
def grouped(number: int | None) -> str:
    """A whole number with thousands separators: 1234567 -> "1,234,567"."""
    if number is None or number == "":
        return ""
    return f"{int(number):,}".replace("-", MINUS)


@register.filter
def credits_exact(micros: int | None) -> str:
    """Every digit, no grouping: the form an amount is typed back in ("2.000001")."""
    micros = _micros(micros)
    return "" if micros is None else credits_str(micros)


@register.filter
def credits_money(micros: int | None) -> str:
    """What the credits are worth at list price: "$123.46"."""
    micros = _micros(micros)
    if micros is None:
        return ""
    return money.format_money(money.credits_value(micros)).replace("-", MINUS)


@register.filter(name="money")
def money_filter(cents: int | None) -> str:
    """An amount in minor units (cents, as Stripe and the catalog store it): 900 -> "$9.00"."""
    if cents is None or cents == "":
        return ""
    return money.format_money(cents, minor_units=True).replace("-", MINUS)


@register.simple_tag
def money_in(cents: int | None, currency: str) -> str:
    """An amount in the minor units of a given currency (a Stripe invoice's own): "$10.92", "CHF 10.92"."""
    if cents is None or cents == "":
        return ""
    return money.format_money(cents, minor_units=True, currency_code=currency).replace("-", MINUS)
