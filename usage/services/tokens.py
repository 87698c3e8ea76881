"""Spending tokens: issue, check, revoke (the model: usage.models.tokens).

A token is `tgs_<8 characters>.<32 characters>`. The part before the dot is
its prefix, kept in the clear to find the row; the whole secret is kept only
as a SHA-512 hash, made and checked by djangorestframework-api-key's key
generator, as API keys are.

A token records usage as the API key that issued it (that key's monthly
limit, meters and pause apply on top of the token's own), so a token can
never do more than its key could.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from rest_framework_api_key.crypto import KeyGenerator

from accounts.models import OrgAPIKey
from billing_project.errors import Conflict, InvalidRequest, NotFound, TollgateError
from orgs.services import audit_record
from usage.errors import (
    MeterNotAllowed,
    TokenCeilingReached,
    TokenHoldClosed,
    TokenMeterNotAllowed,
    TokenNotAllowed,
    TokenRefused,
)
from usage.models import TOKEN_PREFIX, Hold, HoldStatus, SpendingToken
from usage.selectors.tokens import hold_of_org
from usage.services.pause import key_require_unpaused
from usage.services.pricing import Prepared, UsageInput
from usage.services.rates import current_card
from usage.units import credits_str

if TYPE_CHECKING:
    from datetime import datetime

    from orgs.models import Organization
    from orgs.services import Actor

DEFAULT_TOKEN_TTL = timedelta(minutes=15)
MAX_TOKEN_TTL = timedelta(hours=24)
MAX_TOKEN_METERS = 50

_generator = KeyGenerator(prefix_length=8, secret_key_length=32)


@transaction.atomic
def spending_token_create(
    *,
    org: Organization,
    hold_id: int,
    ceiling_micros: int | None = None,
    meters: list[str] | None = None,
    expires_in: timedelta = DEFAULT_TOKEN_TTL,
    name: str = "",
    actor: Actor = None,
) -> tuple[SpendingToken, str]:
    """Issue a token for one of `org`'s open holds; returns the row and the secret,
    which is never stored or shown again.

    `ceiling_micros`: the most it may record in all (default: the hold's amount);
    `meters`: the meter codes it may record (empty: every meter the issuing key
    may); `expires_in`: 1 second to 24 hours (default 15 minutes), and never
    past the hold's own expiry. Another organization's hold is 404; a hold that
    has ended is 409 hold_closed."""
    key_require_unpaused(actor)  # a paused key hands out nothing that spends
    if not timedelta(seconds=1) <= expires_in <= MAX_TOKEN_TTL:
        raise InvalidRequest("expires_in must be between 1 second and 24 hours.", code="invalid_expiry")
    hold = hold_of_org(org, hold_id)
    now = timezone.now()
    if hold.status != HoldStatus.OPEN or hold.expires_at <= now:
        raise Conflict(f"Hold {hold.pk} has ended ({_ended(hold, now)}); a token for it could record nothing.",
                       code="hold_closed")
    if ceiling_micros is None:
        ceiling_micros = hold.amount_micros
    if not isinstance(ceiling_micros, int) or isinstance(ceiling_micros, bool) or ceiling_micros <= 0:
        raise InvalidRequest("A token's ceiling must be more than zero credits.", code="invalid_amount")
    meters = _meters_check(meters, actor)
    api_key = actor if isinstance(actor, OrgAPIKey) else None
    expires_at = min(now + expires_in, hold.expires_at)
    if api_key is not None and api_key.expiry_date is not None:
        expires_at = min(expires_at, api_key.expiry_date)  # never past the key that issued it
    prefix = TOKEN_PREFIX + _generator.get_prefix()
    raw = f"{prefix}.{_generator.get_secret_key()}"
    token = SpendingToken.objects.create(
        org=org, hold=hold, api_key=api_key, name=(name or "").strip()[:50], prefix=prefix,
        hashed_key=_generator.hash(raw), ceiling_micros=ceiling_micros, meters=meters,
        expires_at=expires_at, created_at=now,
    )
    audit_record(org=org, action="spending_token.created", actor=actor, data={
        "prefix": token.prefix, "hold": hold.pk, "ceiling": credits_str(ceiling_micros), "meters": meters,
        "expires_at": token.expires_at.isoformat(),
    })
    return token, raw


def _ended(hold: Hold, now: datetime) -> str:
    return HoldStatus.EXPIRED.value if hold.status == HoldStatus.OPEN and hold.expires_at <= now else hold.status


def _meters_check(meters: list[str] | None, actor: Actor) -> list[str]:
    """Known meters, without repeats; within the issuing key's own list when it has one."""
    codes = list(dict.fromkeys(code.strip() for code in meters or () if isinstance(code, str) and code.strip()))
    if len(codes) > MAX_TOKEN_METERS:
        raise InvalidRequest(f"A token names at most {MAX_TOKEN_METERS} meters.", code="invalid_request")
    card = current_card()
    for code in codes:
        card.meter(code)  # 400 unknown_meter
        if isinstance(actor, OrgAPIKey) and actor.meters and code not in actor.meters:
            # A token never does more than the key that issued it.
            raise MeterNotAllowed(prefix=actor.prefix, meter=code, allowed=actor.meters)
    return codes


@transaction.atomic
def spending_token_revoke(*, org: Organization, hold_id: int, token_id: int, actor: Actor = None) -> SpendingToken:
    """Stop a token at once: a request that checks it after this commits is
    refused (one recording under way, which locked it first, finishes).
    Revoking twice is harmless; another organization's token is 404."""
    hold = hold_of_org(org, hold_id)
    token = SpendingToken.objects.select_for_update().filter(pk=token_id, hold=hold).first()
    if token is None:
        raise NotFound("No such spending token on this hold.", code="token_not_found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(org=org, action="spending_token.revoked", actor=actor, data={
            "prefix": token.prefix, "hold": hold.pk, "spent": credits_str(token.spent_micros),
        })
    return token


@dataclass(frozen=True)
class TokenCheck:
    """A token that passed the check, with what it acts as: its organization and the key that issued it."""

    token: SpendingToken
    org: Organization
    api_key: OrgAPIKey | None


def spending_token_authenticate(*, raw_token: str) -> TokenCheck:
    """Check a token as a caller sent it. Unknown, revoked (or issued by a key
    since revoked) or expired: 401 (`authentication_failed`, `token_revoked`,
    `token_expired`); its hold captured, released or expired: 403
    `token_hold_closed`. One query."""
    if not raw_token.startswith(TOKEN_PREFIX):
        raise TokenRefused("That spending token is not valid.")
    prefix, dot, _secret = raw_token.partition(".")
    token = None
    if dot:
        token = SpendingToken.objects.select_related("hold", "org", "api_key").filter(prefix=prefix).first()
    if token is None or not _generator.verify(raw_token, token.hashed_key):
        raise TokenRefused("That spending token is not valid.")
    now = timezone.now()
    api_key = token.api_key
    if token.revoked_at is not None or (api_key is not None and api_key.revoked):
        raise TokenRefused(f"Spending token {token.prefix} has been revoked.", code="token_revoked",
                           token_prefix=token.prefix)
    if token.expires_at <= now:
        raise TokenRefused(f"Spending token {token.prefix} expired at {token.expires_at.isoformat()}.",
                           code="token_expired", token_prefix=token.prefix)
    if api_key is not None and api_key.has_expired:
        # A token can never do more than the key that issued it, which is refused once expired.
        raise TokenRefused(f"The API key that issued spending token {token.prefix} has expired.",
                           code="token_expired", token_prefix=token.prefix)
    hold = token.hold
    if hold.status != HoldStatus.OPEN or hold.expires_at <= now:
        raise TokenHoldClosed(prefix=token.prefix, hold_id=hold.pk, hold_status=_ended(hold, now))
    return TokenCheck(token=token, org=token.org, api_key=api_key)


# --- recording with a token (usage.services.events) -------------------------------------


def token_inputs(token: SpendingToken, inputs: list[UsageInput]) -> list[UsageInput]:
    """The events as a token may send them: one without `hold_id` is put on the
    token's hold (before the fingerprint is taken, so a retry matches)."""
    return [item if item.hold_id is not None else replace(item, hold_id=token.hold_id) for item in inputs]


def token_check_prepared(token: SpendingToken, prepared: list[Prepared]) -> None:
    """Refuse, each on its own, the events a token may not record: another hold
    than its own or one of its children (403 token_not_allowed), a meter outside
    its list (403 meter_not_allowed). The rest are marked as the token's."""
    allowed = _token_hold_ids(token, {p.input.hold_id for p in prepared if p.error is None})
    for p in prepared:
        if p.error is not None:
            continue
        if p.input.hold_id not in allowed:
            p.error = TokenNotAllowed(token.prefix, f"Spending token {token.prefix} records against hold "
                                                    f"{token.hold_id} (or its child holds) only, not hold "
                                                    f"{p.input.hold_id}.", hold_id=token.hold_id)
        elif token.meters and p.input.meter not in token.meters:
            p.error = TokenMeterNotAllowed(prefix=token.prefix, meter=p.input.meter, allowed=token.meters)
        else:
            p.spending_token_id = token.pk


def _token_hold_ids(token: SpendingToken, named: set[int]) -> set[int]:
    """The holds the token may record against, as far as `named` needs: its own and
    its hold's descendants (children, their children, ...), one query per level
    (holds nest a few levels at most: usage.services.holds)."""
    allowed = {token.hold_id}
    frontier = {token.hold_id}
    wanted = named - allowed
    while wanted and frontier:
        frontier = set(Hold.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)) - allowed
        allowed |= frontier
        wanted -= frontier
    return allowed


@dataclass
class TokenSpend:
    """A token's ceiling for one recording, read under its row lock: events are
    checked against it one by one (`require`), counted (`spend`), then `save()`."""

    token: SpendingToken
    spent_micros: int
    ceiling_micros: int
    refusal: TollgateError | None = None
    added_micros: int = 0

    def require(self, charge_micros: int) -> None:
        if self.refusal is not None:
            raise self.refusal
        if self.spent_micros + charge_micros > self.ceiling_micros:
            raise TokenCeilingReached(prefix=self.token.prefix, ceiling_micros=self.ceiling_micros,
                                      spent_micros=self.spent_micros, required_micros=charge_micros)

    def spend(self, charge_micros: int) -> None:
        self.spent_micros += charge_micros
        self.added_micros += charge_micros

    def save(self) -> None:
        if self.added_micros:
            SpendingToken.objects.filter(pk=self.token.pk).update(spent_micros=self.spent_micros)
            self.token.spent_micros = self.spent_micros


def token_spend_lock(token: SpendingToken, now: datetime, hold: Hold | None = None) -> TokenSpend:
    """Lock the token's row and read its spend. Call it holding the account lock
    and the hold rows (the order: account row, hold rows by id, token row), so
    two requests with one token take it in turn and never pass its ceiling.
    Revoked or expired since the request was authenticated, or its `hold` (as
    locked) ended: every event is refused (`refusal`), at once."""
    row = SpendingToken.objects.select_for_update().filter(pk=token.pk).values(
        "spent_micros", "ceiling_micros", "revoked_at", "expires_at").get()
    spend = TokenSpend(token, row["spent_micros"], row["ceiling_micros"])
    if row["revoked_at"] is not None:
        spend.refusal = TokenRefused(f"Spending token {token.prefix} has been revoked.", code="token_revoked",
                                     token_prefix=token.prefix)
    elif row["expires_at"] <= now:
        spend.refusal = TokenRefused(f"Spending token {token.prefix} has expired.", code="token_expired",
                                     token_prefix=token.prefix)
    elif hold is not None and (hold.status != HoldStatus.OPEN or hold.expires_at <= now):
        spend.refusal = TokenHoldClosed(prefix=token.prefix, hold_id=hold.pk, hold_status=_ended(hold, now))
    return spend
