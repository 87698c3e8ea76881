from orgs.current import current_membership


def current_org(request):
    membership = current_membership(request)
    return {"membership": membership, "current_org": membership.org if membership else None}
