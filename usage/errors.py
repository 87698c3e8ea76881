"""The ledger's refusals, in the 402 contract of DESIGN.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from billing_project import request_context
from billing_project.errors import AuthenticationFailed, Conflict, InvalidRequest, PaymentRequired, PermissionDenied
from usage.happenings import Happening
from usage.units import credits_str

TOP_UP_PATH = "/billing/top-up/"
BILLING_PATH = "/billing/"


def _links() -> dict[str, str]:
    site = request_context.site_url()
    return {"top_up_url": site + TOP_UP_PATH, "billing_url": site + BILLING_PATH}


@dataclass(frozen=True, slots=True)
class MemberPayer:
    """Whose balance pays when it is not the organization's own: a member's
    personal organization (`member_usage: personal`, usage.services.routing)."""

    email: str
    org_slug: str  # their personal organization: the top-up link opens it


def _member_links(payer: MemberPayer) -> dict[str, str]:
    # The member's own pages: `?org=` makes their personal organization the current one.
    site = request_context.site_url()
    query = "?" + urlencode({"org": payer.org_slug})
    return {"top_up_url": site + TOP_UP_PATH + query, "billing_url": site + BILLING_PATH + query}


class InsufficientCredits(PaymentRequired):
    code = "insufficient_credits"

    def __init__(
        self, *, balance_micros: int, available_micros: int, required_micros: int, payer: MemberPayer | None = None,
    ) -> None:
        balance, available = credits_str(balance_micros), credits_str(available_micros)
        if payer is None:
            message = (f"This needs {credits_str(required_micros)} credits but only "
                       f"{credits_str(max(available_micros, 0))} are available. Top up to continue.")
            whose = {"payer": "organization"}
            links = _links()
        else:
            # The organization never sees a member's balance: the 402 names the
            # member and what is needed, and leaves the figures to the member.
            message = (f"This needs {credits_str(required_micros)} credits, more than {payer.email}'s personal "
                       "balance, which pays for their usage of this organization, has available. They can top up "
                       "to continue.")
            whose = {"payer": "member", "payer_email": payer.email}
            balance = available = None
            links = _member_links(payer)
        super().__init__(
            message,
            balance=balance,
            available=available,
            required=credits_str(required_micros),
            **whose,
            **links,
        )


class SpendLimitReached(PaymentRequired):
    code = "spend_limit_reached"

    def __init__(
        self, *, limit_micros: int, spent_micros: int, required_micros: int,
        org_id: int | None = None, member_id: int | None = None, month: date | None = None,
    ) -> None:
        # What platforms are told (usage.limit_reached), announced by whoever
        # sees the refusal outlive its transaction (usage.services.limits).
        # Keyed by member and month: a cap reached once in a month is one event.
        self.happening = None if org_id is None or member_id is None or month is None else Happening(
            org_id=org_id, type="usage.limit_reached", key=f"member:{member_id}:{month:%Y-%m}",
            data={"scope": "member", "member_id": member_id, "period": f"{month:%Y-%m}",
                  "limit": credits_str(limit_micros), "spent": credits_str(spent_micros),
                  "required": credits_str(required_micros)},
        )
        super().__init__(
            f"This member's monthly spend limit of {credits_str(limit_micros)} credits is reached "
            f"({credits_str(spent_micros)} spent, {credits_str(required_micros)} more needed). "
            "An organization admin can raise it.",
            limit=credits_str(limit_micros),
            spent=credits_str(spent_micros),
            required=credits_str(required_micros),
            **_links(),
        )


API_KEYS_PATH = "/billing/api-keys/"


class UsagePaused(PaymentRequired):
    """The calling API key was paused by the runaway breaker until an owner or admin resumes it."""

    code = "usage_paused"

    def __init__(self, *, prefix: str, paused_at, reason: str) -> None:
        site = request_context.site_url()
        super().__init__(
            f"API key {prefix} is paused: {reason} An owner or admin can resume it.",
            key_prefix=prefix,
            paused_at=paused_at.isoformat(),
            reason=reason,
            resume_url=site + API_KEYS_PATH,
            **_links(),
        )


class OrgUsagePaused(PaymentRequired):
    """Staff paused the organization's usage (orgs.services.org_usage_pause).
    The staff member's reason is internal and stays out of the answer."""

    code = "usage_paused"

    def __init__(self, *, paused_at) -> None:
        super().__init__(
            "This organization's usage is paused by Tollgate staff; usage events and holds are refused "
            "until it is resumed. Contact support.",
            paused_at=paused_at.isoformat(),
            **_links(),
        )


class MemberRequired(InvalidRequest):
    """An organization whose members pay for their own usage must be told whose it is."""

    code = "member_required"
    default_message = (
        "This organization's members pay for their own usage (member_usage: personal): name the member."
    )


class KeyLimitReached(PaymentRequired):
    """The calling API key's monthly credit limit cannot cover this: what it spent
    this month and what its open holds reserve, plus `required`, would pass it."""

    code = "key_limit_reached"

    def __init__(self, *, prefix: str, limit_micros: int, spent_micros: int, required_micros: int) -> None:
        site = request_context.site_url()
        super().__init__(
            f"API key {prefix}'s monthly limit of {credits_str(limit_micros)} credits is reached "
            f"({credits_str(spent_micros)} spent, {credits_str(required_micros)} more needed). "
            "An owner or admin can raise it on the API keys page.",
            key_prefix=prefix,
            limit=credits_str(limit_micros),
            spent=credits_str(spent_micros),
            required=credits_str(required_micros),
            settings_url=site + API_KEYS_PATH,
            **_links(),
        )


class HoldBudgetExceeded(PaymentRequired):
    """Usage recorded against (or a capture of) a child hold needs more than it and
    its parents have left: a child never spends past the budget it was handed."""

    code = "hold_budget_exceeded"

    def __init__(self, *, hold_id: int, left_micros: int, required_micros: int) -> None:
        super().__init__(
            f"Hold {hold_id} and the holds it was carved from have {credits_str(left_micros)} credits left; this "
            f"needs {credits_str(required_micros)}. Ask for a larger hold from the agent that made it.",
            hold_id=hold_id,
            left=credits_str(left_micros),
            required=credits_str(required_micros),
        )


class MeterNotAllowed(PermissionDenied):
    """The calling API key may record only some meters, and not this one."""

    code = "meter_not_allowed"

    def __init__(self, *, prefix: str, meter: str, allowed: list[str]) -> None:
        super().__init__(
            f"API key {prefix} may not record “{meter}”; it may record {', '.join(allowed)}.",
            key_prefix=prefix,
            meter=meter,
            allowed_meters=list(allowed),
        )


# --- spending tokens (usage.services.tokens) ----------------------------------------


class TokenRefused(AuthenticationFailed):
    """A spending token that can no longer be used at all: unknown, revoked (or its
    issuing key was), or past its expiry. 401, like an API key that is no good."""

    # Read by the API's exception handler: a 401 says how to authenticate.
    auth_header = 'Bearer realm="tollgate"'


class TokenNotAllowed(PermissionDenied):
    """A spending token used for anything but recording usage against its hold."""

    code = "token_not_allowed"

    def __init__(self, prefix: str, message: str | None = None, **details) -> None:
        super().__init__(
            message or (f"Spending token {prefix} can only record usage events against its hold "
                        "(POST /api/v1/usage/events and /usage/events/batch); use an API key for anything else."),
            token_prefix=prefix, **details,
        )


class TokenHoldClosed(PermissionDenied):
    """The hold a spending token spends from was captured, released or expired."""

    code = "token_hold_closed"

    def __init__(self, *, prefix: str, hold_id: int, hold_status: str) -> None:
        super().__init__(
            f"Spending token {prefix} spends from hold {hold_id}, which has ended ({hold_status}); "
            "it can record nothing more.",
            token_prefix=prefix, hold_id=hold_id, hold_status=hold_status,
        )


class TokenMeterNotAllowed(PermissionDenied):
    """The spending token may record only some meters, and not this one."""

    code = "meter_not_allowed"

    def __init__(self, *, prefix: str, meter: str, allowed: list[str]) -> None:
        super().__init__(
            f"Spending token {prefix} may not record “{meter}”; it may record {', '.join(allowed)}.",
            token_prefix=prefix, meter=meter, allowed_meters=list(allowed),
        )


class TokenCeilingReached(PaymentRequired):
    """What the spending token recorded so far plus this event would pass its ceiling."""

    code = "token_ceiling_reached"

    def __init__(self, *, prefix: str, ceiling_micros: int, spent_micros: int, required_micros: int) -> None:
        super().__init__(
            f"Spending token {prefix}'s ceiling of {credits_str(ceiling_micros)} credits is reached "
            f"({credits_str(spent_micros)} spent, {credits_str(required_micros)} more needed). "
            "Ask whoever gave you the token for a new one.",
            token_prefix=prefix,
            ceiling=credits_str(ceiling_micros),
            spent=credits_str(spent_micros),
            required=credits_str(required_micros),
        )


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    default_message = "This idempotency key was already used for a different request."
