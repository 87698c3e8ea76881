"""Settings → Webhooks: owners and admins manage the org's endpoints and read the delivery log."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from billing_project.errors import TollgateError
from orgs.current import membership_required
from orgs.models import Role
from outbound import selectors, services
from outbound.forms import EndpointForm

MANAGE_WEBHOOKS = frozenset({Role.OWNER, Role.ADMIN})


def _require_manager(request) -> None:
    if request.membership.role not in MANAGE_WEBHOOKS:
        raise PermissionDenied("Only owners and admins manage webhooks.")


def _endpoint(request, endpoint_id: int):
    try:
        return selectors.endpoint_get(org_id=request.membership.org_id, endpoint_id=endpoint_id)
    except TollgateError:
        raise Http404("No such webhook endpoint.") from None


@membership_required
def webhooks(request):
    _require_manager(request)
    org = request.membership.org
    form = EndpointForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint = services.endpoint_create(org=org, url=data["url"], events=data["events"],
                                                description=data["description"], actor=request.user)
        except TollgateError as error:
            form.add_error("url" if error.code == "invalid_url" else None, error.message)
        else:
            new_secret, form = endpoint.secret, EndpointForm()
    return render(request, "outbound/webhooks.html", {
        "org": org, "form": form, "endpoints": selectors.endpoints_for(org.pk), "new_secret": new_secret,
    })


@membership_required
def webhook_detail(request, endpoint_id: int):
    _require_manager(request)
    endpoint = _endpoint(request, endpoint_id)
    new_secret = request.session.pop(f"webhook_secret_{endpoint.pk}", None)
    return render(request, "outbound/webhook_detail.html", {
        "org": request.membership.org, "endpoint": endpoint, "deliveries": selectors.deliveries_recent(endpoint),
        "new_secret": new_secret,
    })


@require_POST
@membership_required
def webhook_rotate(request, endpoint_id: int):
    _require_manager(request)
    endpoint = services.endpoint_secret_rotate(endpoint=_endpoint(request, endpoint_id), actor=request.user)
    # Shown once, on the page the redirect opens.
    request.session[f"webhook_secret_{endpoint.pk}"] = endpoint.secret
    messages.success(request, "New secret made. The previous one keeps signing beside it for 24 hours.")
    return redirect("outbound:webhook_detail", endpoint.pk)


@require_POST
@membership_required
def webhook_enable(request, endpoint_id: int):
    _require_manager(request)
    endpoint = services.endpoint_enable(endpoint=_endpoint(request, endpoint_id), actor=request.user)
    messages.success(request, "Enabled: new events are sent to it again.")
    return redirect("outbound:webhook_detail", endpoint.pk)


@require_POST
@membership_required
def webhook_delete(request, endpoint_id: int):
    _require_manager(request)
    endpoint = _endpoint(request, endpoint_id)
    services.endpoint_delete(endpoint=endpoint, actor=request.user)
    messages.success(request, f"Deleted {endpoint.url}.")
    return redirect("outbound:webhooks")


@require_POST
@membership_required
def delivery_resend(request, delivery_id: int):
    _require_manager(request)
    try:
        delivery = selectors.delivery_get(org_id=request.membership.org_id, delivery_id=delivery_id)
    except TollgateError:
        raise Http404("No such delivery.") from None
    try:
        services.delivery_resend(delivery=delivery, actor=request.user)
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{delivery.event.public_id} is on its way again.")
    return redirect("outbound:webhook_detail", delivery.endpoint_id)
