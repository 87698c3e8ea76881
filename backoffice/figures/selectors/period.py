"""The month a report is about, and the moment its figures are taken at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone

from billing_project.errors import InvalidRequest

# "Recent" figures (payment failures, usage patterns, health) look back this far
# from the report's moment.
RECENT = timedelta(days=30)

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """A calendar month (UTC), `[start, end)`, seen at `as_of`: the month's end,
    or now while it is still running."""

    start: datetime
    end: datetime
    as_of: datetime

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m")

    @property
    def running(self) -> bool:
        return self.as_of < self.end

    @property
    def recent_start(self) -> datetime:
        return self.as_of - RECENT

    @property
    def previous_label(self) -> str:
        return (self.start - timedelta(days=1)).strftime("%Y-%m")

    @property
    def next_label(self) -> str | None:
        return None if self.running else self.end.strftime("%Y-%m")


def period_for(month: str | None = None, *, now: datetime | None = None) -> Period:
    """The month named "YYYY-MM" (this month when None). A month that has not
    begun is refused: it has no figures."""
    now = (now or timezone.now()).astimezone(dt_timezone.utc)
    if month:
        match = _MONTH.match(month.strip())
        if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1970:
            raise InvalidRequest("month must be YYYY-MM, for example 2026-11.", code="invalid_month")
        start = datetime(int(match[1]), int(match[2]), 1, tzinfo=dt_timezone.utc)
    else:
        start = datetime(now.year, now.month, 1, tzinfo=dt_timezone.utc)
    if start > now:
        raise InvalidRequest("That month has not begun yet.", code="invalid_month")
    end = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=dt_timezone.utc)
    return Period(start=start, end=end, as_of=min(end, now))
