from billing import selectors
from orgs.current import current_membership
from usage.errors import TOP_UP_PATH


def header_balance(request) -> dict:
    """The balance indicator in the site header of every signed-in page."""
    membership = current_membership(request)  # cached on the request by orgs' processor
    if membership is None:
        return {}
    return {"header_balance": selectors.header_balance(membership.org_id), "top_up_url": TOP_UP_PATH}
