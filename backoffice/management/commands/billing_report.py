import json

from django.core.management.base import BaseCommand, CommandError

from backoffice.figures import selectors
from billing_project.errors import TollgateError


class Command(BaseCommand):
    help = (
        "The business figures of a month (this month by default): MRR and its movement, churn, trial "
        "conversion, payment failures, credits, usage patterns and webhook health. The same selectors as "
        "the admin's Business figures page; --json prints exactly its figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (UTC); default: this month, to date.")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")

    def handle(self, *args, month=None, json=False, **options):
        try:
            period = selectors.period_for(month)
        except TollgateError as error:
            raise CommandError(error.message) from error
        data = selectors.figures_data(selectors.figures(period))
        if json:
            self.stdout.write(_json_dumps(data))
            return
        self.stdout.write(_text(data))


def _json_dumps(data: dict) -> str:
    return json.dumps(data, indent=2)


def _pct(value: str | None) -> str:
    return "—" if value is None else f"{value}%"


def _text(d: dict) -> str:
    cur = d["currency"]
    m, ch, t, p, c, u, h = (d["mrr"], d["churn"], d["trials"], d["payments_last_30_days"], d["credits"],
                            d["usage_last_30_days"], d["health"])
    mv = m["movement"]
    lines = [
        f"Business figures for {d['month']} (as of {d['as_of']}), money in {cur}",
        "",
        f"MRR                 {m['mrr']} ({m['customers']} paying; {m['mrr_at_start']} at the start, "
        f"{m['customers_at_start']} paying)",
        *(f"  {name:<18}{mv[name]['orgs']:>6} orgs  {mv[name]['mrr']}"
          for name in ("new", "expansion", "reactivated", "contraction", "churned")),
        f"  {'net':<18}{'':>6}       {mv['net']}",
        f"Customer churn      {_pct(ch['customer_churn_percent'])} ({ch['customers_lost']} of {ch['customers_at_start']})",
        f"Revenue churn       {_pct(ch['revenue_churn_percent'])} ({ch['mrr_lost']} of {ch['mrr_at_start']})",
        f"Trial conversion    {_pct(t['conversion_percent'])} ({t['converted']} of {t['ended']} ended; "
        f"{t['running']} running)",
        f"Payment failures    {_pct(p['failure_percent'])} ({p['failures']} of {p['attempts']} in 30 days; "
        f"{p['recovered']} recovered, {p['recovered_amount']})",
        "",
        "Credits             credits / money",
        f"  sold              {c['sold']} / {c['sold_amount']} ({c['purchases']} purchases)",
        f"  granted by plans  {c['granted_by_plans']} / {c['granted_by_plans_value']}",
        f"  granted, trials   {c['granted_by_trials']}",
        f"  promotions        {c['granted_as_promotions']}",
        f"  consumed          {c['consumed']} / {c['consumed_value']}",
        f"  expired           {c['expired']} / {c['expired_value']}",
        f"  clawed back       {c['clawed_back']} / {c['clawed_back_value']}",
        f"  outstanding       {c['outstanding']} / {c['outstanding_value']}",
        f"  overage billed    {c['overage_billed']} / {c['overage_billed_amount']}",
        "",
        "Usage, last 30 days, by meter: " + (", ".join(f"{s['label']} {s['total']}" for s in u["by_meter"]["series"]) or "none"),
        "Usage, last 30 days, by model: " + (", ".join(f"{s['label']} {s['total']}" for s in u["by_model"]["series"]) or "none"),
        "Top organizations: " + (", ".join(f"{o['org']} {o['credits']}" for o in u["top_organizations"]) or "none"),
        "Flagged for unusual usage: " + (", ".join(f"{x['org']} ({x['occurrences']}x)" for x in u["flagged"]) or "none"),
        "",
        f"Stripe webhooks     {h['stripe_webhooks_24h']} in 24 h, {h['stripe_webhooks_30d']} in 30 days, "
        f"{h['stripe_webhooks_failed_30d']} failed, {h['stripe_webhooks_unprocessed']} not processed; "
        f"last {h['last_stripe_webhook_at'] or 'never'}",
        f"Outbound            {h['outbound_failed_30d']} deliveries failed in 30 days, {h['outbound_retrying']} retrying, "
        f"{h['outbound_endpoints_failing']} endpoints failing, {h['outbound_endpoints_disabled']} disabled",
    ]
    return "\n".join(lines)
