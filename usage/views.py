"""Pages of the usage app: resuming an API key the runaway breaker paused, and
setting a key's monthly limit and meters (forms on the API keys page, which
belongs to accounts; the resume announces a usage happening, the limit is
changed under the account lock)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.forms import APIKeyBudgetForm
from billing_project.errors import NotFound, TollgateError
from orgs.current import membership_required
from usage import services
from usage.units import credits_str


@require_POST
@membership_required
def api_key_resume(request, prefix: str):
    try:
        key = services.api_key_resume(org=request.membership.org, prefix=prefix, actor=request.user)
    except NotFound:
        raise Http404("No such API key in this organization.") from None
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Key “{key.name}” ({key.prefix}…) is resumed: its usage is accepted again.")
    return redirect("keys:list")


@require_POST
@membership_required
def api_key_budget(request, prefix: str):
    """The keys page's form for one key's monthly limit and meters (see
    usage.services.api_key_budget_set, which takes the account lock)."""
    form = APIKeyBudgetForm(request.POST, prefix=prefix)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect("keys:list")
    try:
        key = services.api_key_budget_set(
            org=request.membership.org, prefix=prefix, monthly_limit_micros=form.cleaned_data["monthly_limit"],
            meters=form.cleaned_data.get("meters", []), actor=request.user,
        )
    except NotFound:
        raise Http404("No such API key in this organization.") from None
    except TollgateError as error:
        messages.error(request, error.message)
    else:
        limit = (f"a monthly limit of {credits_str(key.monthly_limit_micros)} credits"
                 if key.monthly_limit_micros is not None else "no monthly limit")
        meters = ", ".join(key.meters) if key.meters else "every meter"
        messages.success(request, f"Key “{key.name}” ({key.prefix}…) now has {limit} and may record {meters}.")
    return redirect("keys:list")
