"""How a usage entry reads in the history: the meter's name as the chart shows
it, its unit in the right number, and thousands separators."""

from decimal import Decimal

import pytest

from usage import services
from usage.models import LedgerEntry, Meter
from usage.services import UsageInput
from usage.wording import reason_readable, usage_phrase

pytestmark = pytest.mark.django_db

C = 1_000_000


def meter(code):
    return Meter.objects.get(code=code)


@pytest.mark.parametrize(("code", "quantity", "text"), [
    ("action.xl", "146", "146 extra-large actions"),
    ("action.small", "1", "1 small action"),
    ("ai.output_tokens", "12400", "12,400 AI output tokens"),
    ("ai.input_tokens", "1", "1 AI input token"),
    ("image.generated", "3", "3 generated images"),
    ("compute.seconds", "38.5", "Compute time: 38.5 seconds"),
    ("tts.characters", "1234567", "Text to speech: 1,234,567 characters"),
    ("stt.minutes", "1", "Speech to text: 1 minute"),
])
def test_it_names_the_meter_with_its_unit_in_the_right_number(code, quantity, text):
    assert usage_phrase(Decimal(quantity), meter(code)) == text


def test_it_rewrites_the_reason_entries_were_recorded_with_before():
    meters = {m.code: m for m in Meter.objects.all()}
    assert reason_readable("146 action of action.xl", meters) == "146 extra-large actions"
    assert reason_readable("12400 token of ai.output_tokens", meters) == "12,400 AI output tokens"
    # Anything else (a staff adjustment, a batch, a meter since removed) reads as written.
    assert reason_readable("3 usage events", meters) == "3 usage events"
    assert reason_readable("12 widget of gone.meter", meters) == "12 widget of gone.meter"
    assert reason_readable("refund of 2 of them", meters) == "refund of 2 of them"


@pytest.mark.usefixtures("debit_path")
def test_a_new_usage_entry_reads_well(org):
    services.credits_grant(org=org, amount_micros=10_000 * C, source="purchase")
    services.usage_record(org=org, event=UsageInput(idempotency_key="t", meter="ai.output_tokens",
                                                    quantity=Decimal("12400"), model="gpt-5-mini"))
    services.usage_record(org=org, event=UsageInput(idempotency_key="x", meter="action.xl", quantity=Decimal("146")))
    reasons = list(LedgerEntry.objects.filter(kind="usage").order_by("created_at").values_list("reason", flat=True))
    assert reasons == ["12,400 AI output tokens", "146 extra-large actions"]
