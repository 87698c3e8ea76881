"""The server side of paying: checkout and portal starts, Stripe's return
pages, the demo's simulated payment.

Starting a checkout or the portal is a POST (CSRF-protected, billing managers
only) that makes the Stripe session on the server and redirects to it.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing import gateway, selectors, services
from billing.models import CheckoutKind, CheckoutStart, CheckoutStatus, Purchase
from billing.services.checkout import RETURN_PAGES
from billing_project.errors import TollgateError
from orgs.current import membership_required


def _back(request, default: str = "checkout") -> str:
    return RETURN_PAGES.get(request.POST.get("return_to") or request.GET.get("return_to") or "", RETURN_PAGES[default])


@membership_required
def checkout_page(request):
    """Buy credits or a plan: the catalog with a button per item."""
    org = request.membership.org
    state = services.billing_state_for(org)
    return render(request, "billing/checkout.html", {
        "org": org, "state": state, "plans": selectors.plans_active(), "packs": selectors.packs_active(),
        "can_buy": request.membership.can_manage_billing, "stripe_configured": gateway.configured(),
        "simulated": gateway.simulated(),
    })


@require_POST
@membership_required
def checkout_start(request):
    org = request.membership.org
    try:
        result = services.checkout_start(
            org=org, actor=request.user, kind=request.POST.get("kind", ""), code=request.POST.get("code", ""),
            interval=request.POST.get("interval") or "month", return_to=request.POST.get("return_to") or "checkout",
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


@membership_required
def checkout_done(request):
    """Stripe's success URL. The webhook may land after the buyer does, so the
    page says what has arrived and refreshes itself until it has."""
    start = _own_checkout(request, request.GET.get("session_id", ""))
    purchase = Purchase.objects.filter(checkout_session_id=start.session_id).select_related("grant").first()
    done = purchase is not None if start.kind == CheckoutKind.PACK else start.status == CheckoutStatus.COMPLETE
    account = getattr(start.org, "credit_account", None)
    return render(request, "billing/checkout_done.html", {
        "start": start, "purchase": purchase, "done": done, "account": account,
        "back": RETURN_PAGES.get(start.return_to, RETURN_PAGES["overview"]),
    })


@membership_required
def checkout_canceled(request):
    return render(request, "billing/checkout_canceled.html", {"back": _back(request, "checkout")})


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

