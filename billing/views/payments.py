"""Paying: the top-up, plans and invoices pages, checkout and portal starts,
Stripe's return pages, the demo's simulated payment.

Starting a checkout or the portal is a POST (CSRF-protected, billing managers
only) that makes the Stripe session on the server and redirects to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import gateway, money, selectors, services, stripe_data
from billing.forms import CustomTopUpForm
from billing.models import CheckoutKind, CheckoutStart, CheckoutStatus, Interval, Pack, Purchase
from billing.services.checkout import RETURN_PAGES
from billing.views.access import require_billing_role
from billing_project.errors import TollgateError
from orgs.current import membership_required


def _back(request, default: str = "top_up") -> str:
    return RETURN_PAGES.get(request.POST.get("return_to") or request.GET.get("return_to") or "", RETURN_PAGES[default])


def _payments(request) -> dict:
    """What every buying page needs to know: may this person pay, and can anyone pay here."""
    configured, simulated = gateway.configured(), gateway.simulated()
    return {"can_buy": request.membership.can_manage_billing, "stripe_configured": configured,
            "simulated": simulated, "payments_on": configured or simulated}


@membership_required
def checkout_page(request):
    """The first buy page, kept for old links: packs are on Top up, plans on Plans."""
    return redirect("billing:top_up")


@membership_required
def top_up(request):
    """Buy credits: the packs, or a custom amount at the list price. The form
    posts here so its errors show next to the field; a valid one goes on to
    Checkout (or the demo's simulated payment)."""
    membership = request.membership
    org = membership.org
    limits = services.custom_amount_limits()
    form = CustomTopUpForm(request.POST or None, limits=limits)
    if request.method == "POST":
        require_billing_role(request, "buy credits")
        if form.is_valid():
            try:
                result = services.checkout_start(org=org, actor=request.user, kind=CheckoutKind.CREDITS,
                                                 credits_micros=form.cleaned_data["credits"], return_to="top_up")
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                return HttpResponseRedirect(result.url, status=303)
    list_price = money.credit_price()
    packs = [
        PackOffer(pack, money.credits_price_cents(pack.credits_micros) - pack.amount_cents)
        for pack in selectors.packs_active()
    ]
    return render(request, "billing/top_up.html", {
        "org": org, "form": form, "limits": limits, "packs": packs,
        # Exact digits, never exponent notation: the preview script computes with them.
        "list_price_cents_per_credit": format(list_price * 100, "f"), "currency": money.currency(),
        "auto_topup": selectors.auto_topup_status(org),
        "purchases": selectors.purchases_for(org, limit=5),
        **_payments(request),
    })


@dataclass(frozen=True)
class PackOffer:
    pack: Pack
    saving_cents: int  # against buying the same credits at the list price

    @property
    def saving_percent(self) -> int:
        full = self.pack.amount_cents + self.saving_cents
        return self.saving_cents * 100 // full if full and self.saving_cents > 0 else 0


# --- plans ------------------------------------------------------------------------


@membership_required
def plans(request):
    """The plans side by side, by the month or by the year."""
    org = request.membership.org
    interval = request.GET.get("interval") or ""
    state = selectors.billing_state_of(org)
    if interval not in Interval.values:
        interval = state.interval if state.interval in Interval.values and state.status != "free" else Interval.MONTH
    subscription = selectors.subscription_for(org, state)
    cards = selectors.plan_cards(state=state, interval=interval)
    return render(request, "billing/plans.html", {
        "org": org, "state": state, "sub": subscription, "interval": interval, "cards": cards,
        **_payments(request),
    })


@require_POST
@membership_required
def plan_change(request):
    org = request.membership.org
    try:
        result = services.plan_change_start(
            org=org, actor=request.user, plan_code=request.POST.get("plan", ""),
            interval=request.POST.get("interval") or Interval.MONTH, return_to="plans",
        )
    except TollgateError as error:
        messages.error(request, error.message)
        return redirect("billing:plans")
    return HttpResponseRedirect(result.url, status=303)


@require_POST
@membership_required
def plan_cancel(request):
    org = request.membership.org
    try:
        url = services.plan_cancel_start(org=org, actor=request.user, return_to="plans")
    except TollgateError as error:
        messages.error(request, error.message)
        return redirect("billing:plans")
    if url is None:
        messages.success(request, "Your simulated subscription is canceled: you are on the Free plan now.")
        return redirect("billing:plans")
    return HttpResponseRedirect(url, status=303)


# --- invoices ---------------------------------------------------------------------


@membership_required
def invoices(request):
    """Stripe's invoices and receipts for the org (as dj-stripe synced them), newest first."""
    org = request.membership.org
    after = request.GET.get("after") or None
    try:
        rows = selectors.invoices_for(org, limit=INVOICE_PAGE + 1, starting_after=after)
    except TollgateError:
        raise Http404("No such invoice.") from None
    page = [stripe_data.invoice_row(invoice) for invoice in rows[:INVOICE_PAGE]]
    return render(request, "billing/invoices.html", {
        "org": org, "invoices": page, "older": page[-1].id if len(rows) > INVOICE_PAGE else None, "after": after,
        "purchases": selectors.purchases_for(org, limit=20),
        **_payments(request),
    })


INVOICE_PAGE = 25


@require_POST
@membership_required
def checkout_start(request):
    org = request.membership.org
    try:
        result = services.checkout_start(
            org=org, actor=request.user, kind=request.POST.get("kind", ""), code=request.POST.get("code", ""),
            interval=request.POST.get("interval") or "month", return_to=request.POST.get("return_to") or "top_up",
        )
    except TollgateError as error:
        messages.error(request, error.message)
        return redirect(_back(request))
    # 303: the browser follows with a GET to Stripe (or the simulated payment).
    return HttpResponseRedirect(result.url, status=303)


@require_POST
@membership_required
def portal(request):
    try:
        url = services.portal_start(org=request.membership.org, actor=request.user,
                                    return_to=request.POST.get("return_to") or "overview")
    except TollgateError as error:
        messages.error(request, error.message)
        return redirect(_back(request, "overview"))
    return HttpResponseRedirect(url, status=303)


def _own_checkout(request, session_id: str) -> CheckoutStart:
    start = CheckoutStart.objects.select_related("pack", "plan_price__plan").filter(
        org=request.membership.org, session_id=session_id or ""
    ).first()
    if start is None:
        raise Http404("No such checkout.")
    return start


def _checkout_state(start: CheckoutStart) -> dict:
    purchase = Purchase.objects.filter(checkout_session_id=start.session_id).first()
    if start.kind == CheckoutKind.PLAN:
        done = start.status == CheckoutStatus.COMPLETE
    else:
        done = purchase is not None
    if done:
        state = "complete"
    elif start.status in (CheckoutStatus.EXPIRED, CheckoutStatus.FAILED):
        state = start.status
    else:
        state = "pending"
    waited = (timezone.now() - start.created_at).total_seconds()
    return {
        "start": start, "purchase": purchase, "state": state,
        "slow": state == "pending" and waited > 120,
        "back": RETURN_PAGES.get(start.return_to, RETURN_PAGES["overview"]),
    }


@membership_required
def checkout_done(request):
    """Stripe's success URL. The webhook may land after the buyer does, so the
    page says what has arrived and asks again every few seconds (a small
    script fetching `checkout_status`; a meta refresh without script) until it has."""
    start = _own_checkout(request, request.GET.get("session_id", ""))
    return render(request, "billing/checkout_done.html", _checkout_state(start))


@membership_required
def checkout_status(request):
    """The return page's status block alone, for its script to poll."""
    start = _own_checkout(request, request.GET.get("session_id", ""))
    response = render(request, "billing/includes/checkout_status.html", _checkout_state(start))
    response["Cache-Control"] = "no-store"
    return response


@membership_required
def checkout_canceled(request):
    return render(request, "billing/checkout_canceled.html", {"back": _back(request, "top_up")})


@membership_required
def simulate(request, session_id: str):
    """The embedded demo's stand-in for Stripe Checkout: no card, no money."""
    if not gateway.simulated():
        raise Http404("Simulated payments are off.")
    start = _own_checkout(request, session_id)
    if not start.simulated:
        raise Http404("Not a simulated checkout.")
    if request.method == "POST":
        try:
            services.checkout_simulate_pay(org=start.org, session_id=start.session_id, actor=request.user)
        except TollgateError as error:
            messages.error(request, error.message)
            return redirect("billing:simulate", session_id=start.session_id)
        return redirect(f"{reverse('billing:checkout_done')}?session_id={start.session_id}&return_to={start.return_to}")
    return render(request, "billing/simulate.html", {"start": start, "can_buy": request.membership.can_manage_billing})

