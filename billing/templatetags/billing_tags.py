from django import template

from billing.money import format_cents
from usage.units import format_credits

register = template.Library()


@register.filter
def cents(value: int, currency: str = "usd") -> str:
    """{{ pack.amount_cents|cents }} -> "$18"; {{ 999|cents }} -> "$9.99"."""
    return format_cents(int(value or 0), currency or "usd")


@register.filter
def credits(micros: int) -> str:
    """{{ pack.credits_micros|credits }} -> "2,000"."""
    return format_credits(int(micros or 0))
