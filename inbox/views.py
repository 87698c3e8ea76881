from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from inbox import selectors, services
from inbox.models import InboxItem
from orgs.current import membership_required


@membership_required
def inbox(request):
    items = InboxItem.objects.for_person(user=request.user, org=request.membership.org)
    page = Paginator(items, 30).get_page(request.GET.get("page"))
    return render(request, "inbox/list.html", {"page": page, "org": request.membership.org})


@require_POST
@membership_required
def item_read(request, item_id: int):
    item = services.inbox_item_read(user=request.user, org=request.membership.org, item_id=item_id)
    if item is None:
        raise Http404
    # "Open" marks it read and goes to the page that fixes the problem.
    if request.POST.get("go") and item.link:
        return redirect(item.link)
    return redirect("inbox:list")


@require_POST
@membership_required
def read_all(request):
    services.inbox_read_all(user=request.user, org=request.membership.org)
    messages.success(request, "All notifications marked read.")
    return redirect("inbox:list")


@membership_required
def preferences(request):
    membership = request.membership
    if request.method == "POST":
        # A checkbox that is not ticked is not posted: every box not named here is off.
        checked = {tuple(name.split(":", 1)) for name in request.POST if ":" in name}
        services.preferences_save(membership=membership, checked=checked)
        messages.success(request, "Your notification preferences are saved.")
        return redirect("inbox:preferences")
    return render(request, "inbox/preferences.html", {
        "groups": selectors.preference_groups(membership), "org": membership.org,
    })
