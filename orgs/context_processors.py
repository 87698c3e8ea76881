from orgs.current import current_membership, user_memberships


def current_org(request):
    membership = current_membership(request)
    return {
        "membership": membership,
        "current_org": membership.org if membership else None,
        # The header's switcher; read with the current membership, in one query.
        "org_memberships": user_memberships(request) if membership else (),
    }
