from django.shortcuts import render

from orgs import selectors
from orgs.current import membership_required


@membership_required
def overview(request):
    org = request.membership.org
    return render(
        request,
        "billing/overview.html",
        {"org": org, "member_count": selectors.members_of(org).count()},
    )
