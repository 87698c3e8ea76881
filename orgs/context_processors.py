from orgs.current import current_membership
from orgs.selectors import memberships_for_user


def current_org(request):
    membership = current_membership(request)
    return {
        "membership": membership,
        "current_org": membership.org if membership else None,
        # The header's switcher; a queryset, so pages without the header never run it.
        "org_memberships": memberships_for_user(request.user) if membership else (),
    }
