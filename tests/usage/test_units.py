from decimal import Decimal

import pytest

from usage.units import AmountError, charge_micros, credits_str, credits_to_micros, format_credits, micros_to_credits


@pytest.mark.parametrize(
    "value, micros",
    [("1", 1_000_000), ("2.5", 2_500_000), (Decimal("0.000001"), 1), (15, 15_000_000), ("-3.25", -3_250_000)],
)
def test_credits_convert_exactly(value, micros):
    assert credits_to_micros(value) == micros
    assert micros_to_credits(micros) == Decimal(str(value))


def test_it_refuses_amounts_finer_than_a_micro_credit():
    with pytest.raises(AmountError):
        credits_to_micros("0.0000001")


@pytest.mark.parametrize("bad", [0.5, "abc", "NaN", "Infinity", ""])
def test_it_refuses_floats_and_non_numbers(bad):
    with pytest.raises(AmountError):
        credits_to_micros(bad)


def test_the_api_form_is_plain_and_normalized():
    assert credits_str(1_000_000_000) == "1000"
    assert credits_str(2_500_000) == "2.5"
    assert credits_str(25) == "0.000025"
    assert credits_str(-1_500_000) == "-1.5"


@pytest.mark.parametrize(
    "quantity, price, micros",
    [
        (12_400, "0.000025", 310_000),  # 12,400 tokens at 0.000025 credits each
        (1, "0.0000004", 0),  # 0.4 micro-credits rounds down
        (1, "0.0000005", 1),  # half rounds up
        (3, "0.00000015", 0),  # 0.45 rounds down, computed exactly (no float drift)
        ("38.5", "0.02", 770_000),  # fractional quantities are fine
        (1, "2.5", 2_500_000),
    ],
)
def test_a_charge_rounds_once_half_up_to_a_micro_credit(quantity, price, micros):
    assert charge_micros(quantity, price) == micros


def test_people_see_separators_and_at_most_two_decimals():
    assert format_credits(12_345_678_900) == "12,345.68"
    assert format_credits(2_500_000) == "2.5"
    assert format_credits(1_000_000) == "1"
    assert format_credits(-5_000_000) == "-5"


def test_one_credit_price_drives_the_rate_card_estimates_and_money(settings):
    from billing import money
    from usage.rate_card import rate_credits_per_unit
    from usage.units import credit_price

    rate = {"provider_usd_per_unit": "0.000002"}  # $2 per million output tokens
    data = {"margin": "1.5"}
    assert rate_credits_per_unit(rate, data) == Decimal("0.0003")
    assert money.credits_value(1_000_000) == Decimal("0.01")

    settings.CREDIT_PRICE = "0.02"

    assert credit_price() == Decimal("0.02")
    assert rate_credits_per_unit(rate, data) == Decimal("0.00015")  # the same dollars buy half the credits
    assert money.credits_value(1_000_000) == Decimal("0.02")
    assert money.credits_price_cents(1500 * 1_000_000) == 3000


def test_a_credit_price_that_is_not_positive_is_refused(settings):
    from usage.units import credit_price

    settings.CREDIT_PRICE = "0"
    with pytest.raises(AmountError):
        credit_price()


@pytest.mark.parametrize("huge", ["1e999999999", "1e99999", "1000000000000.000001", Decimal("-1E+13")])
def test_it_refuses_amounts_beyond_a_trillion_credits_before_multiplying(huge):
    with pytest.raises(AmountError, match="largest amount"):
        credits_to_micros(huge)
    assert credits_to_micros("1000000000000") == 10**18
