"""How usage reads to people: "146 extra-large actions", "12,400 AI output
tokens", "Compute time: 38 seconds". The meter's name is the one the usage
chart shows; the unit takes the quantity's number; quantities get thousands
separators. New ledger entries are written this way (`usage.services.events`),
and the history rewords entries recorded before, in the old "<quantity>
<unit> of <meter code>" form, when it shows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol


class MeterWords(Protocol):
    code: str
    name: str
    unit: str


def quantity_str(quantity: Decimal) -> str:
    """`12400` -> "12,400", `38.50` -> "38.5": every digit kept, never exponent notation."""
    text = f"{quantity.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "") if whole.lstrip("-").isdigit() else text


def plural(word: str) -> str:
    """English plural of a unit's singular ("token", "second", "inch", "query")."""
    lower = word.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if len(word) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def usage_phrase(quantity: Decimal, meter: MeterWords) -> str:
    """The quantity of a meter in words. A meter named after what it counts
    ("Extra-large action", "AI output tokens") reads as a count of it; any other
    ("Compute time") names itself before the quantity in its unit."""
    one = quantity == 1
    unit = meter.unit.strip()
    name = meter.name.strip() or meter.code
    words = name.split()
    last = words[-1].lower() if words else ""
    if unit and last in (unit.lower(), plural(unit).lower()):
        words[-1] = unit if one else plural(unit)
        first = words[0]
        # "Extra-large" reads lower-case mid-sentence; "AI" stays as it is.
        if not first.isupper():
            words[0] = first[:1].lower() + first[1:]
        return f"{quantity_str(quantity)} {' '.join(words)}"
    counted = f"{quantity_str(quantity)} {unit if one else plural(unit)}" if unit else quantity_str(quantity)
    return f"{name}: {counted}"


# The reason usage entries were written with before they were worded well.
_OLD_REASON = re.compile(r"(?P<quantity>-?\d+(?:\.\d+)?) (?P<unit>\S+) of (?P<code>\S+)")


def reason_readable(reason: str, meters: Mapping[str, MeterWords]) -> str:
    """An entry's reason as people should read it: an old-style usage reason of
    a known meter reworded, anything else (a staff note, a batch) as written."""
    match = _OLD_REASON.fullmatch(reason or "")
    if match is None:
        return reason
    meter = meters.get(match["code"])
    if meter is None or meter.unit != match["unit"]:
        return reason
    try:
        quantity = Decimal(match["quantity"])
    except InvalidOperation:
        return reason
    return usage_phrase(quantity, meter)
