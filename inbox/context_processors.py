from inbox.models import InboxItem
from orgs.current import current_membership


def unread_count(request) -> dict:
    """The bell in the header: one COUNT on a partial index, on every signed-in page."""
    membership = current_membership(request)  # cached on the request by orgs' processor
    if membership is None:
        return {}
    return {"inbox_unread": InboxItem.objects.for_person(user=request.user, org=membership.org).unread().count()}
