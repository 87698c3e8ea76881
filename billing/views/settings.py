"""Billing settings pages: auto top-up, alerts and provider keys (API keys and
members live in their own apps and share the settings navigation).

Everyone in the organization sees them; only billing roles change the org's
settings (a member's POST is a 403), and each person sets their own alerts.
Nothing here takes an org id from the URL: a provider key id only ever
narrows a query already limited to the current organization.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import gateway, selectors, services, stripe_data
from billing.forms import AlertPreferenceForm, AlertThresholdForm, AutoTopUpForm, MemberUsageForm, ProviderKeyForm
from billing.models import AlertKind, AlertState
from billing.money import minor_units_str
from billing.views.access import require_billing_role
from billing_project.errors import TollgateError
from orgs import services as org_services
from orgs.current import membership_required
from orgs.models import MemberUsage, Role
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.units import credits_str, format_credits


@membership_required
def settings_home(request):
    return redirect("billing:auto_topup")


@membership_required
def auto_topup(request):
    org = request.membership.org
    status = selectors.auto_topup_status(org)
    packs = list(selectors.packs_active())
    current = status.settings if status else None
    initial = {
        "enabled": current.enabled if current else False,
        "threshold": credits_str(current.threshold_micros) if current else "100",
        "pack": current.pack.code if current else (packs[1].code if len(packs) > 1 else packs[0].code if packs else ""),
        "monthly_cap": minor_units_str(current.monthly_cap_cents) if current else "50.00",
    }
    form = AutoTopUpForm(request.POST or None, initial=initial, packs=packs)
    if request.method == "POST":
        require_billing_role(request, "change auto top-up")
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.auto_topup_configure(
                    org=org, enabled=data["enabled"], threshold_micros=data["threshold"], pack_code=data["pack"],
                    monthly_cap_cents=data["monthly_cap"], actor=request.user,
                )
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "Auto top-up is on." if data["enabled"] else "Auto top-up settings saved; it is off.")
                return redirect("billing:auto_topup")
    configured = gateway.configured()
    return render(request, "billing/settings_auto_topup.html", {
        "org": org, "form": form, "status": status, "attempts": selectors.topup_attempts_for(org, limit=10),
        "can_edit": request.membership.can_manage_billing, "stripe_configured": configured,
        "simulated": gateway.simulated(),
        "card": stripe_data.saved_card_for(selectors.billing_state_of(org).customer_id) if configured else None,
    })


@require_POST
@membership_required
def card_change(request):
    """Stripe's portal, straight on its "update payment method" screen; the card
    saved there becomes the customer's default, which auto top-up charges."""
    require_billing_role(request, "change the card")
    try:
        url = services.portal_start(org=request.membership.org, actor=request.user, return_to="auto_topup",
                                    flow={"type": "payment_method_update"})
    except TollgateError as error:
        messages.error(request, error.message)
        return redirect("billing:auto_topup")
    return HttpResponseRedirect(url, status=303)


@membership_required
def alerts(request):
    membership = request.membership
    org = membership.org
    account = usage_selectors.account_for(org.pk)
    default_line = usage_selectors.low_balance_micros()
    own = account.low_balance_threshold_micros
    which = request.POST.get("form") if request.method == "POST" else None
    threshold_form = AlertThresholdForm(
        request.POST if which == "threshold" else None,
        initial={"threshold": credits_str(own) if own is not None else ""},
    )
    threshold_form.fields["threshold"].help_text = f"Leave empty for the default of {format_credits(default_line)} credits."
    pref = services.alert_preference_for(org, request.user)
    pref_form = AlertPreferenceForm(
        request.POST if which == "mine" else None,
        initial={"allowance_80": pref.allowance_80, "allowance_95": pref.allowance_95},
    )
    if which == "threshold":
        require_billing_role(request, "change the low-balance alert")
        if threshold_form.is_valid():
            threshold = threshold_form.cleaned_data["threshold"]
            try:
                services.alert_threshold_set(org=org, threshold_micros=threshold, actor=request.user)
            except TollgateError as error:
                threshold_form.add_error("threshold", error.message)
            else:
                messages.success(request, (
                    f"The balance now shows as low below {format_credits(threshold)} credits." if threshold is not None
                    else f"The balance shows as low below the default {format_credits(default_line)} credits."))
                return redirect("billing:alerts")
    elif which == "mine":
        if pref_form.is_valid():
            services.alert_preference_set(org=org, user=request.user, **pref_form.cleaned_data)
            messages.success(request, "Your allowance alerts are saved.")
            return redirect("billing:alerts")
    elif request.method == "POST":
        messages.error(request, "That form is out of date. Try again.")
        return redirect("billing:alerts")
    states = {s.kind: s for s in AlertState.objects.filter(org=org)}
    return render(request, "billing/settings_alerts.html", {
        "org": org, "threshold_form": threshold_form, "pref_form": pref_form, "can_edit": membership.can_manage_billing,
        "line_micros": usage_selectors.low_balance_micros(own), "own_line": own,
        "sent": [(kind, label, states.get(kind)) for kind, label in AlertKind.choices],
        "allowance": selectors.allowance_for(org.pk),
    })


@membership_required
def provider_keys(request):
    org = request.membership.org
    form = ProviderKeyForm(request.POST or None)
    if request.method == "POST":
        require_billing_role(request, "register provider keys")
        if form.is_valid():
            data = form.cleaned_data
            try:
                key = usage_services.provider_key_create(
                    org=org, provider=data["provider"], label=data["label"], last_four=data["last_four"],
                    actor=request.user,
                )
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Registered “{key.label}” (…{key.last_four}). Use its id {key.pk} as "
                                          "provider_key_id when recording usage made with it.")
                return redirect("billing:provider_keys")
    return render(request, "billing/settings_provider_keys.html", {
        "org": org, "form": form, "keys": usage_selectors.provider_keys(org, include_revoked=True).select_related("created_by"),
        "can_edit": request.membership.can_manage_billing,
    })


@membership_required
def member_usage(request):
    """Who pays for members' usage: the organization's balance, or each member's
    personal one. Everyone sees it and, in personal mode, what members' own
    balances paid this month (totals, never their balances); owners change it."""
    org = request.membership.org
    is_owner = request.membership.role == Role.OWNER
    form = MemberUsageForm(request.POST or None, initial={"member_usage": org.member_usage})
    if request.method == "POST":
        if not is_owner:
            raise PermissionDenied("Only owners can change who pays for members' usage.")
        if form.is_valid():
            try:
                org = org_services.org_member_usage_set(
                    org=org, member_usage=form.cleaned_data["member_usage"], user=request.user,
                )
            except TollgateError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "Each member now pays for their own usage from their personal balance."
                                 if org.member_usage == MemberUsage.PERSONAL
                                 else "The organization's balance now pays for everyone's usage.")
                return redirect("billing:member_usage")
    now = timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)  # UTC, as caps count it
    return render(request, "billing/settings_member_usage.html", {
        "org": org, "form": form, "can_edit": is_owner and not org.is_personal,
        "personal_mode": org.member_usage == MemberUsage.PERSONAL,
        "totals": usage_selectors.member_usage_totals(org=org, since=month),
    })


@require_POST
@membership_required
def provider_key_revoke(request, key_id: int):
    org = request.membership.org
    require_billing_role(request, "revoke provider keys")
    try:
        key = usage_services.provider_key_revoke(org=org, key_id=key_id, actor=request.user)
    except TollgateError as error:
        if error.status == 404:
            raise Http404(error.message) from None
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{key.label}” is revoked: usage that names it from now on is billed in full.")
    return redirect("billing:provider_keys")
