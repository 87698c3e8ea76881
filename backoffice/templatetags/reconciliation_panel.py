"""The admin front page's reconciliation panel reads the last run through this
tag: the admin's index view is Django's, so the panel fetches its own data."""

from django import template

from billing import selectors

register = template.Library()


@register.simple_tag
def reconciliation_last():
    """The last finished run and its drift by kind (billing.selectors.reconciliation_last), or None."""
    return selectors.reconciliation_last()
