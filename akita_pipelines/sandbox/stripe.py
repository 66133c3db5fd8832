"""Stripe API emulator: customers, subscriptions, invoices and the events feed.

Follows the real wire protocol (docs.stripe.com/api, the 2023-08-16 OpenAPI description in
``shared/provider-specs/stripe``) closely enough for the official ``stripe`` Python client:

==========================================  ================================================
``GET /v1/customers``                       newest first; ``limit`` (1–100, default 10),
``GET /v1/subscriptions``                   ``starting_after`` / ``ending_before``,
``GET /v1/invoices``                        ``created`` or ``created[gt|gte|lt|lte]``;
                                            subscriptions hide canceled ones unless
                                            ``status=all`` (or ``canceled``), as Stripe does
``GET /v1/{customers|subscriptions|invoices}/<id>``  one object; a deleted customer is
                                            ``{"id", "object", "deleted": true}``
``POST /v1/customers[/<id>]``               create / update (form-encoded, ``metadata[k]``)
``DELETE /v1/customers/<id>``               delete (a ``customer.deleted`` event)
``GET /v1/events``                          the same paging, ``type`` (``*`` wildcards),
                                            ``types[]`` (≤ 20); only the last 30 days exist
``GET /v1/events/<id>``                     one event (404 once older than the retention)
``/__sandbox/...``                          admin, no auth (see ``_admin``)
==========================================  ================================================

Auth is a secret key, ``Authorization: Bearer sk_test_…`` or HTTP Basic with the key as the
user name. Keys do not expire: :meth:`StripeEmulator.expire_tokens` rolls the key, as a
customer does in the Dashboard, and the old one then answers 401 ``api_key_expired``. Every
error is Stripe's body ``{"error": {"type", "message", "code"?, "param"?, "doc_url"?}}``;
throttling is 429 ``rate_limit``. Each change appends an event whose ``data.object`` is the
object as it is after the change (``previous_attributes`` on ``*.updated``), so the newest
event of an object always shows its current state.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import re
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.admin import serve
from akita_pipelines.sandbox.churn import ChurnMeter
from akita_pipelines.sandbox.emulator import AdminSurface, own_name
from akita_pipelines.sandbox.webhooks import (
    WebhookOutbox,
    WebhookSubscription,
    json_body,
    subscription_answer,
)
from akita_pipelines.sandbox.world import PersonView, World

API_VERSION = "2023-08-16"
PROVIDER = "stripe"
DEFAULT_LIMIT, MAX_LIMIT, MAX_EVENT_TYPES = 10, 100, 20


@dataclass(frozen=True)
class Resource:
    """One Stripe resource as the emulator serves it."""

    path: str  # ``customers``
    object: str  # ``customer``
    prefix: str  # id prefix, ``cus``
    events: str  # event type prefix, ``customer`` → ``customer.created``
    deletable: bool  # ``<events>.deleted`` removes the object (a canceled subscription stays)


RESOURCES: dict[str, Resource] = {r.path: r for r in (
    Resource("customers", "customer", "cus", "customer", True),
    Resource("subscriptions", "subscription", "sub", "customer.subscription", False),
    Resource("invoices", "invoice", "in", "invoice", True),
)}
#: Akita interaction type → Stripe resource (the resource names are accepted as well).
TYPES = {"accounts": "customers", "subscriptions": "subscriptions", "invoices": "invoices"}
_ALNUM = string.ascii_letters + string.digits
_PLANS = [("price_starter", "Starter", 4900), ("price_growth", "Growth", 19900),
          ("price_enterprise", "Enterprise", 99900)]


def unix(value: datetime) -> int:
    """Seconds since the epoch, as every Stripe timestamp."""
    return int(value.timestamp())


class StripeError(Exception):
    """An error Stripe would answer: rendered as its ``{"error": …}`` body."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type_, code, param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": str(self)}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def _no_such(resource: Resource, object_id: str, param: str = "id") -> StripeError:
    return StripeError(404 if param == "id" else 400,
                       f"No such {resource.object}: '{object_id}'", code="resource_missing",
                       param=param)


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket encoding → nested values.

    ``created[gte]=1`` → ``{"created": {"gte": "1"}}``; ``types[]=a&types[]=b`` and
    ``types[0]=a&types[1]=b`` → ``{"types": ["a", "b"]}``; ``metadata[k]=v`` → a dict.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        name, _, rest = key.partition("[")
        if not rest:
            out[name] = value
            continue
        inner = rest.rstrip("]").split("][")[0]
        if inner == "" or inner.isdigit():
            existing = out.setdefault(name, [])
            if isinstance(existing, list):
                existing.append(value)
        else:
            existing = out.setdefault(name, {})
            if isinstance(existing, dict):
                existing[inner] = value
    return out


def _integer(value: Any, param: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def _created_filter(value: Any) -> Callable[[int], bool]:
    """``created=<int>`` or ``created[gt|gte|lt|lte]=<int>`` as a predicate on ``created``."""
    if value is None:
        return lambda _created: True
    if not isinstance(value, dict):
        exact = _integer(value, "created")
        return lambda created: created == exact
    ops: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    checks: list[tuple[Callable[[int, int], bool], int]] = []
    for op, bound in value.items():
        if op not in ops:
            raise StripeError(400, f"Received unknown parameter: created[{op}]",
                              param=f"created[{op}]")
        checks.append((ops[op], _integer(bound, f"created[{op}]")))
    return lambda created: all(check(created, bound) for check, bound in checks)


def _type_filter(single: Any, many: Any) -> Callable[[str], bool]:
    if single is not None and many is not None:
        raise StripeError(400, "You may only specify one of these parameters: type, types.",
                          param="types")
    patterns = [single] if single is not None else many
    if patterns is None:
        return lambda _type: True
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise StripeError(400, "Invalid array", param="types")
    if len(patterns) > MAX_EVENT_TYPES:
        raise StripeError(400, f"You may pass at most {MAX_EVENT_TYPES} types.", param="types")
    compiled = [re.compile(re.escape(p).replace(r"\*", "[^ ]*") + "$") for p in patterns]
    return lambda type_: any(c.match(type_) for c in compiled)


class StripeEmulator(AdminSurface):
    """A Stripe account over one :class:`World`, served by ``wsgi_app``, with a Python API.

    Args:
        world: The seeded world; customers are ``world.view("stripe", coverage)``'s companies,
            billed to one of their people (a work or a free-mail address, or none).
        api_key: The secret key the demo integration starts with.
        token_ttl_seconds: Accepted for the emulator contract; Stripe keys do not expire.
        churn_per_minute: Objects changed (80 %) or created (20 %) per minute of clock time,
            applied lazily on each request, stamped spread over the elapsed time.
        clock: Returns the current aware datetime; a fake clock lets tests move time.
        coverage: Share of the world's companies that are Stripe customers.
        event_retention_days: How long events stay listable (Stripe: 30 days).
    """

    #: ``rate_limit`` (429 ``rate_limit``), ``server_error`` (500 ``api_error``), ``truncated``
    #: (a cut JSON body) or ``bad_record`` (the first object of the next non-empty list page,
    #: or of the next event's ``data.object``, loses its ``id``).
    FAULTS = AdminSurface.FAULTS

    def __init__(self, world: World, *, api_key: str = "sk_test_51AkitaDemoKey0000000000",
                 token_ttl_seconds: float = 3600, churn_per_minute: float = 0.0,
                 clock: Callable[[], datetime] | None = None, coverage: float = 0.7,
                 event_retention_days: float = 30) -> None:
        del token_ttl_seconds  # secret keys have no lifetime
        self.world = world
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.api_key = api_key
        self.revoked_keys: set[str] = set()
        self.retention = timedelta(days=event_retention_days)
        self.churn_per_minute = churn_per_minute
        self.stats: dict[str, int] = {"requests": 0, "list_calls": 0, "event_calls": 0,
                                      "rejected_keys": 0}
        self.faults: list[str] = []
        self.objects: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RESOURCES}
        #: Deleted objects: resource → id → (deleted at, the object as it was).
        self.deleted: dict[str, dict[str, tuple[int, dict[str, Any]]]] = {
            r: {} for r in RESOURCES}
        #: Creation order of every object ever made, the tie-break of the list order.
        self.order: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        self.truth: dict[tuple[str, str, str], str] = {}
        self.rng = random.Random(f"{world.seed}:stripe:churn")
        self._ids = random.Random(f"{world.seed}:stripe:ids")
        self._sequence = 0
        self._churn_meter = ChurnMeter(churn_per_minute, self.clock())
        self.webhooks = WebhookOutbox(
            clock=self.clock, sign=stripe_signature, render=lambda events, _: json_body(events[0]),
            retry=stripe_retry, timeout_seconds=10,
            user_agent="Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        self._seed(coverage)

    # -- seeding ---------------------------------------------------------------------------
    def _new_id(self, prefix: str, length: int = 14) -> str:
        self._sequence += 1
        object_id = f"{prefix}_" + "".join(self._ids.choice(_ALNUM) for _ in range(length))
        self.order[object_id] = self._sequence
        return object_id

    def _emit(self, resource: Resource, action: str, obj: dict[str, Any], at: int,
              previous: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event_type = f"{resource.events}.{action}"
        event = {
            "id": self._new_id("evt", 24), "object": "event", "api_version": API_VERSION,
            "created": at, "data": data, "livemode": False, "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None}, "type": event_type}
        self.events.append(event)
        if self.webhooks.subscribed:
            pending = len(self.webhooks.subscriptions)
            self.webhooks.publish(lambda _sub: {**event, "pending_webhooks": pending},
                                  event_type)

    def _customer(self, at: int, *, name: str | None, email: str | None, phone: str | None,
                  city: str | None = None, country: str | None = None,
                  metadata: dict[str, str] | None = None) -> dict[str, Any]:
        customer_id = self._new_id("cus")
        customer: dict[str, Any] = {
            "id": customer_id, "object": "customer",
            "address": {"city": city, "country": country, "line1": None, "line2": None,
                        "postal_code": None, "state": None} if city else None,
            "balance": 0, "created": at, "currency": "usd", "default_source": None,
            "delinquent": False, "description": None, "discount": None, "email": email,
            "invoice_prefix": customer_id[4:12].upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": metadata or {}, "name": name,
            "next_invoice_sequence": 1, "phone": phone, "preferred_locales": [],
            "shipping": None, "tax_exempt": "none", "test_clock": None}
        return self._add("customers", customer, at)

    def _subscription(self, customer: dict[str, Any], at: int, plan: int,
                      status: str = "active") -> dict[str, Any]:
        price_id, nickname, amount = _PLANS[plan]
        sub_id = self._new_id("sub")
        period_start = at
        subscription = {
            "id": sub_id, "object": "subscription", "application": None,
            "automatic_tax": {"enabled": False}, "billing_cycle_anchor": at,
            "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
            "collection_method": "charge_automatically", "created": at, "currency": "usd",
            "current_period_end": period_start + 30 * 86400,
            "current_period_start": period_start, "customer": customer["id"],
            "days_until_due": None, "default_payment_method": None, "description": None,
            "discount": None, "ended_at": None,
            "items": {"object": "list", "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={sub_id}",
                      "data": [{
                          "id": self._new_id("si"), "object": "subscription_item",
                          "created": at, "metadata": {}, "quantity": 1,
                          "subscription": sub_id,
                          "price": {"id": price_id, "object": "price", "active": True,
                                    "billing_scheme": "per_unit", "created": at,
                                    "currency": "usd", "livemode": False, "metadata": {},
                                    "nickname": nickname, "product": f"prod_{nickname}",
                                    "recurring": {"interval": "month", "interval_count": 1,
                                                  "usage_type": "licensed"},
                                    "type": "recurring", "unit_amount": amount}}]},
            "latest_invoice": None, "livemode": False, "metadata": {},
            "start_date": at, "status": status, "test_clock": None, "trial_end": None,
            "trial_start": None}
        return self._add("subscriptions", subscription, at)

    def _invoice(self, customer: dict[str, Any], subscription: dict[str, Any] | None,
                 at: int, amount: int) -> dict[str, Any]:
        invoice_id = self._new_id("in", 24)
        sequence = customer["next_invoice_sequence"]
        customer["next_invoice_sequence"] = sequence + 1
        invoice = {
            "id": invoice_id, "object": "invoice", "account_country": "US",
            "account_name": "Akita Demo", "amount_due": amount, "amount_paid": 0,
            "amount_remaining": amount, "amount_shipping": 0, "attempt_count": 0,
            "attempted": False, "automatic_tax": {"enabled": False, "status": None},
            "billing_reason": "subscription_cycle" if subscription else "manual",
            "collection_method": "charge_automatically", "created": at, "currency": "usd",
            "customer": customer["id"], "customer_email": customer["email"],
            "customer_name": customer["name"], "customer_phone": customer["phone"],
            "default_tax_rates": [], "description": None, "due_date": None,
            "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                      "url": f"/v1/invoices/{invoice_id}/lines"},
            "livemode": False, "metadata": {},
            "number": f"{customer['invoice_prefix']}-{sequence:04d}", "paid": False,
            "paid_out_of_band": False,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": at, "period_start": at - 30 * 86400,
            "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "starting_balance": 0, "status": "open",
            "status_transitions": {"finalized_at": at, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subscription": subscription["id"] if subscription else None,
            "subtotal": amount, "total": amount, "total_tax_amounts": []}
        if subscription is not None:
            subscription["latest_invoice"] = invoice_id
        return self._add("invoices", invoice, at)

    def _add(self, path: str, obj: dict[str, Any], at: int) -> dict[str, Any]:
        self.objects[path][obj["id"]] = obj
        self._emit(RESOURCES[path], "created", obj, at)
        return obj

    def _change(self, path: str, obj: dict[str, Any], at: int, **changes: Any) -> None:
        previous = {k: copy.deepcopy(obj.get(k)) for k in changes}
        obj.update(changes)
        self._emit(RESOURCES[path], "updated", obj, at, previous)

    def _remove(self, path: str, object_id: str, at: int) -> None:
        obj = self.objects[path].pop(object_id)
        self.deleted[path][object_id] = (at, obj)
        self._emit(RESOURCES[path], "deleted", obj, at)

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:stripe:seed")
        view = self.world.view(PROVIDER, coverage)
        now = unix(self.world.now)
        # Stripe metadata often carries the CRM's account id: link to the Salesforce org when
        # one was generated from the same world.
        crm_ids = {entity: external for (provider, kind, external), entity
                   in self.world.ground_truth().items()
                   if provider == "salesforce" and kind == "accounts"}
        people: dict[str, list[PersonView]] = {}
        for pv in view.people:
            people.setdefault(pv.person.company, []).append(pv)
        for cv in view.companies:
            company = cv.company
            created = unix(self.world.timestamp(rng))
            billing = people.get(company.entity_id, [])
            email = billing[0].email if billing else None
            metadata = {}
            if company.entity_id in crm_ids and rng.random() < 0.4:
                crm_id = crm_ids[company.entity_id]
                metadata["salesforce_account_id"] = crm_id[:15] if rng.random() < 0.3 \
                    else crm_id
            customer = self._customer(created, name=cv.name, email=email, phone=cv.phone,
                                      city=company.city, country=company.country,
                                      metadata=metadata)
            self.truth[(PROVIDER, "accounts", customer["id"])] = company.entity_id
            self.world.register(PROVIDER, "accounts", customer["id"], company.entity_id)
            for _ in range(rng.choice([0, 1, 1, 2])):
                start = created + rng.randrange(0, max(1, now - created))
                subscription = self._subscription(customer, start, rng.randrange(len(_PLANS)))
                amount = subscription["items"]["data"][0]["price"]["unit_amount"]
                due = start
                while due <= now and due - start < 92 * 86400:
                    invoice = self._invoice(customer, subscription, due, amount)
                    if due + 3 * 86400 <= now:
                        self._change("invoices", invoice, due + 3 * 86400, status="paid",
                                     paid=True, amount_paid=amount, amount_remaining=0)
                    due += 30 * 86400
                if rng.random() < 0.15:
                    cancel = start + rng.randrange(0, max(1, now - start))
                    self._change("subscriptions", subscription, cancel, status="canceled",
                                 canceled_at=cancel, ended_at=cancel)
            if rng.random() < 0.25:
                when = created + rng.randrange(0, max(1, now - created))
                self._change("customers", customer, when, balance=-rng.choice([500, 2500]))
        # A few customers deleted within the event retention, so the feed has tombstones.
        recent = unix(self.world.now - self.retention * 0.8)
        for customer_id in list(self.objects["customers"])[5::31]:
            created = self.objects["customers"][customer_id]["created"]
            if created < recent:
                self._remove("customers", customer_id, rng.randrange(recent, now))
        self.events.sort(key=lambda e: (e["created"], self.order[e["id"]]))
        self._prune()

    def _prune(self) -> None:
        horizon = unix(self.clock() - self.retention)
        keep = next((i for i, e in enumerate(self.events) if e["created"] >= horizon),
                    len(self.events))
        if keep:
            for event in self.events[:keep]:
                self.order.pop(event["id"], None)
            del self.events[:keep]

    # -- Python API -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        """The secret key an integration is registered with (the newest after a roll)."""
        with self.lock:
            return {"api_key": self.api_key}

    def _resource(self, name: str) -> Resource:
        return RESOURCES[own_name(TYPES, RESOURCES, name, "Stripe resource")]

    def records(self, interaction_type: str, include_deleted: bool = False
                ) -> list[dict[str, Any]]:
        """The account's objects of one type (copies, newest first), for assertions.

        Args:
            interaction_type: ``accounts`` / ``subscriptions`` / ``invoices`` or the resource
                name (``customers``).
            include_deleted: Add deleted objects, as ``GET /v1/<resource>/<id>`` shows them:
                ``{"id", "object", "deleted": true}``.

        Returns:
            The payloads as the API serves them.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            self._churn()
            found = [copy.deepcopy(o) for o in self._sorted(resource)]
            if include_deleted:
                found += [{"id": i, "object": resource.object, "deleted": True}
                          for i in self.deleted[resource.path]]
            return found

    def touch(self, interaction_type: str, count: int = 1) -> list[str]:
        """Change ``count`` random live objects now (each gets a ``*.updated`` event)."""
        resource = self._resource(interaction_type)
        with self.lock:
            return self._touch(resource, count, unix(self.clock()))

    def _touch(self, resource: Resource, count: int, at: int) -> list[str]:
        table = self.objects[resource.path]
        chosen = self.rng.sample(sorted(table), min(count, len(table)))
        for object_id in chosen:
            obj = table[object_id]
            note = f"{obj.get('description') or ''} (updated)"[-60:]
            self._change(resource.path, obj, at, description=note)
        return chosen

    def create(self, interaction_type: str, count: int = 1) -> list[str]:
        """Create ``count`` objects now (not world entities: no ground truth).

        Subscriptions and invoices are made for random live customers.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            return self._create(resource, count, unix(self.clock()))

    def _create(self, resource: Resource, count: int, at: int) -> list[str]:
        ids = []
        for _ in range(count):
            if resource.path == "customers":
                tag = self._ids.randrange(10**6, 10**7)
                obj = self._customer(at, name=f"New Co {tag}", email=f"billing@newco{tag}.com",
                                     phone=None)
            else:
                customers = sorted(self.objects["customers"])
                if not customers:
                    raise KeyError("no live customer to bill")
                customer = self.objects["customers"][self.rng.choice(customers)]
                if resource.path == "subscriptions":
                    obj = self._subscription(customer, at, self.rng.randrange(len(_PLANS)))
                else:
                    obj = self._invoice(customer, None, at, self.rng.choice([900, 4900]))
            ids.append(obj["id"])
        return ids

    def delete(self, interaction_type: str, ids: Iterable[str]) -> None:
        """Delete objects now: customers and invoices go (``*.deleted``); subscriptions are
        canceled and stay listed with ``status=all``, as in Stripe.

        Raises:
            KeyError: An unknown or already deleted id.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            at = unix(self.clock())
            for object_id in list(ids):
                obj = self.objects[resource.path].get(object_id)
                if obj is None:
                    raise KeyError(f"no live {resource.object} {object_id!r}")
                if resource.deletable:
                    self._remove(resource.path, object_id, at)
                else:
                    obj.update(status="canceled", canceled_at=at, ended_at=at)
                    self._emit(resource, "deleted", obj, at)

    def expire_tokens(self) -> None:
        """Roll the secret key: the old one answers 401 ``api_key_expired`` from now on."""
        with self.lock:
            self.revoked_keys.add(self.api_key)
            self.api_key = "sk_test_51" + "".join(self._ids.choice(_ALNUM) for _ in range(24))

    def _churn(self) -> None:
        """Apply the changes due since the last request, stamped between then and now."""
        for when in self._churn_meter.due(self.clock()):
            at = unix(when)
            resource = RESOURCES[self.rng.choice(["customers", "customers", "subscriptions",
                                                  "invoices"])]
            if self.rng.random() < 0.2 or not self.objects[resource.path]:
                self._create(resource, 1, at)
            else:
                self._touch(resource, 1, at)

    # -- webhooks ---------------------------------------------------------------------------
    def subscribe_webhook(self, url: str, events: tuple[str, ...] = ("*",)) -> dict[str, Any]:
        """Add a webhook endpoint (as ``POST /v1/webhook_endpoints`` does); the answer has
        its signing secret (``whsec_…``). The account is not a Connect account: no id."""
        with self.lock:
            sub = self.webhooks.subscribe(url, f"whsec_{self._new_id('sec', 32)[4:]}",
                                          subscription_id=self._new_id("we", 24),
                                          events=events)
            return subscription_answer(sub, None)

    def poke(self) -> None:
        """Apply the churn due now (the outbox's thread calls it so changes are pushed
        without any API request)."""
        if self.webhooks.subscribed:
            with self.lock:
                self._churn()

    def _webhook_endpoint(self, sub: WebhookSubscription, *, secret: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": sub.id, "object": "webhook_endpoint", "api_version": None,
            "application": None, "created": unix(self.clock()), "description": None,
            "enabled_events": list(sub.events), "livemode": False, "metadata": {},
            "status": "enabled" if sub.active else "disabled", "url": sub.url}
        if secret:  # only the creation answer shows the secret
            body["secret"] = sub.secret
        return body

    def _webhook_endpoints(self, method: str, rest: list[str], params: dict[str, Any]
                           ) -> Response:
        subs = self.webhooks.subscriptions
        if not rest and method == "POST":
            if not params.get("url"):
                raise StripeError(400, "Missing required param: url.", param="url")
            events = params.get("enabled_events")
            if not events:
                raise StripeError(400, "Missing required param: enabled_events.",
                                  param="enabled_events")
            wanted = tuple(events) if isinstance(events, list) else (str(events),)
            created = self.subscribe_webhook(str(params["url"]), wanted)
            return self._json(self._webhook_endpoint(subs[created["id"]], secret=True))
        if not rest and method == "GET":
            data = [self._webhook_endpoint(s, secret=False) for s in subs.values()]
            return self._json({"object": "list", "data": data, "has_more": False,
                               "url": "/v1/webhook_endpoints"})
        if len(rest) == 1 and rest[0] in subs:
            if method == "GET":
                return self._json(self._webhook_endpoint(subs[rest[0]], secret=False))
            if method == "DELETE":
                self.webhooks.unsubscribe(rest[0])
                return self._json({"id": rest[0], "object": "webhook_endpoint",
                                   "deleted": True})
        if len(rest) == 1:
            raise StripeError(404, f"No such webhook endpoint: '{rest[0]}'", param="id",
                              code="resource_missing")
        raise StripeError(404, "Unrecognized request URL.")

    # -- HTTP -------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI application serving the account (thread-safe: one request at a time)."""
        return serve(self, self.lock, environ, start_response, self._answer)

    def _answer(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except StripeError as exc:
            return self._json(exc.body(), exc.status)

    def _json(self, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
              ) -> Response:
        request_id = "req_" + "".join(self._ids.choice(_ALNUM) for _ in range(14))
        return Response(json.dumps(body), status=status, mimetype="application/json",
                        headers={"Request-Id": request_id, "Stripe-Version": API_VERSION,
                                 **(headers or {})})

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header.removeprefix("Bearer ").strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(401, "You did not provide an API key. You need to provide your "
                              "API key in the Authorization header, using Bearer auth (e.g. "
                              "'Authorization: Bearer YOUR_SECRET_KEY').")
        if key == self.api_key:
            return
        self.stats["rejected_keys"] += 1
        masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"
        if key in self.revoked_keys:
            raise StripeError(401, f"Expired API Key provided: {masked}", code="api_key_expired")
        raise StripeError(401, f"Invalid API Key provided: {masked}")

    def _dispatch(self, request: Request) -> Response:
        self._authenticate(request)
        if self.faults and self.faults[0] != "bad_record":
            fault = self.faults.pop(0)
            if fault == "rate_limit":
                error = StripeError(429, "Too many requests hit the API too quickly. We "
                                    "recommend an exponential backoff of your requests.",
                                    code="rate_limit")
                return self._json(error.body(), 429, {"Stripe-Should-Retry": "true"})
            if fault == "server_error":
                error = StripeError(500, "An unknown error occurred", type_="api_error")
                return self._json(error.body(), 500, {"Stripe-Should-Retry": "true"})
            return Response('{"object": "list", "url": "/v1/', mimetype="application/json")
        self._churn()
        self._prune()
        parts = request.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "v1":
            raise self._unrecognized(request)
        if request.method == "GET":
            params = parse_form(request.args.items(multi=True))
        else:
            params = parse_form(request.form.items(multi=True))
        name = parts[1]
        if name == "webhook_endpoints":
            return self._webhook_endpoints(request.method, parts[2:], params)
        if name == "events" and request.method == "GET":
            if len(parts) == 2:
                self.stats["event_calls"] += 1
                return self._list_events(params)
            if len(parts) == 3:
                return self._json(self._event(parts[2]))
        if name in RESOURCES:
            resource = RESOURCES[name]
            if len(parts) == 2 and request.method == "GET":
                self.stats["list_calls"] += 1
                return self._list_objects(resource, params)
            if len(parts) == 3 and request.method == "GET":
                return self._json(self._retrieve(resource, parts[2]))
            if name == "customers":
                return self._write_customer(request.method, parts[2:], params)
        raise self._unrecognized(request)

    @staticmethod
    def _unrecognized(request: Request) -> StripeError:
        return StripeError(404, f"Unrecognized request URL ({request.method}: "
                                f"{request.path}). Please see https://stripe.com/docs or "
                                "we can help at https://support.stripe.com/.")

    def _sorted(self, resource: Resource) -> list[dict[str, Any]]:
        """Newest first: by ``created``, then by creation order."""
        return sorted(self.objects[resource.path].values(),
                      key=lambda o: (o["created"], self.order[o["id"]]), reverse=True)

    def _retrieve(self, resource: Resource, object_id: str) -> dict[str, Any]:
        obj = self.objects[resource.path].get(object_id)
        if obj is not None:
            return obj
        if object_id in self.deleted[resource.path]:
            return {"id": object_id, "object": resource.object, "deleted": True}
        raise _no_such(resource, object_id)

    def _list_objects(self, resource: Resource, params: dict[str, Any]) -> Response:
        allowed = {"limit", "starting_after", "ending_before", "created", "expand", "customer",
                   "email", "status", "subscription"}
        _reject_unknown(params, allowed)
        created = _created_filter(params.get("created"))
        keep = _status_filter(resource, params.get("status"))
        equal = {k: params[k] for k in ("customer", "email", "subscription") if k in params}
        rows = [o for o in self._sorted(resource)
                if created(o["created"]) and keep(o)
                and all(o.get(k) == v for k, v in equal.items())]
        position = {o["id"]: (o["created"], self.order[o["id"]]) for o in rows}

        def locate(object_id: str, param: str) -> tuple[int, int]:
            if object_id in position:
                return position[object_id]
            known = self.objects[resource.path].get(object_id) or \
                self.deleted[resource.path].get(object_id, (0, None))[1]
            if not known:
                raise _no_such(resource, object_id, param)
            return known["created"], self.order[object_id]

        return self._page(f"/v1/{resource.path}", rows, params,
                          lambda o: (o["created"], self.order[o["id"]]), locate)

    def _list_events(self, params: dict[str, Any]) -> Response:
        _reject_unknown(params, {"limit", "starting_after", "ending_before", "created",
                                 "type", "types", "delivery_success", "expand"})
        created = _created_filter(params.get("created"))
        wanted = _type_filter(params.get("type"), params.get("types"))
        rows = [e for e in reversed(self.events) if created(e["created"]) and wanted(e["type"])]
        ids = {e["id"]: (e["created"], self.order[e["id"]]) for e in self.events}

        def locate(event_id: str, param: str) -> tuple[int, int]:
            if event_id not in ids:
                raise StripeError(400, f"No such event: '{event_id}'", code="resource_missing",
                                  param=param)
            return ids[event_id]

        return self._page("/v1/events", rows, params,
                          lambda e: (e["created"], self.order[e["id"]]), locate)

    def _page(self, url: str, rows: list[dict[str, Any]], params: dict[str, Any],
              key: Callable[[dict[str, Any]], tuple[int, int]],
              locate: Callable[[str, str], tuple[int, int]]) -> Response:
        limit = _integer(params.get("limit", DEFAULT_LIMIT), "limit")
        if not 1 <= limit <= MAX_LIMIT:
            raise StripeError(400, f"Invalid limit: must be between 1 and {MAX_LIMIT}.",
                              param="limit")
        after, before = params.get("starting_after"), params.get("ending_before")
        if after is not None and before is not None:
            raise StripeError(400, "You may only specify one of these parameters: "
                              "ending_before, starting_after.", param="ending_before")
        if after is not None:
            mark = locate(str(after), "starting_after")
            rest = [r for r in rows if key(r) < mark]
            page, has_more = rest[:limit], len(rest) > limit
        elif before is not None:
            mark = locate(str(before), "ending_before")
            newer = [r for r in rows if key(r) > mark]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = rows[:limit], len(rows) > limit
        data = copy.deepcopy(page)
        if data and self.faults and self.faults[0] == "bad_record":
            self.faults.pop(0)
            target = data[0]["data"]["object"] if url == "/v1/events" else data[0]
            target.pop("id", None)
        return self._json({"object": "list", "url": url, "has_more": has_more, "data": data})

    def _event(self, event_id: str) -> dict[str, Any]:
        for event in self.events:
            if event["id"] == event_id:
                return event
        raise StripeError(404, f"No such event: '{event_id}'", code="resource_missing",
                          param="id")

    def _write_customer(self, method: str, rest: list[str], params: dict[str, Any]
                        ) -> Response:
        resource = RESOURCES["customers"]
        at = unix(self.clock())
        fields = ("name", "email", "phone", "description")
        if method == "POST" and not rest:
            _reject_unknown(params, {*fields, "metadata"})
            customer = self._customer(at, name=params.get("name"), email=params.get("email"),
                                      phone=params.get("phone"),
                                      metadata=dict(params.get("metadata") or {}))
            return self._json(customer)
        if len(rest) != 1:
            raise StripeError(404, "Unrecognized request URL.")
        customer_id = rest[0]
        found = self.objects["customers"].get(customer_id)
        if found is None:
            raise _no_such(resource, customer_id)
        customer = found
        if method == "POST":
            _reject_unknown(params, {*fields, "metadata"})
            changes: dict[str, Any] = {k: params[k] or None for k in fields if k in params}
            if "metadata" in params:
                # Stripe merges metadata keys; an empty value removes the key.
                merged = {**customer["metadata"], **dict(params["metadata"])}
                changes["metadata"] = {k: v for k, v in merged.items() if v != ""}
            if changes:
                self._change("customers", customer, at, **changes)
            return self._json(customer)
        if method == "DELETE":
            self._remove("customers", customer_id, at)
            return self._json({"id": customer_id, "object": "customer", "deleted": True})
        raise StripeError(405, f"Unrecognized request URL ({method}).")



def _status_filter(resource: Resource, status: Any) -> Callable[[dict[str, Any]], bool]:
    """Subscriptions hide canceled ones unless ``status`` is ``all`` or ``canceled``."""
    if status == "all":
        return lambda _obj: True
    if resource.path == "subscriptions" and status is None:
        return lambda obj: obj["status"] != "canceled"
    if status is None:
        return lambda _obj: True
    return lambda obj: obj.get("status") == status


def _reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeError(400, f"Received unknown parameter: {name}", param=name)


def stripe_signature(secret: str, url: str, body: bytes, now: datetime) -> dict[str, str]:
    """``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    del url  # Stripe signs the timestamp and the body only
    stamp = str(int(now.timestamp()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {"Stripe-Signature": f"t={stamp},v1={digest.hexdigest()}"}


#: Test mode: "Stripe retries three times over a few hours" after any non-2xx or no answer.
STRIPE_TEST_RETRY_SECONDS = (3600.0, 3 * 3600.0, 6 * 3600.0)


def stripe_retry(attempt: int, status: int | None, headers: Mapping[str, str]
                 ) -> float | None:
    del status, headers  # every failure is retried alike
    if attempt >= len(STRIPE_TEST_RETRY_SECONDS):
        return None
    return STRIPE_TEST_RETRY_SECONDS[attempt]
