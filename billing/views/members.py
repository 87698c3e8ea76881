"""The members page: orgs' people and invitations beside each member's spend
this month and monthly cap, which come from the ledger. It lives here, above
both orgs and usage, so that orgs never reaches up for the spend column; the
role, removal and invitation actions the page posts to stay in orgs."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing.forms import MemberLimitForm
from billing_project.errors import TollgateError
from orgs import selectors as org_selectors
from orgs import services as org_services
from orgs.current import membership_required
from orgs.forms import InviteForm, RoleForm
from orgs.models import Membership, Role
from usage import selectors as usage_selectors
from usage import services as usage_services
from usage.units import format_credits


@membership_required
def members(request):
    membership = request.membership
    org = membership.org
    invite_form = InviteForm(request.POST or None)
    refusal = None
    if request.method == "POST" and not membership.can_manage_members:
        messages.error(request, "Only owners and admins can invite people.")
        return redirect("billing:members")
    if request.method == "POST" and invite_form.is_valid():
        try:
            org_services.invitation_create(
                org=org, actor=request.user, email=invite_form.cleaned_data["email"], role=invite_form.cleaned_data["role"]
            )
        except TollgateError as error:
            invite_form.add_error(None, error.message)
            refusal = error  # a plan's member cap links to the plan that allows more
        else:
            messages.success(request, f"Invitation sent to {invite_form.cleaned_data['email']}.")
            return redirect("billing:members")
    members = list(org_selectors.members_of(org))
    if not org.is_personal:
        # Each member's spend this month and cap, from the ledger (one query each for spend, holds and caps).
        spend = {row.member_id: row for row in usage_selectors.member_spend(org, memberships=members)}
        for m in members:
            m.spend = spend.get(m.user_id)
    return render(
        request,
        "orgs/members.html",
        {
            "org": org,
            "members": members,
            "invitations": org_selectors.open_invitations(org) if membership.can_manage_members else [],
            "invite_form": invite_form,
            "refusal": refusal,
            "role_form": RoleForm(),
            # The last owner is not offered "Leave": the service would refuse it.
            "sole_owner": membership.role == Role.OWNER and sum(m.role == Role.OWNER for m in members) == 1,
        },
    )


@require_POST
@membership_required
def member_limit(request, member_id: int):
    """Set or clear a member's monthly spend cap (owners and admins)."""
    org = request.membership.org
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, org=org)
    form = MemberLimitForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cap for {target.user.email}: {form.errors['limit'][0]}")
        return redirect("billing:members")
    limit = form.cleaned_data["limit"]
    try:
        usage_services.member_limit_set(org=org, member=target.user, monthly_limit_micros=limit, actor=request.user)
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"{target.user.email} may now spend up to {format_credits(limit)} credits a month." if limit is not None
            else f"{target.user.email} has no monthly cap now.",
        )
    return redirect("billing:members")
