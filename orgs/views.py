from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing_project.errors import TollgateError
from orgs import selectors, services
from orgs.current import membership_required, switch_to
from orgs.forms import InviteForm, OrgCreateForm, RoleForm
from orgs.models import Invitation, Membership


@membership_required
def org_list(request):
    return render(request, "orgs/org_list.html", {"memberships": selectors.memberships_for_user(request.user)})


@require_POST
@login_required
def org_switch(request, slug: str):
    membership = selectors.membership_get_or_404(request.user, slug)
    switch_to(request, membership)
    messages.success(request, f"Now working in {membership.org.name}.")
    return redirect("billing:overview")


@login_required
def org_create(request):
    form = OrgCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.org_create(name=form.cleaned_data["name"], owner=request.user)
        except TollgateError as error:
            form.add_error(None, error.message)
        else:
            switch_to(request, selectors.membership_for(request.user, org))
            messages.success(request, f"{org.name} is ready. Invite your team below.")
            return redirect("orgs:members")
    return render(request, "orgs/org_create.html", {"form": form})


@membership_required
def members(request):
    membership = request.membership
    org = membership.org
    invite_form = InviteForm(request.POST or None)
    if request.method == "POST" and not membership.can_manage_members:
        messages.error(request, "Only owners and admins can invite people.")
        return redirect("orgs:members")
    if request.method == "POST" and invite_form.is_valid():
        try:
            services.invitation_create(
                org=org, actor=request.user, email=invite_form.cleaned_data["email"], role=invite_form.cleaned_data["role"]
            )
        except TollgateError as error:
            invite_form.add_error(None, error.message)
        else:
            messages.success(request, f"Invitation sent to {invite_form.cleaned_data['email']}.")
            return redirect("orgs:members")
    members = list(selectors.members_of(org))
    if not org.is_personal:
        # Each member's spend this month and cap, from the ledger (one query each for spend, holds and caps).
        from usage.selectors import member_spend

        spend = {row.member_id: row for row in member_spend(org, memberships=members)}
        for m in members:
            m.spend = spend.get(m.user_id)
    return render(
        request,
        "orgs/members.html",
        {
            "org": org,
            "members": members,
            "invitations": selectors.open_invitations(org) if membership.can_manage_members else [],
            "invite_form": invite_form,
            "role_form": RoleForm(),
        },
    )


@require_POST
@membership_required
def member_limit(request, member_id: int):
    """Set or clear a member's monthly spend cap (owners and admins)."""
    from billing.forms import MemberLimitForm
    from usage.services import member_limit_set

    org = request.membership.org
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, org=org)
    form = MemberLimitForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Cap for {target.user.email}: {form.errors['limit'][0]}")
        return redirect("orgs:members")
    limit = form.cleaned_data["limit"]
    from usage.units import format_credits

    _run(
        request,
        lambda: member_limit_set(org=org, member=target.user, monthly_limit_micros=limit, actor=request.user),
        f"{target.user.email} may now spend up to {format_credits(limit)} credits a month." if limit is not None
        else f"{target.user.email} has no monthly cap now.",
    )
    return redirect("orgs:members")


def _run(request, action, success: str):
    try:
        action()
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)


@require_POST
@membership_required
def member_role(request, member_id: int):
    org = request.membership.org
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, org=org)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return redirect("orgs:members")
    role = form.cleaned_data["role"]
    _run(
        request,
        lambda: services.membership_change_role(org=org, actor=request.user, membership=target, role=role),
        f"{target.user.email} is now {dict(form.fields['role'].choices)[role].lower()}.",
    )
    return redirect("orgs:members")


@require_POST
@membership_required
def member_remove(request, member_id: int):
    org = request.membership.org
    target = get_object_or_404(Membership.objects.select_related("user"), pk=member_id, org=org)
    leaving = target.user_id == request.user.pk
    _run(
        request,
        lambda: services.membership_remove(org=org, actor=request.user, membership=target),
        f"You left {org.name}." if leaving else f"{target.user.email} was removed from {org.name}.",
    )
    return redirect("orgs:list" if leaving else "orgs:members")


@require_POST
@membership_required
def invitation_revoke(request, invitation_id: int):
    org = request.membership.org
    invitation = get_object_or_404(Invitation, pk=invitation_id, org=org)
    _run(
        request,
        lambda: services.invitation_revoke(org=org, actor=request.user, invitation=invitation),
        f"Invitation to {invitation.email} withdrawn.",
    )
    return redirect("orgs:members")


def invitation(request, token: str):
    """The link in an invitation e-mail. Signed in: accept with one click.
    Signed out: remember the token and accept right after sign-up or login."""
    from accounts.views import PENDING_INVITATION

    try:
        invite = services.invitation_get(token=token)
    except TollgateError as error:
        return render(request, "orgs/invitation.html", {"error": error.message}, status=404)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except TollgateError as error:
            return render(request, "orgs/invitation.html", {"invite": invite, "error": error.message}, status=error.status)
        switch_to(request, membership)
        messages.success(request, f"You joined {membership.org.name}.")
        return redirect("billing:overview")
    if not request.user.is_authenticated:
        request.session[PENDING_INVITATION] = token
    return render(request, "orgs/invitation.html", {"invite": invite})
