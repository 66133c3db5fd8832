"""HubSpot CRM v3 emulator: OAuth refresh grant, CRM search with its caps, lists, associations.

Follows the real wire protocol (developers.hubspot.com, CRM search and objects guides; the saved
OpenAPI descriptions in ``shared/provider-specs/hubspot``) closely enough for the official
``hubspot-api-client`` pointed at it with ``host=``:

=====================================================  =======================================
``POST /oauth/v1/token`` (and ``/oauth/v3/token``)     ``grant_type=refresh_token`` form;
                                                       ``{access_token, refresh_token,
                                                       expires_in, token_type}``
``POST /crm/v3/objects/{type}/search``                 filterGroups / sorts / limit ≤ 200 /
                                                       ``after``; 400 past 10,000 results
``GET /crm/v3/objects/{type}``                         list by id, ``archived``,
                                                       ``associations``, limit ≤ 100
``GET /crm/v3/objects/{type}/{id}``                    one record
``POST /crm/v4/associations/{from}/{to}/batch/read``   207 with errors for ids without any
``/__sandbox/...``                                     admin, no auth (see ``_admin``)
=====================================================  =======================================

``{type}`` is ``companies``, ``contacts``, ``deals``, ``tickets`` or ``tasks`` (or the object
type id, ``0-2`` ...). The last-modified property is ``lastmodifieddate`` on contacts and
``hs_lastmodifieddate`` elsewhere; a filter or sort on a property the object lacks is a 400.
Search is live, as HubSpot's is: ``after`` is an offset into the current result set, so
changes made while a client pages shift the pages. Properties are strings; empty ones are left
out, as the ``additionalProperties: string`` schema of the spec requires. Archived records
leave search and appear only in ``GET ...?archived=true``, with ``archivedAt``.

Rate limits: API responses carry ``X-HubSpot-RateLimit-Max``, ``-Remaining`` and
``-Interval-Milliseconds`` for the ten-secondly bucket. Search is exempt from that bucket (the
spec's ``x-hubspot-rate-limit-exemptions``); it has its own per-second bucket, with the same
headers, only when ``search_per_second`` is set. The daily headers are not sent: HubSpot omits
them on OAuth calls. A spent bucket answers 429 with HubSpot's body (``errorType RATE_LIMIT``,
``policyName``), which has no ``category`` and so does not fit the spec's Error schema. An
expired access token answers 401 ``EXPIRED_AUTHENTICATION``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.admin import serve
from akita_pipelines.sandbox.churn import ChurnMeter
from akita_pipelines.sandbox.emulator import AdminSurface, known, own_name
from akita_pipelines.sandbox.webhooks import WebhookOutbox, json_body, subscription_answer
from akita_pipelines.sandbox.world import World

#: The 10,000-result cap of every search query: ``after`` at or past it is a 400.
SEARCH_CAP = 10_000
MAX_SEARCH_LIMIT, DEFAULT_SEARCH_LIMIT = 200, 10
MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT = 100, 10
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
MAX_BATCH_INPUTS = 1000
OPERATORS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
                       "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN",
                       "NOT_CONTAINS_TOKEN"})
DATETIME_PROPS = frozenset({"createdate", "hs_createdate", "lastmodifieddate",
                            "hs_lastmodifieddate", "closedate", "hs_timestamp"})
NUMBER_PROPS = frozenset({"hs_object_id", "amount", "numberofemployees", "associatedcompanyid"})


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type as HubSpot defines it."""

    name: str  # the path segment, e.g. ``contacts``
    type_id: str  # ``0-1``
    singular: str  # ``contact``: association type names use it
    modified: str  # the last-modified property
    created: str
    defaults: tuple[str, ...]  # properties returned when none are asked for
    properties: tuple[str, ...]  # every other property the object has
    touch: str  # the property ``touch`` changes


OBJECTS: dict[str, ObjectType] = {o.name: o for o in (
    ObjectType("companies", "0-2", "company", "hs_lastmodifieddate", "createdate",
               ("name", "domain"),
               ("website", "phone", "city", "country", "industry", "numberofemployees",
                "description"), "description"),
    ObjectType("contacts", "0-1", "contact", "lastmodifieddate", "createdate",
               ("firstname", "lastname", "email"),
               ("phone", "jobtitle", "company", "associatedcompanyid", "lifecyclestage"),
               "jobtitle"),
    ObjectType("deals", "0-3", "deal", "hs_lastmodifieddate", "createdate",
               ("dealname", "amount", "closedate", "pipeline", "dealstage"), (), "dealstage"),
    ObjectType("tickets", "0-5", "ticket", "hs_lastmodifieddate", "createdate",
               ("content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_category",
                "hs_ticket_priority", "subject"), (), "hs_pipeline_stage"),
    ObjectType("tasks", "0-27", "task", "hs_lastmodifieddate", "hs_createdate",
               ("hs_task_subject", "hs_task_status", "hs_timestamp"),
               ("hs_task_priority", "hs_task_body"), "hs_task_status"),
)}
#: Akita interaction type → HubSpot object.
TYPES = {"accounts": "companies", "contacts": "contacts", "deals": "deals",
         "tickets": "tickets", "tasks": "tasks"}
#: First id per object type; ids are numeric strings, increasing with creation.
ID_BASE = {"companies": 9_000_000_000, "contacts": 1_000_000_000, "deals": 7_000_000_000,
           "tickets": 3_000_000_000, "tasks": 5_000_000_000}
#: HUBSPOT_DEFINED association type ids: (primary, unlabeled) per direction.
ASSOCIATION_TYPES: dict[tuple[str, str], tuple[int | None, int]] = {
    ("contacts", "companies"): (1, 279), ("companies", "contacts"): (2, 280),
    ("deals", "companies"): (5, 341), ("companies", "deals"): (6, 342),
    ("tickets", "companies"): (26, 339), ("companies", "tickets"): (25, 340),
    ("tasks", "companies"): (None, 192), ("companies", "tasks"): (None, 191),
    ("deals", "contacts"): (None, 3), ("contacts", "deals"): (None, 4),
    ("tickets", "contacts"): (None, 16), ("contacts", "tickets"): (None, 15),
    ("tasks", "contacts"): (None, 204), ("contacts", "tasks"): (None, 203),
}
HUB_ID = 24_681_357
SCOPES = ("oauth", "crm.objects.companies.read", "crm.objects.contacts.read",
          "crm.objects.deals.read", "tickets", "crm.objects.tasks.read")


def hs_datetime(value: datetime) -> str:
    """Render a datetime as HubSpot does: ``2024-01-01T00:00:00.000Z`` (UTC, milliseconds).

    Args:
        value: A timezone-aware datetime.

    Returns:
        The rendering; lexical order equals time order.
    """
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch, as HubSpot datetime filter values are written."""
    return int(value.timestamp() * 1000)


def parse_filter_datetime(text: str) -> datetime:
    """A datetime filter value: epoch milliseconds or ISO 8601.

    Raises:
        ValueError: Neither.
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _all_of(group: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda r: all(p(r) for p in group)


def _any_group(groups: list[list[Callable[[Any], bool]]]) -> Callable[[Any], bool] | None:
    """One predicate for filter groups: any group whose filters all hold (None: no filter)."""
    if not groups:
        return None
    compiled = [group[0] if len(group) == 1 else _all_of(group) for group in groups]
    if len(compiled) == 1:
        return compiled[0]
    return lambda r: any(c(r) for c in compiled)


class SearchError(Exception):
    """A search request HubSpot would reject with 400 ``VALIDATION_ERROR``."""


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}


def _json(body: Any, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers)


def _error(status: int, message: str, category: str, headers: Headers | None = None,
           **extra: Any) -> Response:
    return _json(_error_body(message, category, **extra), status=status, headers=headers)


class _Record:
    """One stored CRM record: properties as strings, timestamps, archive state."""

    __slots__ = ("id", "properties", "created", "updated", "archived_at")

    def __init__(self, record_id: str, properties: dict[str, str], created: datetime,
                 updated: datetime) -> None:
        self.id = record_id
        self.properties = properties
        self.created = created
        self.updated = updated
        self.archived_at: datetime | None = None


class HubSpotEmulator(AdminSurface):
    """A HubSpot portal over one :class:`World`, served by ``wsgi_app``, with a Python API.

    Args:
        world: The seeded world; the portal holds ``world.view("hubspot", coverage)``.
        client_id: The OAuth app's client id.
        client_secret: The OAuth app's client secret.
        refresh_token: The refresh token the demo starts with (HubSpot does not rotate it).
        token_ttl_seconds: Access-token lifetime, sent as ``expires_in`` (HubSpot: 1800).
        churn_per_minute: Records changed (80 %) or created (20 %) per minute of clock time,
            applied lazily on each request.
        clock: Returns the current aware datetime; a fake clock lets tests move time.
        coverage: Share of the world's companies this portal holds.
        burst_limit: Requests per ten seconds of clock time (search exempt); 190 as on paid
            tiers.
        search_per_second: Search requests per second of clock time; ``None``: unlimited.
    """

    #: ``rate_limit`` (429 ``TEN_SECONDLY_ROLLING``, or ``SECONDLY`` on search),
    #: ``rate_limit_daily`` (429 ``DAILY``), ``server_error`` (502), ``truncated`` (a cut JSON
    #: body) or ``bad_record`` (the next page's first record lacks its ``id``).
    FAULTS = AdminSurface.FAULTS | {"rate_limit_daily"}

    def __init__(self, world: World, *, client_id: str = "akita-hubspot-client",
                 client_secret: str = "akita-hubspot-secret",
                 refresh_token: str = "hs-demo-refresh-token", token_ttl_seconds: float = 1800,
                 churn_per_minute: float = 0.0, clock: Callable[[], datetime] | None = None,
                 coverage: float = 0.7, burst_limit: int = 190,
                 search_per_second: int | None = None) -> None:
        self.world = world
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.churn_per_minute = churn_per_minute
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.burst_limit = burst_limit
        self.search_per_second = search_per_second
        self.lock = threading.RLock()
        #: access token → expiry time.
        self.tokens: dict[str, datetime] = {}
        self.stats: dict[str, int] = {"requests": 0, "token_refreshes": 0, "searches": 0,
                                      "unauthorized": 0, "throttled": 0, "capped": 0}
        self.faults: list[str] = []
        self.rng = random.Random(f"{world.seed}:hubspot:churn")
        self.objects: dict[str, dict[str, _Record]] = {name: {} for name in OBJECTS}
        #: (object, id) → {(other object, other id): primary}; kept in both directions.
        self.links: dict[tuple[str, str], dict[tuple[str, str], bool]] = {}
        self._next_id = dict(ID_BASE)
        self._buckets: dict[str, tuple[datetime, int]] = {}
        self._churn_meter = ChurnMeter(churn_per_minute, self.clock())
        self.truth: dict[tuple[str, str, str], str] = {}
        self.webhooks = WebhookOutbox(
            clock=self.clock, sign=self._sign, render=_hubspot_batch, retry=hubspot_retry,
            batch_size=100, timeout_seconds=5, user_agent="HubSpot Connect 2.0 "
                                                          "(http://dev.hubspot.com/)")
        self._event_id = 0
        self._seed(coverage)

    # -- seeding ---------------------------------------------------------------------------
    def _new_id(self, obj: str) -> str:
        self._next_id[obj] += 1
        return str(self._next_id[obj])

    def _put(self, obj: str, properties: Mapping[str, Any], created: datetime,
             updated: datetime) -> _Record:
        spec = OBJECTS[obj]
        record_id = self._new_id(obj)
        props = {k: str(v) for k, v in properties.items() if v is not None and v != ""}
        props["hs_object_id"] = record_id
        props[spec.created] = hs_datetime(created)
        props[spec.modified] = hs_datetime(updated)
        record = _Record(record_id, props, created, updated)
        self.objects[obj][record_id] = record
        return record

    def _link(self, obj: str, record_id: str, other: str, other_id: str,
              primary: bool = False) -> None:
        self.links.setdefault((obj, record_id), {})[(other, other_id)] = primary
        self.links.setdefault((other, other_id), {})[(obj, record_id)] = False

    def _stamps(self, rng: random.Random) -> tuple[datetime, datetime]:
        created = self.world.timestamp(rng)
        return created, _ms(created + (self.world.now - created) * rng.random())

    def _truth(self, object_type: str, record_id: str, entity_id: str) -> None:
        self.truth[("hubspot", object_type, record_id)] = entity_id
        self.world.register("hubspot", object_type, record_id, entity_id)

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:hubspot:seed")
        view = self.world.view("hubspot", coverage)
        company_of: dict[str, str] = {}
        for cv in view.companies:
            c = cv.company
            domain = None
            if cv.website:
                domain = re.sub(r"^(https?://)?(www\.)?", "", cv.website).rstrip("/")
            rec = self._put("companies", {
                "name": cv.name, "domain": domain, "website": cv.website, "phone": cv.phone,
                "city": c.city, "country": c.country, "industry": c.industry.upper(),
                "numberofemployees": c.employees}, *self._stamps(rng))
            company_of[c.entity_id] = rec.id
            self._truth("accounts", rec.id, c.entity_id)
            for n in range(rng.choice([0, 1, 2])):
                deal = self._put("deals", {
                    "dealname": f"{cv.name} renewal {n + 1}", "pipeline": "default",
                    "amount": rng.choice([5000, 12000, 48000]),
                    "dealstage": rng.choice(["appointmentscheduled", "contractsent",
                                             "closedwon"]),
                    "closedate": hs_datetime(self.world.now + timedelta(
                        days=rng.randrange(-90, 90)))}, *self._stamps(rng))
                self._link("deals", deal.id, "companies", rec.id, primary=True)
        for pv in view.people:
            p = pv.person
            company = company_of.get(p.company)
            rec = self._put("contacts", {
                "firstname": pv.first_name, "lastname": pv.last_name, "email": pv.email,
                "phone": pv.phone, "jobtitle": p.title, "associatedcompanyid": company,
                "lifecyclestage": "customer"}, *self._stamps(rng))
            self._truth("contacts", rec.id, p.entity_id)
            if company:
                self._link("contacts", rec.id, "companies", company, primary=True)
            if rng.random() < 0.3:
                ticket = self._put("tickets", {
                    "subject": "Cannot log in", "content": "Password reset does not arrive",
                    "hs_pipeline": "0", "hs_pipeline_stage": rng.choice(["1", "2", "4"]),
                    "hs_ticket_priority": "MEDIUM"}, *self._stamps(rng))
                self._link("tickets", ticket.id, "contacts", rec.id)
                if company:
                    self._link("tickets", ticket.id, "companies", company, primary=True)
            if rng.random() < 0.3:
                task = self._put("tasks", {
                    "hs_task_subject": "Quarterly business review",
                    "hs_task_status": "NOT_STARTED", "hs_task_priority": "MEDIUM",
                    "hs_timestamp": hs_datetime(self.world.now)}, *self._stamps(rng))
                self._link("tasks", task.id, "contacts", rec.id)
                if company:
                    self._link("tasks", task.id, "companies", company)
        # A few archived records, so ``archived=true`` lists have something to show.
        for obj in ("companies", "contacts"):
            for record_id in sorted(self.objects[obj])[::37]:
                record = self.objects[obj][record_id]
                at = _ms(record.updated + (self.world.now - record.updated) * rng.random())
                self._archive(obj, record, at)

    # -- Python API -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        """The demo OAuth app and its refresh token."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.refresh_token}

    @staticmethod
    def _object(name: str) -> str:
        return own_name(TYPES, OBJECTS, name, "object type")

    def records(self, interaction_type: str, include_deleted: bool = False
                ) -> list[dict[str, Any]]:
        """The portal's records (every property, in id order) as the API renders them.

        Args:
            interaction_type: ``accounts`` ... or a HubSpot object (``companies``).
            include_deleted: Include archived records.
        """
        obj = self._object(interaction_type)
        with self.lock:
            self._churn()
            return [self._render(obj, r, None) for r in self.objects[obj].values()
                    if include_deleted or r.archived_at is None]

    def _bump(self, obj: str, record: _Record, at: datetime | None) -> None:
        record.updated = _ms(at or self.clock())
        record.properties[OBJECTS[obj].modified] = hs_datetime(record.updated)

    def touch(self, interaction_type: str, count: int | None = None,
              ids: list[str] | None = None) -> list[str]:
        """Change live records now: one property and the last-modified date.

        Args:
            interaction_type: Interaction type or HubSpot object.
            count: How many live records to pick at random (deterministic rng); default 1.
            ids: Exactly these records instead (wins over ``count``).

        Returns:
            The ids changed.
        """
        obj = self._object(interaction_type)
        with self.lock:
            return self._touch(obj, 1 if count is None else count, ids, None)

    def _touch(self, obj: str, count: int, ids: list[str] | None,
               at: datetime | None) -> list[str]:
        table = self.objects[obj]
        if ids is not None:
            chosen = known(table, ids, obj)
        else:
            live = [i for i, r in table.items() if r.archived_at is None]
            chosen = self.rng.sample(live, min(count, len(live)))
        field = OBJECTS[obj].touch
        for record_id in chosen:
            record = table[record_id]
            record.properties[field] = f"{record.properties.get(field, '')} (updated)"[-60:]
            self._bump(obj, record, at)
            self._notify(obj, record, "propertyChange", field)
        return chosen

    def create(self, interaction_type: str, count: int = 1) -> list[str]:
        """Create ``count`` records stamped now (not world entities: no ground truth).

        Contacts, deals, tickets and tasks are associated with a live company.

        Returns:
            The new ids, in creation order.
        """
        obj = self._object(interaction_type)
        with self.lock:
            return self._create(obj, count, None)

    def _create(self, obj: str, count: int, at: datetime | None) -> list[str]:
        now = _ms(at or self.clock())
        companies = [i for i, r in self.objects["companies"].items() if r.archived_at is None]
        ids = []
        for _ in range(count):
            tag = f"{self._next_id[obj] + 1 - ID_BASE[obj]:06d}"
            props: dict[str, Any] = {
                "companies": {"name": f"New Co {tag}", "domain": f"newco{tag}.com"},
                "contacts": {"firstname": "New", "lastname": tag,
                             "email": f"new{tag}@example.org"},
                "deals": {"dealname": f"New deal {tag}", "dealstage": "appointmentscheduled"},
                "tickets": {"subject": f"New ticket {tag}", "hs_pipeline_stage": "1"},
                "tasks": {"hs_task_subject": f"New task {tag}",
                          "hs_task_status": "NOT_STARTED"},
            }[obj]
            company = self.rng.choice(companies) if companies and obj != "companies" else None
            if obj == "contacts":
                props["associatedcompanyid"] = company
            record = self._put(obj, props, now, now)
            if company is not None:
                self._link(obj, record.id, "companies", company, primary=obj != "tasks")
            self._notify(obj, record, "creation")
            ids.append(record.id)
        return ids

    def add_history(self, interaction_type: str, count: int) -> None:
        """Add ``count`` records changed at times spread over the world's past year."""
        obj = self._object(interaction_type)
        rng = random.Random(f"{self.world.seed}:history:{obj}:{count}")
        with self.lock:
            for record_id in self._create(obj, count, None):
                record = self.objects[obj][record_id]
                record.created, updated = self._stamps(rng)
                record.properties[OBJECTS[obj].created] = hs_datetime(record.created)
                self._bump(obj, record, updated)

    def _archive(self, obj: str, record: _Record, at: datetime) -> None:
        record.archived_at = at
        self._bump(obj, record, at)
        self._notify(obj, record, "deletion")
        if obj == "companies":
            # HubSpot drops the association, and with it the contact's primary company id.
            for kind, other_id in self.links.get((obj, record.id), {}):
                other = self.objects[kind][other_id]
                if other.properties.get("associatedcompanyid") == record.id:
                    del other.properties["associatedcompanyid"]

    def delete(self, interaction_type: str, ids: Iterable[str]) -> None:
        """Archive records now (HubSpot's delete): they leave search and list ``archived``.

        Raises:
            KeyError: An unknown id.
        """
        obj = self._object(interaction_type)
        with self.lock:
            table = self.objects[obj]
            for record_id in known(table, ids, obj):
                self._archive(obj, table[record_id], self.clock())

    def expire_tokens(self) -> None:
        """Expire every access token issued so far (the refresh token stays valid)."""
        with self.lock:
            past = self.clock() - timedelta(seconds=1)
            self.tokens = {t: past for t in self.tokens}

    def _churn(self) -> None:
        """Apply the changes due since the last request, stamped between then and now."""
        for at in self._churn_meter.due(self.clock()):
            obj = self.rng.choice(["companies", "contacts", "contacts", "deals", "tickets"])
            if self.rng.random() < 0.2:
                self._create(obj, 1, at)
            else:
                self._touch(obj, 1, None, at)

    # -- webhooks ---------------------------------------------------------------------------
    def subscribe_webhook(self, url: str) -> dict[str, Any]:
        """Set the app's webhook target URL (HubSpot: in the app's settings) and subscribe
        it to every object's creation, deletion and property changes. Notifications are
        signed with the app's client secret (signature v3)."""
        with self.lock:
            sub = self.webhooks.subscribe(url, self.client_secret,
                                          subscription_id=str(len(self.webhooks.subscriptions)
                                                              + 1))
            return subscription_answer(sub, str(HUB_ID), app_id=APP_ID)

    def poke(self) -> None:
        """Apply the churn due now (the outbox's thread calls it so changes are pushed
        without any API request)."""
        if self.webhooks.subscribed:
            with self.lock:
                self._churn()

    def _notify(self, obj: str, record: _Record, change: str,
                field: str | None = None) -> None:
        if not self.webhooks.subscribed:
            return
        self._event_id += 1
        event: dict[str, Any] = {
            "eventId": self._event_id, "portalId": HUB_ID, "appId": APP_ID,
            "occurredAt": int(record.updated.timestamp() * 1000), "objectId": int(record.id),
            "changeSource": "CRM"}
        if obj in WEBHOOK_OBJECTS:
            event["subscriptionType"] = f"{WEBHOOK_OBJECTS[obj]}.{change}"
        else:  # objects without classic subscriptions: generic webhooks name the type
            event["subscriptionType"] = f"object.{change}"
            event["objectTypeId"] = OBJECT_TYPE_IDS[obj]
        if field is not None:
            event["propertyName"] = field
            event["propertyValue"] = record.properties.get(field, "")
        self.webhooks.publish(lambda sub: {**event, "subscriptionId": int(sub.id)},
                              event["subscriptionType"])

    def _sign(self, secret: str, url: str, body: bytes, now: datetime) -> dict[str, str]:
        """Signature v3: base64 HMAC-SHA256 of method + URL + body + timestamp (ms)."""
        stamp = str(int(now.timestamp() * 1000))
        source = b"POST" + url.encode() + body + stamp.encode()
        digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
        return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
                "X-HubSpot-Request-Timestamp": stamp}

    # -- rendering --------------------------------------------------------------------------
    def _render(self, obj: str, record: _Record, properties: list[str] | None,
                associations: list[str] | None = None) -> dict[str, Any]:
        spec = OBJECTS[obj]
        if properties is None:
            props = dict(record.properties)
        else:
            # Asked-for properties plus the ones HubSpot always sends back.
            wanted = {*properties, "hs_object_id", spec.created, spec.modified}
            props = {k: v for k, v in record.properties.items() if k in wanted}
        body: dict[str, Any] = {"id": record.id, "properties": props,
                                "createdAt": hs_datetime(record.created),
                                "updatedAt": hs_datetime(record.updated),
                                "archived": record.archived_at is not None}
        if record.archived_at is not None:
            body["archivedAt"] = hs_datetime(record.archived_at)
        if associations:
            found: dict[str, Any] = {}
            for other in associations:
                results = self._association_ids(obj, record.id, other)
                if results:
                    found[other] = {"results": results}
            if found:
                body["associations"] = found
        return body

    def _association_ids(self, obj: str, record_id: str, other: str) -> list[dict[str, str]]:
        """The v3 ``associations`` shape: the primary link typed ``x_to_y``, others
        ``x_to_y_unlabeled``."""
        name = f"{OBJECTS[obj].singular}_to_{OBJECTS[other].singular}"
        results = []
        for (kind, other_id), primary in sorted(self.links.get((obj, record_id), {}).items()):
            if kind != other or self.objects[kind][other_id].archived_at is not None:
                continue
            if primary:
                results.append({"id": other_id, "type": name})
            results.append({"id": other_id, "type": f"{name}_unlabeled"})
        return results

    # -- HTTP -------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI application serving the portal (thread-safe: one request at a time)."""
        return serve(self, self.lock, environ, start_response, self._dispatch)

    def _take(self, bucket: str, limit: int, interval: timedelta) -> tuple[Headers, bool]:
        """Count one request against a fixed-window bucket; the headers and whether it fits."""
        now = self.clock()
        start, used = self._buckets.get(bucket, (now, 0))
        if now - start >= interval:
            start, used = now, 0
        used += 1
        self._buckets[bucket] = (start, used)
        headers = Headers({
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(interval.total_seconds()
                                                                 * 1000)),
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limit - used))})
        return headers, used <= limit

    def _rate_limited(self, policy: str, headers: Headers) -> Response:
        self.stats["throttled"] += 1
        message = {"DAILY": "You have reached your daily limit.",
                   "SECONDLY": "You have reached your secondly limit.",
                   }.get(policy, "You have reached your ten_secondly_rolling limit.")
        return _json({"status": "error", "message": message, "errorType": "RATE_LIMIT",
                      "correlationId": str(uuid.uuid4()), "policyName": policy,
                      "requestId": str(uuid.uuid4())}, status=429, headers=headers)

    def _dispatch(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path in ("/oauth/v1/token", "/oauth/v3/token"):
            if request.method != "POST":
                return _error(405, "Method not allowed", "METHOD_NOT_ALLOWED")
            return self._token(request)
        if not path.startswith("/crm/"):
            return _error(404, f"Unable to route {request.method} {path}", "OBJECT_NOT_FOUND")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        now = self.clock()
        expires = self.tokens.get(token)
        if expires is None or expires <= now:
            self.stats["unauthorized"] += 1
            if expires is None:
                return _error(401, "Authentication credentials not found. This API supports "
                              "OAuth 2.0 authentication.", "INVALID_AUTHENTICATION")
            ago = int((now - expires).total_seconds())
            return _error(401, f"The OAuth token used to make this call expired {ago} "
                          "second(s) ago.", "EXPIRED_AUTHENTICATION",
                          context={"expire time": [hs_datetime(expires)]})
        search = request.method == "POST" and path.endswith("/search")
        if search and self.search_per_second is not None:
            headers, fits = self._take("search", self.search_per_second, timedelta(seconds=1))
            policy = "SECONDLY"
        elif search:
            headers, fits, policy = Headers(), True, "SECONDLY"
        else:
            headers, fits = self._take("burst", self.burst_limit, timedelta(seconds=10))
            policy = "TEN_SECONDLY_ROLLING"
        if not fits:
            return self._rate_limited(policy, headers)
        if self.faults and self.faults[0] != "bad_record":
            fault = self.faults.pop(0)
            if fault == "rate_limit":
                return self._rate_limited(policy, headers)
            if fault == "rate_limit_daily":
                return self._rate_limited("DAILY", headers)
            if fault == "server_error":
                return _error(502, "Bad gateway", "INTERNAL_ERROR", headers)
            return Response('{"total": 3, "results": [{"id": "1", "proper', status=200,
                            mimetype="application/json", headers=headers)
        self._churn()
        try:
            return self._route(request, path, headers)
        except SearchError as exc:
            return _error(400, str(exc), "VALIDATION_ERROR", headers)

    def _route(self, request: Request, path: str, headers: Headers) -> Response:
        match = re.fullmatch(r"/crm/v3/objects/([^/]+)(?:/([^/]+))?", path)
        if match:
            obj = self._resolve(match.group(1))
            if obj is None:
                return _error(400, f"Unable to infer object type from: {match.group(1)}",
                              "VALIDATION_ERROR", headers)
            rest = match.group(2)
            if rest == "search" and request.method == "POST":
                return self._search(obj, request, headers)
            if request.method != "GET":
                return _error(405, "Method not allowed", "METHOD_NOT_ALLOWED", headers)
            if rest is None:
                return self._list(obj, request, headers)
            return self._get_one(obj, rest, request, headers)
        match = re.fullmatch(r"/crm/v4/associations/([^/]+)/([^/]+)/batch/read", path)
        if match and request.method == "POST":
            source, target = self._resolve(match.group(1)), self._resolve(match.group(2))
            if source is None or target is None:
                return _error(400, "Unknown object type", "VALIDATION_ERROR", headers)
            return self._associations(source, target, request, headers)
        return _error(404, f"Unable to route {request.method} {path}", "OBJECT_NOT_FOUND",
                      headers)

    @staticmethod
    def _resolve(name: str) -> str | None:
        for spec in OBJECTS.values():
            if name.lower() in (spec.name, spec.singular, spec.type_id):
                return spec.name
        return None

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return _json({"status": "BAD_GRANT_TYPE", "message": "grant_type must be one of "
                          "authorization_code, refresh_token",
                          "correlationId": str(uuid.uuid4())}, status=400)
        if form.get("client_id") != self.client_id:
            return _json({"status": "BAD_CLIENT_ID", "message": "missing or invalid client_id",
                          "correlationId": str(uuid.uuid4())}, status=400)
        if form.get("client_secret") != self.client_secret:
            return _json({"status": "BAD_CLIENT_SECRET", "message": "client_secret does not "
                          "match", "correlationId": str(uuid.uuid4())}, status=400)
        if form.get("refresh_token") != self.refresh_token:
            return _json({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown "
                          "refresh token", "correlationId": str(uuid.uuid4())}, status=400)
        self.stats["token_refreshes"] += 1
        access = "CKX" + secrets.token_urlsafe(48)
        self.tokens[access] = self.clock() + self.token_ttl
        return _json({"token_type": "bearer", "refresh_token": self.refresh_token,
                      "access_token": access, "expires_in": int(self.token_ttl.total_seconds()),
                      "hub_id": HUB_ID, "scopes": list(SCOPES), "token_use": "access_token"})

    # -- search -----------------------------------------------------------------------------
    def _predicate(self, obj: str, spec: Any) -> Callable[[_Record], bool]:
        if not isinstance(spec, dict):
            raise SearchError("Invalid input JSON: each filter must be an object")
        prop, op = spec.get("propertyName"), str(spec.get("operator", "EQ"))
        known = self._known(obj)
        if not isinstance(prop, str) or prop not in known:
            raise SearchError(f"There was a problem with the request: property {prop!r} does "
                              f"not exist on {obj}")
        if op not in OPERATORS:
            raise SearchError(f"Invalid input JSON: unknown operator {op!r}")
        value, high, values = spec.get("value"), spec.get("highValue"), spec.get("values")

        def coerce(raw: Any) -> Any:
            if raw is None:
                raise SearchError(f"filter on {prop} with {op} needs a value")
            text = str(raw).lower() if isinstance(raw, bool) else str(raw)
            try:
                if prop in DATETIME_PROPS:
                    return hs_datetime(parse_filter_datetime(text))
                if prop in NUMBER_PROPS:
                    return float(text)
            except ValueError:
                raise SearchError(f"{text!r} is not a valid value for {prop}") from None
            return text.casefold()

        def have(record: _Record) -> Any:
            raw = record.properties.get(prop)
            if raw is None:
                return None
            if prop in NUMBER_PROPS:
                return float(raw)
            return raw if prop in DATETIME_PROPS else raw.casefold()

        if op == "HAS_PROPERTY":
            return lambda r: r.properties.get(prop) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda r: r.properties.get(prop) is None
        if op in ("IN", "NOT_IN"):
            if not isinstance(values, list):
                raise SearchError(f"{op} needs a list of values")
            members = {coerce(v) for v in values}
            negate = op == "NOT_IN"
            return lambda r: (have(r) in members) != negate
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(value or "").strip("*").casefold()
            negate = op == "NOT_CONTAINS_TOKEN"
            return lambda r: (token in str(r.properties.get(prop, "")).casefold()) != negate
        if op == "BETWEEN":
            low, top = coerce(value), coerce(high)
            return lambda r: (v := have(r)) is not None and low <= v <= top
        want = coerce(value)
        compare: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b}
        check = compare[op]

        def predicate(record: _Record) -> bool:
            got = have(record)
            if got is None:
                return op == "NEQ"
            return check(got, want)
        return predicate

    @staticmethod
    def _known(obj: str) -> set[str]:
        spec = OBJECTS[obj]
        return {"hs_object_id", spec.created, spec.modified, *spec.defaults, *spec.properties}

    def _sort_key(self, obj: str, sorts: Any) -> tuple[str, bool]:
        if sorts in (None, []):
            return "hs_object_id", False
        if not isinstance(sorts, list):
            raise SearchError("Invalid input JSON: sorts must be a list")
        if len(sorts) > 1:
            raise SearchError("Only one sort is supported")
        sort = sorts[0]
        prop: Any
        if isinstance(sort, str):
            # The spec's string form: ``prop`` ascending, ``-prop`` descending.
            prop, descending = sort.removeprefix("-"), sort.startswith("-")
        elif isinstance(sort, dict):
            prop = sort.get("propertyName")
            direction = str(sort.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise SearchError(f"Invalid sort direction {direction!r}")
            descending = direction == "DESCENDING"
        else:
            raise SearchError("Invalid input JSON: a sort is a string or an object")
        if not isinstance(prop, str) or prop not in self._known(obj):
            raise SearchError(f"There was a problem with the request: cannot sort on {prop!r}")
        return prop, descending

    def _search(self, obj: str, request: Request, headers: Headers) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise SearchError("Invalid input JSON on line 1")
        self.stats["searches"] += 1
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > MAX_FILTER_GROUPS:
            raise SearchError(f"Too many filter groups (at most {MAX_FILTER_GROUPS})")
        predicates: list[list[Callable[[_Record], bool]]] = []
        total_filters = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
                raise SearchError(f"Each filter group holds 1 to {MAX_FILTERS_PER_GROUP} "
                                  "filters")
            total_filters += len(filters)
            predicates.append([self._predicate(obj, f) for f in filters])
        if total_filters > MAX_FILTERS:
            raise SearchError(f"Too many filters (at most {MAX_FILTERS})")
        limit = body.get("limit", DEFAULT_SEARCH_LIMIT)
        if not isinstance(limit, int) or not 0 < limit <= MAX_SEARCH_LIMIT:
            raise SearchError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        after = body.get("after") or "0"
        if not str(after).isdigit():
            raise SearchError(f"Invalid after value {after!r}")
        offset = int(after)
        if offset >= SEARCH_CAP:
            self.stats["capped"] += 1
            raise SearchError(f"Paging past {SEARCH_CAP} results is not supported: narrow the "
                              "search with filters")
        prop, descending = self._sort_key(obj, body.get("sorts"))
        properties = body.get("properties")
        if properties is not None and not isinstance(properties, list):
            raise SearchError("properties must be a list")
        match = _any_group(predicates)
        rows = [r for r in self.objects[obj].values() if r.archived_at is None
                and (match is None or match(r))]
        if prop in NUMBER_PROPS:
            def key(record: _Record) -> Any:
                raw = record.properties.get(prop)
                return float(raw) if raw else 0.0
        else:
            def key(record: _Record) -> Any:
                return record.properties.get(prop, "").casefold()
        # Records are stored in id order and the sort is stable: ties keep id order, so paging
        # a result set that does not change is deterministic.
        rows.sort(key=key, reverse=descending)
        end = min(offset + limit, len(rows), SEARCH_CAP)
        page = [self._render(obj, r, properties or list(OBJECTS[obj].defaults))
                for r in rows[offset:end]]
        self._spoil(page)
        result: dict[str, Any] = {"total": len(rows), "results": page}
        if end < len(rows):
            # Offered even at the cap, as HubSpot does; following it past 10,000 is the 400.
            result["paging"] = {"next": {"after": str(end)}}
        return _json(result, headers=headers)

    def _spoil(self, page: list[dict[str, Any]]) -> None:
        if page and self.faults and self.faults[0] == "bad_record":
            self.faults.pop(0)
            del page[0]["id"]

    # -- objects ----------------------------------------------------------------------------
    @staticmethod
    def _csv(request: Request, name: str) -> list[str] | None:
        values = [v for raw in request.args.getlist(name) for v in raw.split(",") if v]
        return values or None

    def _list(self, obj: str, request: Request, headers: Headers) -> Response:
        try:
            limit = int(request.args.get("limit", DEFAULT_LIST_LIMIT))
        except ValueError:
            raise SearchError("limit must be an integer") from None
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        archived = request.args.get("archived", "false").lower() == "true"
        after = request.args.get("after", "0")
        if not after.isdigit():
            raise SearchError(f"Invalid after value {after!r}")
        associations = [a for a in (self._resolve(x) for x in self._csv(request,
                                                                         "associations") or [])
                        if a is not None]
        rows = sorted((r for r in self.objects[obj].values()
                       if (r.archived_at is not None) == archived and int(r.id) > int(after)),
                      key=lambda r: int(r.id))
        page = [self._render(obj, r, self._csv(request, "properties")
                             or list(OBJECTS[obj].defaults), associations)
                for r in rows[:limit]]
        self._spoil(page)
        body: dict[str, Any] = {"results": page}
        if len(rows) > limit:
            token = rows[limit - 1].id
            query = {k: v for k, v in request.args.items() if k != "after"}
            link = request.base_url + "?" + urlencode({**query, "after": token})
            body["paging"] = {"next": {"after": token, "link": link}}
        return _json(body, headers=headers)

    def _get_one(self, obj: str, record_id: str, request: Request,
                 headers: Headers) -> Response:
        record = self.objects[obj].get(record_id)
        archived = request.args.get("archived", "false").lower() == "true"
        if record is None or (record.archived_at is not None) != archived:
            return _error(404, "Object not found", "OBJECT_NOT_FOUND", headers)
        associations = [a for a in (self._resolve(x) for x in self._csv(request,
                                                                         "associations") or [])
                        if a is not None]
        return _json(self._render(obj, record, self._csv(request, "properties")
                                  or list(OBJECTS[obj].defaults), associations), headers=headers)

    def _associations(self, source: str, target: str, request: Request,
                      headers: Headers) -> Response:
        body = request.get_json(silent=True)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or len(inputs) > MAX_BATCH_INPUTS:
            raise SearchError(f"inputs must be a list of at most {MAX_BATCH_INPUTS} ids")
        primary_type, unlabeled_type = ASSOCIATION_TYPES.get((source, target), (None, 0))
        started = hs_datetime(self.clock())
        results, errors = [], []
        for item in inputs:
            record_id = str(item.get("id")) if isinstance(item, dict) else ""
            links = {oid: primary for (kind, oid), primary
                     in self.links.get((source, record_id), {}).items()
                     if kind == target and self.objects[kind][oid].archived_at is None}
            record = self.objects[source].get(record_id)
            if record is None or record.archived_at is not None or not links:
                errors.append({
                    "status": "error", "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {OBJECTS[target].singular} is associated with "
                               f"{OBJECTS[source].singular} {record_id}.",
                    "context": {"fromObjectId": [record_id]}, "links": {}, "errors": []})
                continue
            to = []
            for other_id, primary in sorted(links.items(), key=lambda kv: int(kv[0])):
                kinds = [{"category": "HUBSPOT_DEFINED", "typeId": unlabeled_type,
                          "label": None}]
                if primary and primary_type is not None:
                    kinds.insert(0, {"category": "HUBSPOT_DEFINED", "typeId": primary_type,
                                     "label": "Primary"})
                to.append({"toObjectId": int(other_id), "associationTypes": kinds})
            results.append({"from": {"id": record_id}, "to": to})
        response: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                    "startedAt": started,
                                    "completedAt": hs_datetime(self.clock())}
        if errors:
            response.update(numErrors=len(errors), errors=errors)
        return _json(response, status=207 if errors else 200, headers=headers)

    # -- admin ------------------------------------------------------------------------------


APP_ID = 1_357_913
#: Objects with classic webhook subscriptions (``contact.propertyChange`` …).
WEBHOOK_OBJECTS = {"companies": "company", "contacts": "contact", "deals": "deal",
                   "tickets": "ticket"}
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5",
                   "tasks": "0-27"}
#: "Up to 10 retries spread over the next 24 hours" after no answer, a timeout or a 5xx/429.
HUBSPOT_RETRY_SECONDS = (60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 4800.0, 9600.0, 19200.0,
                         38400.0)


def _hubspot_batch(events: list[Any], attempt: int) -> bytes:
    return json_body([{**e, "attemptNumber": attempt} for e in events])


def hubspot_retry(attempt: int, status: int | None, headers: Mapping[str, str]
                  ) -> float | None:
    del headers
    if status is not None and status < 500 and status != 429:
        return None  # a 4xx answer is final
    if attempt >= len(HUBSPOT_RETRY_SECONDS):
        return None
    return HUBSPOT_RETRY_SECONDS[attempt]
