"""The key budget seam: an API key carries a monthly credit limit and a list of
meters it may record, but meters and spend belong to usage, above accounts.

usage registers one `KeyBudgetSource` in its `AppConfig.ready()`; the keys
page and key creation ask it for the meters a key may be limited to (and to
check a list of them) and for each key's spend this month, without accounts
knowing usage. With none registered, no meter is known and nothing was spent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from billing_project.errors import InvalidRequest

if TYPE_CHECKING:
    from accounts.models import OrgAPIKey
    from orgs.models import Organization


@dataclass(frozen=True)
class KeyBudgetSource:
    # (code, name) of every meter a key may be limited to, in the order to show them
    meter_choices: Callable[[], list[tuple[str, str]]]
    # micro-credits each key (by prefix) spent this calendar month (UTC)
    spent_this_month: Callable[[Organization, Sequence[OrgAPIKey]], dict[str, int]]
    # an amount of credits as typed ("1,500", "12.5") to micro-credits; ValueError if it is not one
    credits_to_micros: Callable[[str], int]
    # micro-credits as an exact decimal string of credits ("12.5")
    credits_str: Callable[[int], str]


_sources: list[KeyBudgetSource] = []


def source_register(source: KeyBudgetSource) -> None:
    """Make `source` the one the keys page and key creation ask (the last registered wins)."""
    _sources[:] = [source]


def meter_choices() -> list[tuple[str, str]]:
    return _sources[0].meter_choices() if _sources else []


def meters_check(meters: Sequence[str] | None) -> list[str]:
    """The meter codes as given, without repeats, or 400 unknown_meter naming those not known."""
    codes = list(dict.fromkeys(code.strip() for code in meters or () if code and code.strip()))
    known = {code for code, _name in meter_choices()}
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise InvalidRequest(
            f"Unknown meter(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.", code="unknown_meter"
        )
    return codes


def limit_parse(text: str | None) -> int | None:
    """A monthly limit as people type it, in credits: blank is no limit; else a
    number of credits, zero or more, as micro-credits (400 invalid_amount if not)."""
    cleaned = (text or "").replace(",", "").replace("_", "").replace(" ", "").strip()
    if not cleaned:
        return None
    try:
        micros = _sources[0].credits_to_micros(cleaned) if _sources else None
    except ValueError as error:
        raise InvalidRequest(f"A key's monthly limit must be a number of credits: {error}", code="invalid_amount") from None
    if micros is None or micros < 0:
        raise InvalidRequest("A key's monthly limit must be zero or more credits.", code="invalid_amount")
    return micros


def limit_text(micros: int | None) -> str:
    """A limit as a form shows it back, exact: "12.5"; blank for no limit."""
    if micros is None or not _sources:
        return ""
    return _sources[0].credits_str(micros)


def spent_this_month(org: Organization, keys: Sequence[OrgAPIKey]) -> dict[str, int]:
    return _sources[0].spent_this_month(org, keys) if _sources else {}
