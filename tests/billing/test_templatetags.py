from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import override_settings

from billing.money import credits_value, format_money
from billing.templatetags import credits as tags


def render(source: str, **context) -> str:
    return Template("{% load credits %}" + source).render(Context(context))


@pytest.mark.parametrize(
    "micros, shown",
    [(12_345_678_900, "12,345.68"), (2_500_000, "2.5"), (1_000_000, "1"), (0, "0"), (-3_250_000, "−3.25"), (1, "0")],
)
def test_credits_show_thousands_separators_and_at_most_two_decimals(micros, shown):
    assert render("{{ m|credits }}", m=micros) == shown


def test_signed_credits_always_carry_their_sign():
    assert render("{{ a|credits_signed }} {{ b|credits_signed }}", a=250_000_000, b=-12_500_000) == "+250 −12.5"


def test_precise_credits_keep_every_micro_credit_with_separators():
    assert tags.credits_precise(3_500) == "0.0035"
    assert tags.credits_precise(12_345_678_901) == "12,345.678901"
    assert tags.credits_precise(-2_500_000) == "\u22122.5"
    assert tags.credits_precise(None) == ""


def test_credit_labels_agree_in_number():
    assert render("{{ a|credits_label }}, {{ b|credits_label }}", a=1_000_000, b=2_500_000) == "1 credit, 2.5 credits"


def test_money_beside_credits_is_the_list_price_to_the_cent():
    assert render("{{ m|credits_money }}", m=1_234_500_000) == "$12.35"  # 1,234.5 credits at $0.01, half up
    assert credits_value(500_000) == Decimal("0.01")  # half a credit, $0.005, rounds half up
    assert credits_value(400_000) == Decimal("0.00")


def test_money_from_minor_units():
    assert render("{{ c|money }}", c=123_450) == "$1,234.50"
    assert render("{{ c|money }}", c=-300) == "−$3.00"


@override_settings(CURRENCY="chf", CREDIT_PRICE="0.02")
def test_currency_and_price_come_from_settings():
    assert render("{{ m|credits_money }}", m=100_000_000) == "CHF 2.00"


def test_float_amounts_are_refused():
    with pytest.raises(TypeError):
        tags.credits(1.5)
    with pytest.raises(TypeError):
        format_money(1.5)


def test_grouped_counts():
    assert render("{{ n|grouped }}", n=1234567) == "1,234,567"
