from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing_project.errors import TollgateError
from orgs import selectors, services
from orgs.current import membership_required, switch_to
from orgs.forms import OrgCreateForm, RoleForm
from orgs.models import Invitation, Membership

# The session key that keeps an invitation link opened while signed out, so
# that sign-up or login (in accounts) can accept it right after.
PENDING_INVITATION = "pending_invitation"


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
            return redirect("billing:members")
    return render(request, "orgs/org_create.html", {"form": form})


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
        return redirect("billing:members")
    role = form.cleaned_data["role"]
    _run(
        request,
        lambda: services.membership_change_role(org=org, actor=request.user, membership=target, role=role),
        f"{target.user.email} is now {dict(form.fields['role'].choices)[role].lower()}.",
    )
    return redirect("billing:members")


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
    return redirect("orgs:list" if leaving else "billing:members")


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
    return redirect("billing:members")


def invitation(request, token: str):
    """The link in an invitation e-mail. Signed in: accept with one click.
    Signed out: remember the token and accept right after sign-up or login."""
    try:
        invite = services.invitation_get(token=token)
    except TollgateError as error:
        return render(request, "orgs/invitation.html", {"error": error.message}, status=404)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except TollgateError as error:
            return render(request, "orgs/invitation.html", {"invite": invite, "error": error.message, "refusal": error},
                          status=error.status)
        switch_to(request, membership)
        return redirect("orgs:welcome", slug=membership.org.slug)
    if not request.user.is_authenticated:
        request.session[PENDING_INVITATION] = token
    return render(request, "orgs/invitation.html", {"invite": invite})


@login_required
def welcome(request, slug: str):
    """The first screen after joining through an invitation: who invited them,
    to what, as what, and what they can do next."""
    membership = selectors.membership_get_or_404(request.user, slug)
    invite = selectors.invitation_accepted(org=membership.org, user=request.user)
    return render(request, "orgs/welcome.html", {"joined": membership, "invite": invite})
