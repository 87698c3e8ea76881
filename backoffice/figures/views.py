"""The business figures page, in the admin's frame (staff only: the URL list
wraps it in `admin.site.admin_view`)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from backoffice.figures import selectors
from billing_project.errors import InvalidRequest
from usage.units import credits_str

CHART_PALETTE = ["#3046c5", "#e19a1b", "#11784a", "#b42318", "#7c3aed", "#0e7490"]
OTHER_COLOUR = "#9aa4b2"


def _colours(chart: selectors.Chart) -> list[str]:
    return [OTHER_COLOUR if s.key is None else CHART_PALETTE[i % len(CHART_PALETTE)] for i, s in enumerate(chart.series)]


def _chart_data(chart: selectors.Chart) -> dict:
    """What static/js/figures_charts.js draws: credits as exact decimal strings
    (Chart.js reads numeric strings), never a Python float."""
    return {
        "labels": [d.strftime("%b %-d") for d in chart.days],
        "series": [{"label": s.label, "data": [credits_str(v) for v in s.values], "colour": colour}
                   for s, colour in zip(chart.series, _colours(chart))],
    }


def figures_page(request: HttpRequest) -> HttpResponse:
    month = request.GET.get("month") or None
    try:
        period = selectors.period_for(month)
    except InvalidRequest as error:
        period, problem = selectors.period_for(None), str(error)
    else:
        problem = ""
    figures = selectors.figures(period)
    charts = [
        ("meter", "Credits used by meter", figures.patterns.by_meter),
        ("model", "Credits used by model", figures.patterns.by_model),
    ]
    return render(request, "backoffice/figures/dashboard.html", {
        **admin.site.each_context(request),
        "title": f"Business figures, {period.start:%B %Y}",
        "f": figures,
        "problem": problem,
        "charts": [{"key": key, "title": title, "chart": chart, "data": _chart_data(chart),
                    "data_id": f"chart-{key}-data", "legend": list(zip(chart.series, _colours(chart)))}
                   for key, title, chart in charts],
    }, status=400 if problem else 200)
