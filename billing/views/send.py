"""Sending credits, in two steps: the form, then a confirmation that names the
receiving organization and the amount. Credits move only on the second POST.

The pending transfer travels in the confirmation page as a signed, expiring
token (sender org, sender, receiver, amount, note, idempotency key), so
nothing is stored between the steps and a confirmation cannot be edited or
replayed into another organization. Its idempotency key, made with the form,
makes a double click or a reload send once.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.ratelimit import ratelimit_hit
from billing import selectors
from billing.forms import SendCreditsForm, sendable_error
from billing.views.access import require_billing_role
from billing_project.errors import TollgateError
from orgs import selectors as org_selectors
from orgs.current import membership_required
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.errors import IdempotencyConflict, InsufficientCredits
from usage.units import credits_str, format_credits

PENDING_SALT = "billing.send"
PENDING_MAX_AGE = 30 * 60  # seconds a confirmation page stays valid
STALE = "This confirmation is no longer valid (it expired, or was made for another organization). Check the details and send again."


def _page(request, form, *, status: int = 200):
    org = request.membership.org
    credits = selectors.credits_overview(org.pk)
    context = {
        "org": org,
        "form": form,
        "can_send": request.membership.can_manage_billing,
        "credits": credits,
        "transfers": usage_selectors.recent_transfers(account_id=credits.account.pk) if credits.account.pk else [],
    }
    return render(request, "billing/send.html", context, status=status)


def _form(request, data=None, **kwargs) -> SendCreditsForm:
    user_id = str(request.user.pk)

    def lookup():
        return ratelimit_hit(
            scope="transfer_lookup", key=user_id, limit=settings.TRANSFER_LOOKUP_LIMIT, window_seconds=3600
        )

    credits = selectors.credits_overview(request.membership.org.pk)
    return SendCreditsForm(data, sender=request.membership.org, sendable_micros=credits.sendable_micros, lookup=lookup, **kwargs)


def _refilled(request, typed: dict) -> SendCreditsForm:
    """The form as the sender filled it, checked again, to add a refusal to."""
    form = _form(request, typed)
    form.is_valid()
    return form


@membership_required
def send(request):
    if request.method != "POST":
        return _page(request, _form(request))
    require_billing_role(request, "send credits")
    if "edit" in request.POST:  # "Change" on the confirmation page: the form again, filled in
        fields = ("recipient", "amount", "note", "idempotency_key")
        return _page(request, _form(request, initial={f: request.POST.get(f, "") for f in fields}))
    form = _form(request, request.POST)
    if not form.is_valid():
        return _page(request, form, status=429 if form.rate_limited else 200)
    data = form.cleaned_data
    org = request.membership.org
    recipient = data["recipient"]
    pending = signing.dumps(
        {
            "from": org.pk,
            "by": request.user.pk,
            "to": recipient.pk,
            "amount": data["amount"],
            "note": data["note"],
            "key": data["idempotency_key"],
            "typed": request.POST["recipient"].strip(),
        },
        salt=PENDING_SALT,
    )
    context = {
        "org": org,
        "recipient": recipient,
        "recipient_text": request.POST["recipient"].strip(),
        "amount_micros": data["amount"],
        "amount_text": credits_str(data["amount"]),
        "note": data["note"],
        "pending": pending,
        "form_key": data["idempotency_key"],
    }
    return render(request, "billing/send_confirm.html", context)


@require_POST
@membership_required
def send_confirm(request):
    require_billing_role(request, "send credits")
    org = request.membership.org
    try:
        pending = signing.loads(request.POST.get("pending", ""), salt=PENDING_SALT, max_age=PENDING_MAX_AGE)
        if pending["from"] != org.pk or pending["by"] != request.user.pk:
            raise signing.BadSignature("made for another organization or person")
        recipient = org_selectors.organization_by_id(pending["to"])
        if recipient is None:
            raise signing.BadSignature("the receiver is gone")
        amount, note, key = int(pending["amount"]), str(pending["note"]), str(pending["key"])
        typed = {"recipient": str(pending["typed"]), "amount": credits_str(amount), "note": note, "idempotency_key": key}
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        messages.error(request, STALE)
        return redirect("billing:send")
    try:
        transfer = usage_services.credits_transfer(
            from_org=org,
            to_org=recipient,
            amount_micros=amount,
            note=note,
            idempotency_key=f"page:{key}",
            sent_by=request.user,
            actor=request.user,
        )
    except IdempotencyConflict:
        # The same form already sent something else (back button, then
        # edited): ask for a deliberate new send with a fresh key.
        form = _refilled(request, {**typed, "idempotency_key": uuid.uuid4().hex})
        form.add_error(None, "This form was already used to send credits. Check the amount and send again.")
        return _page(request, form)
    except InsufficientCredits:
        # Credits were spent or sent elsewhere since the form was checked.
        form = _refilled(request, typed)
        if "amount" not in form.errors:
            form.add_error("amount", sendable_error(selectors.credits_overview(org.pk).sendable_micros))
        return _page(request, form)
    except TollgateError as error:
        form = _refilled(request, typed)
        form.add_error(None, error.message)
        return _page(request, form)
    messages.success(request, f"Sent {format_credits(transfer.amount_micros)} credits to {recipient.name}.")
    return redirect("billing:send")
