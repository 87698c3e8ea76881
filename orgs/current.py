"""The organization a signed-in user is working in on the pages.

Chosen on the organizations page and kept in the session; everything a page
shows or changes is scoped to it.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from orgs import selectors
from orgs.models import Membership

SESSION_KEY = "current_org_id"
_UNSET = object()


def current_membership(request) -> Membership | None:
    cached = getattr(request, "_current_membership", _UNSET)
    if cached is not _UNSET:
        return cached
    membership = None
    user = getattr(request, "user", None)
    # API calls act as an org's key, not a signed-in person: no current org here.
    if user is not None and user.is_authenticated and not request.path.startswith("/api/"):
        org_id = request.session.get(SESSION_KEY)
        # A link may name the org it is about (`?org=<slug>`, such as the 402's
        # top-up link for a member's personal balance): one of the user's own
        # organizations becomes the current one; any other slug is ignored.
        wanted = request.GET.get("org")
        if wanted:
            named = next((m for m in user_memberships(request) if m.org.slug == wanted), None)
            if named is not None:
                org_id = request.session[SESSION_KEY] = named.org_id
        if org_id:
            membership = next((m for m in user_memberships(request) if m.org_id == org_id), None)
        if membership is None:
            # No choice yet, or removed from the chosen org: fall back, never error.
            membership = selectors.default_membership(user)
            if membership is not None:
                request.session[SESSION_KEY] = membership.org_id
    request._current_membership = membership
    return membership


def user_memberships(request) -> list[Membership]:
    """Every membership of the signed-in user, read once per request: the
    current one is picked from them and the header's switcher lists them."""
    cached = getattr(request, "_user_memberships", None)
    if cached is None:
        cached = request._user_memberships = list(selectors.memberships_for_user(request.user))
    return cached


def switch_to(request, membership: Membership) -> None:
    request.session[SESSION_KEY] = membership.org_id
    request._current_membership = membership


def membership_required(view):
    """Sign-in required, and `request.membership` set to the current membership."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = current_membership(request)
        if membership is None:
            # Every user gets a personal org at sign-up; one who has left every
            # team and lost it somehow can make a new organization.
            return redirect("orgs:create")
        request.membership = membership
        return view(request, *args, **kwargs)

    return wrapper
