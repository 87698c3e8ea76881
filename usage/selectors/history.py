"""The ledger's history, as the pages and GET /ledger read it.

History pages are keyset-paginated on (created_at, id), newest first, so page
1 and page 20,000 of a million entries cost the same: each is an index range
scan on one of LedgerEntry's (account, ..., -created_at) indexes, never an
OFFSET and never a COUNT.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone

from billing_project.errors import InvalidRequest
from usage.models import EntryKind, LedgerEntry, Meter

if TYPE_CHECKING:
    pass


def ledger_entries(
    *, account_id: int | None, kind: str | None = None, member_id: int | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """An account's ledger, newest first: optionally one kind, one member and a
    [since, until) window."""
    if kind and kind not in EntryKind.values:
        raise InvalidRequest(f"Unknown kind “{kind}”. Known: {', '.join(EntryKind.values)}.", code="invalid_kind")
    entries = LedgerEntry.objects.filter(account_id=account_id)
    if kind:
        entries = entries.filter(kind=kind)
    if member_id:
        entries = entries.filter(member_id=member_id)
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lt=until)
    return entries.order_by("-created_at", "-id")


# --- the history page -----------------------------------------------------------

HISTORY_PAGE_SIZE = 50


@dataclass(frozen=True)
class HistoryFilters:
    """What the history is narrowed to. Dates are whole days in the site's time
    zone, both ends included."""

    kind: str = ""
    since: date | None = None
    until: date | None = None
    member_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind and self.kind not in EntryKind.values:
            raise ValueError(f"Unknown entry kind {self.kind!r}.")

    @property
    def active(self) -> bool:
        return bool(self.kind or self.since or self.until or self.member_id)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def history_entries(*, account_id: int, filters: HistoryFilters = HistoryFilters()) -> QuerySet[LedgerEntry]:
    """The history page's entries: `ledger_entries` over whole days, with what
    the page shows about each (member, transfer counterparties) joined in."""
    return ledger_entries(
        account_id=account_id,
        kind=filters.kind,
        member_id=filters.member_id,
        since=_day_start(filters.since) if filters.since else None,
        # through the end of `until`; the last representable day has no day after it
        until=_day_start(filters.until + timedelta(days=1)) if filters.until and filters.until < date.max else None,
    ).select_related("member", "transfer__from_account__org", "transfer__to_account__org")


# --- keyset pages -------------------------------------------------------------


def cursor_for(entry: LedgerEntry) -> str:
    """An opaque position in the history: the entry's (created_at, id)."""
    raw = f"{entry.created_at.astimezone(dt_timezone.utc).isoformat()}|{entry.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_parse(cursor: str) -> tuple[datetime, int] | None:
    """The position a cursor names, or None for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            return None
        return moment, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class HistoryPage:
    entries: list[LedgerEntry]
    older: str | None  # cursor of the next page back in time, if there is one
    newer: str | None  # cursor of the page before this one, if this is not the newest


def ledger_page(
    *,
    account_id: int,
    filters: HistoryFilters = HistoryFilters(),
    older_than: str | None = None,
    newer_than: str | None = None,
    size: int | None = None,
) -> HistoryPage:
    """One page of history. `older_than` walks back in time from a cursor,
    `newer_than` walks forward; neither (or a cursor that does not parse)
    gives the newest page."""
    size = size or HISTORY_PAGE_SIZE
    entries = history_entries(account_id=account_id, filters=filters)
    older_pos = cursor_parse(older_than) if older_than else None
    newer_pos = cursor_parse(newer_than) if newer_than else None
    if newer_pos is not None:
        moment, pk = newer_pos
        # The redundant `created_at >= moment` bounds the index range scan;
        # the OR alone would make PostgreSQL walk the index from one end.
        after = Q(created_at__gte=moment) & (Q(created_at__gt=moment) | Q(created_at=moment, id__gt=pk))
        rows = list(entries.filter(after).order_by("created_at", "id")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return HistoryPage(
            entries=rows,
            older=cursor_for(rows[-1]) if rows else None,
            newer=cursor_for(rows[0]) if rows and more_newer else None,
        )
    if older_pos is not None:
        moment, pk = older_pos
        entries = entries.filter(Q(created_at__lte=moment) & (Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk)))
    rows = list(entries[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return HistoryPage(
        entries=rows,
        older=cursor_for(rows[-1]) if rows and more_older else None,
        newer=cursor_for(rows[0]) if rows and older_pos is not None else None,
    )


def ledger_export_rows(*, account_id: int, filters: HistoryFilters = HistoryFilters()) -> Iterator[LedgerEntry]:
    """Every matching entry, streamed from a server-side cursor in chunks, so
    an export of a million rows never holds them all in memory."""
    return history_entries(account_id=account_id, filters=filters).iterator(chunk_size=2000)


def meters_by_code() -> dict[str, Meter]:
    """Every meter by its code, to word the history's usage entries (a few
    dozen rows, read once per page or export)."""
    return {meter.code: meter for meter in Meter.objects.all()}
