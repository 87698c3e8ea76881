"""A small stand-in for api.stripe.com behind `responses`.

The real stripe-python client and dj-stripe make real HTTP requests; this
answers them from an in-memory store of objects built by stripe_builders,
the way Stripe would: objects are fetched by id, creates return new objects,
a POST repeated with the same Idempotency-Key gets the first response back,
meter events are counted once per identifier, unknown ids are 404s. Tests
change "Stripe's current state" with `put()` and assert on `calls`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses

from tests.billing import stripe_builders as b

API = "https://api.stripe.com"

# URL path prefix -> the `object` Stripe names it.
RESOURCES = {
    "/v1/customers": "customer",
    "/v1/products": "product",
    "/v1/prices": "price",
    "/v1/checkout/sessions": "checkout.session",
    "/v1/billing_portal/sessions": "billing_portal.session",
    "/v1/subscriptions": "subscription",
    "/v1/subscription_items": "subscription_item",
    "/v1/invoices": "invoice",
    "/v1/payment_intents": "payment_intent",
    "/v1/payment_methods": "payment_method",
    "/v1/charges": "charge",
    "/v1/disputes": "dispute",
    "/v1/refunds": "refund",
    "/v1/webhook_endpoints": "webhook_endpoint",
    "/v1/billing/meters": "billing.meter",
    "/v1/billing/meter_events": "billing.meter_event",
    "/v1/tax/calculations": "tax.calculation",
    "/v1/coupons": "coupon",
    "/v1/promotion_codes": "promotion_code",
}


def decode_form(body: str | bytes | None) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[a]=1`, `line_items[0][price]=p`) back into nested data."""
    if isinstance(body, bytes):
        body = body.decode()
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body or "", keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts keyed 0..n (from `a[0]`, `a[1]`) become lists."""
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def _bool(value: Any) -> Any:
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


class FakeStripe:
    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.lock = threading.RLock()
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.idempotent: dict[str, tuple[int, str]] = {}
        # Meter events Stripe still dedupes by identifier (within its window), and every event it counted.
        self.meter_events: dict[str, dict] = {}
        self.meter_events_counted: list[dict] = []
        self.created: dict[str, list[dict]] = defaultdict(list)
        self.account = b.account()
        # What the next off-session PaymentIntent does: succeeded, card_declined, authentication_required, processing.
        self.payment_intent_outcome = "succeeded"
        self.tax_cents = 0
        self.tax_fails = False
        mock.add_callback(responses.GET, re.compile(rf"{API}/v1/.*"), callback=self._get)
        mock.add_callback(responses.POST, re.compile(rf"{API}/v1/.*"), callback=self._post)
        mock.add_callback(responses.DELETE, re.compile(rf"{API}/v1/.*"), callback=self._get)

    # --- the store ------------------------------------------------------------

    def put(self, obj: dict) -> dict:
        """Make `obj` Stripe's current state of that object."""
        with self.lock:
            self.objects[obj["id"]] = json.loads(json.dumps(obj))
        return obj

    def get(self, object_id: str) -> dict:
        return self.objects[object_id]

    def forget_keys(self) -> None:
        """A day has passed: Stripe no longer dedupes these idempotency keys and
        meter event identifiers (it keeps them for about 24 hours)."""
        with self.lock:
            self.idempotent.clear()
            self.meter_events.clear()

    def metered(self, customer: str) -> int:
        """What the meter counted for a customer: the sum of its events' values."""
        return sum(int(e["payload"]["value"]) for e in self.meter_events_counted
                   if e["payload"].get("stripe_customer_id") == customer)

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for m, p, _ in self.calls if m == method and p.startswith(path_prefix))

    # --- HTTP -----------------------------------------------------------------

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, dict, str]:
        return status, {"Content-Type": "application/json", "Request-Id": "req_test"}, json.dumps(body)

    def _missing(self, object_id: str, kind: str = "resource") -> tuple[int, dict, str]:
        return self._json(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                          "message": f"No such {kind}: '{object_id}'", "param": "id"}})

    def _get(self, request):
        url = urlsplit(request.url)
        params = decode_form(url.query)
        with self.lock:
            self.calls.append((request.method, url.path, params))
            if url.path == "/v1/account":
                return self._json(200, self.account)
            if url.path.startswith("/v1/accounts/"):
                return self._json(200, self.account)
            for prefix, kind in RESOURCES.items():
                if url.path == prefix:
                    return self._json(200, self._list(kind, params, prefix))
                if url.path.startswith(prefix + "/"):
                    object_id, _, sub = url.path[len(prefix) + 1:].partition("/")
                    if kind == "billing.meter" and sub == "event_summaries":
                        return self._meter_event_summaries(object_id, params, url.path)
                    if sub:  # a sub-list such as /v1/products/<id>/features: empty here
                        return self._json(200, b.stripe_list([], url.path))
                    if object_id in self.objects:
                        return self._json(200, self.objects[object_id])
                    return self._missing(object_id, kind)
        return self._missing(url.path)

    def _meter_event_summaries(self, meter_id: str, params: dict, path: str):
        meter = self.objects.get(meter_id)
        if meter is None:
            return self._missing(meter_id, "billing.meter")
        start, end = int(params["start_time"]), int(params["end_time"])
        if start % 60 or end % 60 or not params.get("customer"):
            return self._json(400, {"error": {"type": "invalid_request_error",
                                              "message": "start_time and end_time must be aligned with minute boundaries."}})
        value = sum(int(e["payload"]["value"]) for e in self.meter_events_counted
                    if e["event_name"] == meter["event_name"] and start <= e["timestamp"] < end
                    and e["payload"].get("stripe_customer_id") == params["customer"])
        summary = {"id": b.new_id("mtrusg"), "object": "billing.meter_event_summary", "aggregated_value": value,
                   "start_time": start, "end_time": end, "livemode": False, "meter": meter_id}
        return self._json(200, b.stripe_list([summary], path))

    def _list(self, kind: str, params: dict, prefix: str) -> dict:
        items = [o for o in self.objects.values() if o.get("object") == kind]
        flat = params
        lookup_keys = flat.get("lookup_keys") or []
        if lookup_keys:
            items = [o for o in items if o.get("lookup_key") in lookup_keys and o.get("active")]
        if "customer" in flat:
            items = [o for o in items if o.get("customer") == flat["customer"]]
        if "status" in flat and kind == "billing.meter":
            items = [o for o in items if o.get("status") == flat["status"]]
        items.sort(key=lambda o: o.get("created") or 0, reverse=True)
        return b.stripe_list(items, prefix)

    def _post(self, request):
        url = urlsplit(request.url)
        params = decode_form(request.body)
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            self.calls.append((request.method, url.path, params))
            # Stripe replays the first response, success or error, for a key it has seen.
            if key and key in self.idempotent:
                status, body = self.idempotent[key]
                return status, {"Content-Type": "application/json", "Idempotent-Replayed": "true"}, body
            status, headers, body = self._create_or_update(url.path, params)
            if key and status < 500:
                self.idempotent[key] = (status, body)
            return status, headers, body

    def _create_or_update(self, path: str, params: dict):
        for prefix, kind in RESOURCES.items():
            if path == prefix:
                return getattr(self, "_create_" + kind.replace(".", "_"))(params)
            if path.startswith(prefix + "/"):
                object_id = path[len(prefix) + 1:].split("/")[0]
                if object_id not in self.objects:
                    return self._missing(object_id, kind)
                obj = self.objects[object_id]
                for name, value in params.items():
                    if name in obj and name not in ("expand",):
                        obj[name] = _bool(value)
                return self._json(200, obj)
        return self._missing(path)

    def _store(self, obj: dict) -> tuple[int, dict, str]:
        self.objects[obj["id"]] = obj
        self.created[obj["object"]].append(obj)
        return self._json(200, obj)

    # --- creates ----------------------------------------------------------------

    def _create_customer(self, p: dict):
        return self._store(b.customer(email=p.get("email"), name=p.get("name"), metadata=p.get("metadata") or {}))

    def _create_product(self, p: dict):
        fields = {k: p[k] for k in ("id", "name", "description") if k in p}
        return self._store(b.product(metadata=p.get("metadata") or {}, **fields))

    def _create_price(self, p: dict):
        if _bool(p.get("transfer_lookup_key")) and p.get("lookup_key"):
            for other in self.objects.values():
                if other.get("object") == "price" and other.get("lookup_key") == p["lookup_key"]:
                    other["lookup_key"] = None
        recurring = p.get("recurring")
        if recurring:
            recurring = {"interval": recurring.get("interval"), "interval_count": 1, "meter": recurring.get("meter"),
                         "usage_type": recurring.get("usage_type", "licensed"), "trial_period_days": None}
        amount = p.get("unit_amount")
        return self._store(b.price(
            product=p["product"], currency=p.get("currency", "usd"), lookup_key=p.get("lookup_key"),
            nickname=p.get("nickname"), tax_behavior=p.get("tax_behavior", "unspecified"),
            unit_amount=int(amount) if amount is not None else None,
            unit_amount_decimal=p.get("unit_amount_decimal") or (str(amount) if amount is not None else None),
            recurring=recurring, type="recurring" if recurring else "one_time", metadata=p.get("metadata") or {},
        ))

    def _create_subscription_item(self, p: dict):
        """Adds the item to the subscription, as Stripe does (the price must exist; one item per price)."""
        sub = self.objects.get(p.get("subscription", ""))
        if sub is None:
            return self._missing(p.get("subscription", ""), "subscription")
        price = self.objects.get(p.get("price", ""))
        if price is None:
            return self._missing(p.get("price", ""), "price")
        items = sub["items"]["data"]
        if any(item["price"]["id"] == price["id"] for item in items):
            return self._json(400, {"error": {"type": "invalid_request_error", "param": "price",
                                              "message": "Cannot add multiple subscription items with the same price."}})
        first = items[0]
        item = b.subscription_item(price_data=price, subscription_id=sub["id"],
                                   period_start=first["current_period_start"], period_end=first["current_period_end"])
        items.append(item)
        return self._store(item)

    def _create_billing_meter(self, p: dict):
        return self._store(b.meter(event_name=p["event_name"], display_name=p.get("display_name", "")))

    def _create_billing_meter_event(self, p: dict):
        identifier = p.get("identifier") or b.new_id("mev")
        if identifier in self.meter_events:
            return self._json(400, {"error": {"type": "invalid_request_error", "code": "duplicate_meter_event",
                                              "message": "An event with this identifier already exists."}})
        event = b.meter_event(event_name=p["event_name"], identifier=identifier, payload=p.get("payload") or {},
                              timestamp=int(p.get("timestamp") or b.now()))
        self.meter_events[identifier] = event
        self.meter_events_counted.append(event)
        return self._json(200, event)

    def _create_webhook_endpoint(self, p: dict):
        endpoint = b.webhook_endpoint(url=p["url"], enabled_events=p.get("enabled_events") or [],
                                      metadata=p.get("metadata") or {}, api_version=p.get("api_version"))
        self.objects[endpoint["id"]] = endpoint
        # Stripe shows the signing secret in the create response only.
        return self._json(200, {**endpoint, "secret": "whsec_" + b.new_id("sec")})

    def _create_checkout_session(self, p: dict):
        session = b.checkout_session(
            mode=p.get("mode"), customer=p.get("customer"), metadata=p.get("metadata") or {},
            client_reference_id=p.get("client_reference_id"), success_url=p.get("success_url"),
            cancel_url=p.get("cancel_url"),
        )
        session["url"] = f"https://checkout.stripe.com/c/pay/{session['id']}"
        self.created["checkout.session.params"].append(p)
        return self._store(session)

    def _create_billing_portal_session(self, p: dict):
        return self._store(b.portal_session(customer=p["customer"], return_url=p.get("return_url")))

    def _create_tax_calculation(self, p: dict):
        if self.tax_fails:
            return self._json(400, {"error": {"type": "invalid_request_error", "code": "customer_tax_location_invalid",
                                              "message": "We could not determine the customer's tax location."}})
        amount = sum(int(item["amount"]) for item in p.get("line_items", []))
        return self._store(b.tax_calculation(amount=amount, tax=self.tax_cents, customer=p.get("customer")))

    def _create_refund(self, p: dict):
        intent = self.objects.get(p.get("payment_intent", ""))
        charge = self.objects.get(intent.get("latest_charge") or "") if intent else None
        if charge is None:
            return self._missing(p.get("payment_intent", ""), "payment_intent")
        amount = int(p.get("amount") or charge["amount"] - charge["amount_refunded"])
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self._store(b.refund(amount=amount, charge=charge["id"], payment_intent=intent["id"],
                                    metadata=p.get("metadata") or {}))

    def _create_payment_intent(self, p: dict):
        outcome = self.payment_intent_outcome
        intent = b.payment_intent(
            amount=int(p["amount"]), currency=p.get("currency", "usd"), customer=p.get("customer"),
            payment_method=p.get("payment_method"), metadata=p.get("metadata") or {}, description=p.get("description"),
            status={"succeeded": "succeeded", "processing": "processing", "card_declined": "requires_payment_method",
                    "authentication_required": "requires_action"}[outcome],
            amount_received=int(p["amount"]) if outcome == "succeeded" else 0,
        )
        self.created["payment_intent.params"].append(p)
        if outcome == "succeeded":
            charge = b.charge(amount=intent["amount"], payment_intent=intent["id"], customer=intent["customer"])
            self.objects[charge["id"]] = charge
            intent["latest_charge"] = charge["id"]
        if outcome in ("card_declined", "authentication_required"):
            code = "card_declined" if outcome == "card_declined" else "authentication_required"
            intent["last_payment_error"] = {"type": "card_error", "code": code, "message": "Your card was declined.",
                                            "decline_code": "insufficient_funds" if code == "card_declined" else None}
            self._store(intent)
            return self._json(402, {"error": {
                "type": "card_error", "code": code, "message": "Your card was declined.",
                "decline_code": "insufficient_funds" if code == "card_declined" else None, "payment_intent": intent,
            }})
        return self._store(intent)


def start() -> tuple[responses.RequestsMock, FakeStripe]:
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.start()
    return mock, FakeStripe(mock)
