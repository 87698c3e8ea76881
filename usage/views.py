"""Pages of the usage app: resuming an API key the runaway breaker paused (a button
on the API keys page, which belongs to accounts; the resume announces a usage happening)."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from billing_project.errors import NotFound, TollgateError
from orgs.current import membership_required
from usage import services


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
