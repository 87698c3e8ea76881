"""The reconciliation page: runs of `stripe_reconcile`, the drift of one of them
with links to both sides, and "run now". Staff only, in the admin's frame."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_http_methods

from billing import selectors, tasks
from billing_project.errors import NotFound


@require_http_methods(["GET", "POST"])
def reconciliation(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # The run takes as long as the tables are large: a worker does it, not this request.
        tasks.stripe_reconcile.delay(trigger=f"staff:{request.user.get_username()}"[:64])
        messages.success(request, "Reconciliation started. It is listed below when it finishes; reload the page.")
        return redirect("backoffice:reconciliation")
    runs = selectors.reconciliation_runs()
    chosen = request.GET.get("run", "")
    if chosen:
        try:
            run = selectors.reconciliation_run(int(chosen))
        except (ValueError, NotFound):
            raise Http404("No such reconciliation run.") from None
    else:
        run = selectors.reconciliation_last_run()
    context = {
        **admin.site.each_context(request),
        "title": "Reconciliation with Stripe",
        "runs": runs,
        "run": run,
        "findings": selectors.reconciliation_findings(run) if run else [],
        "checked": [(name.replace("_", " "), n) for name, n in sorted((run.checked if run else {}).items())],
    }
    return TemplateResponse(request, "backoffice/reconciliation/index.html", context)
