"""Zendesk Support API emulator: incremental exports, API-token and OAuth auth, export limits.

Follows the real wire protocol (developer.zendesk.com, "Incremental Exports" and "Using the
Incremental Export API"):

==============================================================  ================================
``GET /api/v2/incremental/tickets/cursor.json``                 cursor-based export
``GET /api/v2/incremental/users/cursor.json``                   cursor-based export
``GET /api/v2/incremental/organizations.json``                  time-based export
``GET /api/v2/organizations.json``                              list, cursor pagination
``GET /api/v2/users/me.json``                                   the authenticated user
``GET /api/v2/{organizations|users|tickets}/<id>.json``         one record
``POST /oauth/tokens``                                          ``grant_type=refresh_token``
==============================================================  ================================

Cursor-based exports take ``start_time`` (unix seconds, inclusive) on the first request and
``cursor`` after that; ``per_page`` up to 1,000. A response carries ``after_cursor``,
``after_url`` and ``end_of_stream``; the cursor is a position (change time, id), so a record
changed while a client pages moves behind it and is served again later. Tickets are keyed on
``generated_timestamp``, which system updates move without moving ``updated_at``: a ticket can
come back with an ``updated_at`` earlier than the ``start_time`` asked for, as in Zendesk.

The time-based organization export answers ``{organizations, next_page, end_time, count,
end_of_stream}`` with up to 1,000 records; ``end_time`` is the last record's second and the
next page starts *at* it, so records sharing that second are served twice (clients dedupe by
id). When more than a page of records share one second, ``end_time`` equals ``start_time`` and
the export repeats itself, as client libraries report of the live API; the cursor-paginated
``GET /api/v2/organizations.json?page[size]=&page[after]=`` list (live organizations in id
order) is the way past it.

``start_time`` must lie at least a minute in the past: a later one is refused with 422
``InvalidValue`` "Too recent start_time" (the status public clients report; the emulator does
not know whether the live API now says 400). With ``exclude_recent_seconds`` set (Zendesk: 60)
records changed within that window are withheld; it defaults to 0 so a test can touch a record
and read it back at once on the wall clock.

Each export endpoint allows ``export_rate_limit`` requests (Zendesk: 10) per sliding minute of
the emulator's clock and answers 429 with ``Retry-After`` past it. Every API request needs
``Authorization: Basic base64("{email}/token:{api_token}")`` or ``Bearer <oauth token>``; OAuth
access tokens expire after ``token_ttl_seconds`` (401 ``invalid_token``) and are refreshed at
``/oauth/tokens``, which with ``rotate_refresh_tokens`` returns a new refresh token and revokes
the old one, as Zendesk does.

Deleted records stay in the exports: organizations with ``deleted_at``, users with
``active: false``, tickets with ``status: "deleted"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.admin import serve
from akita_pipelines.sandbox.churn import ChurnMeter
from akita_pipelines.sandbox.emulator import AdminSurface, known, own_name
from akita_pipelines.sandbox.webhooks import (
    WebhookOutbox,
    WebhookSubscription,
    json_body,
    subscription_answer,
)
from akita_pipelines.sandbox.world import World

#: Akita interaction type → Zendesk resource.
RESOURCES = {"accounts": "organizations", "contacts": "users", "tickets": "tickets"}
CURSOR_EXPORTS = ("tickets", "users")
MAX_PER_PAGE = 1000
EXPORT_WINDOW = timedelta(minutes=1)
MIN_START_AGE = timedelta(minutes=1)
#: Id ranges, as Zendesk's look: long numbers for organizations and users, small for tickets.
ID_BASE = {"organizations": 360_000_000_000, "users": 361_000_000_000, "tickets": 0}
#: The field ``touch`` flips on each resource, so a touched record differs in content too.
TOUCH_FIELD = {"organizations": ("notes", None, "updated"),
               "users": ("time_zone", "UTC", "Europe/Berlin"),
               "tickets": ("priority", "normal", "high")}
INVALID_TOKEN = {"error": "invalid_token",
                 "error_description": "The access token provided is expired, revoked, "
                                      "malformed or invalid for other reasons."}


def zd_datetime(value: datetime) -> str:
    """Render a datetime as Zendesk does: ``2024-01-01T12:00:00Z`` (UTC, whole seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def encode_cursor(stamp: int, record_id: int) -> str:
    """An export cursor: the position after (stamp, id), base64 like Zendesk's."""
    return base64.b64encode(f"{stamp}.0||{record_id}|".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (stamp, id) position a cursor names; ValueError if it is not one."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        stamp, _, rest = text.partition("||")
        return int(float(stamp)), int(rest.rstrip("|"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(cursor) from None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers)


def _domain(website: str | None) -> str | None:
    if not website:
        return None
    host = website.split("://", 1)[-1].split("/", 1)[0].lower()
    return host.removeprefix("www.") or None


class ZendeskEmulator(AdminSurface):
    """A Zendesk Support account over one :class:`World`, served by ``wsgi_app``.

    Args:
        world: The seeded world; the account holds ``world.view("zendesk", coverage)``.
        subdomain: The account's subdomain (only used in ``url`` fields).
        email: The agent the API token belongs to.
        api_token: That agent's API token.
        client_id: The OAuth client's identifier.
        client_secret: The OAuth client's secret.
        refresh_token: The refresh token the demo integration starts with.
        token_ttl_seconds: OAuth access-token lifetime (``expires_in``).
        rotate_refresh_tokens: Each refresh returns a new refresh token and revokes the old.
        churn_per_minute: Records changed (80 %) or created (20 %) per minute of clock time,
            applied lazily on each request.
        clock: Returns the current aware datetime; a fake clock lets tests move time.
        coverage: Share of the world's companies this account holds.
        export_rate_limit: Requests per minute allowed on each incremental export endpoint.
        exclude_recent_seconds: Records changed this recently are withheld from exports.
    """

    #: ``rate_limit`` (429 with ``Retry-After: 1``), ``server_error`` (503), ``truncated`` (a
    #: cut JSON body) or ``bad_record`` (the next export page's first record lacks its ``id``).
    FAULTS = AdminSurface.FAULTS

    def __init__(self, world: World, *, subdomain: str = "akita-demo",
                 email: str = "integrations@akita-demo.example",
                 api_token: str = "zd-demo-api-token", client_id: str = "akita_pipelines",
                 client_secret: str = "zd-demo-client-secret",
                 refresh_token: str = "zd-demo-refresh-token", token_ttl_seconds: float = 1800,
                 rotate_refresh_tokens: bool = False, churn_per_minute: float = 0.0,
                 clock: Callable[[], datetime] | None = None, coverage: float = 0.75,
                 export_rate_limit: int = 10, exclude_recent_seconds: float = 0) -> None:
        self.world = world
        self.subdomain = subdomain
        self.email, self.api_token = email, api_token
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.current_refresh_token = refresh_token
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.rotate = rotate_refresh_tokens
        self.churn_per_minute = churn_per_minute
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.export_rate_limit = export_rate_limit
        self.exclude_recent = timedelta(seconds=exclude_recent_seconds)
        #: Records per page of the time-based export (Zendesk: 1,000); tests lower it.
        self.time_page_size = MAX_PER_PAGE
        self.lock = threading.RLock()
        #: OAuth access token → expiry.
        self.tokens: dict[str, datetime] = {}
        self.faults: list[str] = []
        self.stats: dict[str, int] = {"requests": 0, "token_refreshes": 0, "exports": 0,
                                      "rate_limited": 0, "unauthorized": 0}
        self.rng = random.Random(f"{world.seed}:zendesk:churn")
        self.data: dict[str, dict[int, dict[str, Any]]] = {r: {} for r in RESOURCES.values()}
        self.serial = dict.fromkeys(RESOURCES.values(), 0)
        self._export_calls: dict[str, deque[datetime]] = {}
        self._churn_meter = ChurnMeter(churn_per_minute, self.clock())
        self.truth: dict[tuple[str, str, str], str] = {}
        self.webhooks = WebhookOutbox(
            clock=self.clock, sign=zendesk_signature, render=lambda events, _: json_body(events[0]),
            retry=zendesk_retry, timeout_seconds=12, user_agent="Zendesk Webhook")
        self._seed(coverage)

    # -- seeding ---------------------------------------------------------------------------
    def _new_id(self, resource: str) -> int:
        self.serial[resource] += 1
        return ID_BASE[resource] + self.serial[resource]

    def _url(self, resource: str, record_id: int) -> str:
        return f"https://{self.subdomain}.zendesk.com/api/v2/{resource}/{record_id}.json"

    def _stamps(self, rng: random.Random) -> tuple[datetime, datetime]:
        created = self.world.timestamp(rng)
        return created, created + (self.world.now - created) * rng.random()

    def _organization(self, name: str, domain: str | None, phone: str | None,
                      industry: str | None, created: datetime,
                      updated: datetime) -> dict[str, Any]:
        org_id = self._new_id("organizations")
        return {"id": org_id, "url": self._url("organizations", org_id), "name": name,
                "domain_names": [domain] if domain else [], "details": None, "notes": None,
                "external_id": None, "group_id": None, "shared_tickets": False,
                "shared_comments": False, "tags": [],
                "organization_fields": {"phone": phone, "industry": industry},
                "created_at": zd_datetime(created), "updated_at": zd_datetime(updated),
                "deleted_at": None}

    def _user(self, name: str, email: str | None, phone: str | None, org_id: int | None,
              created: datetime, updated: datetime) -> dict[str, Any]:
        user_id = self._new_id("users")
        return {"id": user_id, "url": self._url("users", user_id), "name": name,
                "email": email, "phone": phone, "shared_phone_number": None,
                "role": "end-user", "organization_id": org_id, "active": True,
                "verified": email is not None, "suspended": False, "time_zone": "UTC",
                "locale": "en-US", "external_id": None, "tags": [], "user_fields": {},
                "created_at": zd_datetime(created), "updated_at": zd_datetime(updated)}

    def _ticket(self, subject: str, requester: int | None, org_id: int | None,
                created: datetime, updated: datetime,
                generated: datetime | None = None) -> dict[str, Any]:
        ticket_id = self._new_id("tickets")
        return {"id": ticket_id, "url": self._url("tickets", ticket_id), "external_id": None,
                "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": zd_datetime(created), "updated_at": zd_datetime(updated),
                "generated_timestamp": int((generated or updated).timestamp()),
                "type": "question", "subject": subject, "raw_subject": subject,
                "description": subject, "priority": "normal", "status": "open",
                "requester_id": requester, "submitter_id": requester, "assignee_id": None,
                "organization_id": org_id, "group_id": None, "tags": [], "custom_fields": [],
                "is_public": True}

    def _truth(self, object_type: str, record_id: int, entity_id: str) -> None:
        self.truth[("zendesk", object_type, str(record_id))] = entity_id
        self.world.register("zendesk", object_type, str(record_id), entity_id)

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:zendesk:seed")
        view = self.world.view("zendesk", coverage)
        org_of: dict[str, int] = {}
        for cv in view.companies:
            created, updated = self._stamps(rng)
            org = self._organization(cv.name, _domain(cv.website), cv.phone,
                                     cv.company.industry, created, updated)
            self.data["organizations"][org["id"]] = org
            org_of[cv.company.entity_id] = org["id"]
            self._truth("accounts", org["id"], cv.company.entity_id)
        for pv in view.people:
            created, updated = self._stamps(rng)
            user = self._user(f"{pv.first_name} {pv.last_name}", pv.email, pv.phone,
                              org_of.get(pv.person.company), created, updated)
            self.data["users"][user["id"]] = user
            self._truth("contacts", user["id"], pv.person.entity_id)
            if rng.random() < 0.4:
                created, updated = self._stamps(rng)
                # A fifth of tickets had a system update after their last visible change.
                generated = updated + (self.world.now - updated) * rng.random() \
                    if rng.random() < 0.2 else None
                ticket = self._ticket(rng.choice(["Cannot log in", "Invoice question",
                                                  "Feature request", "Export is slow"]),
                                      user["id"], user["organization_id"], created, updated,
                                      generated)
                self.data["tickets"][ticket["id"]] = ticket
        # A few deleted records, which the exports keep serving.
        for resource in RESOURCES.values():
            for record_id in sorted(self.data[resource])[5::41]:
                self._mark_deleted(resource, self.data[resource][record_id], None)

    # -- Python API -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        """The demo OAuth client and the latest refresh token issued."""
        with self.lock:
            return {"client_id": self.client_id, "client_secret": self.client_secret,
                    "refresh_token": self.current_refresh_token}

    def api_token_credentials(self) -> dict[str, str]:
        """The agent's email and API token (HTTP Basic ``{email}/token:{api_token}``)."""
        return {"email": self.email, "api_token": self.api_token}

    @staticmethod
    def _resource(name: str) -> str:
        return own_name(RESOURCES, ID_BASE, name, "Zendesk resource")

    @staticmethod
    def _deleted(resource: str, record: dict[str, Any]) -> bool:
        if resource == "organizations":
            return record.get("deleted_at") is not None
        if resource == "users":
            return record.get("active") is False
        return record.get("status") == "deleted"

    def records(self, interaction_type: str, include_deleted: bool = False
                ) -> list[dict[str, Any]]:
        """The account's current records (copies, in id order), as the exports serve them.

        Args:
            interaction_type: ``accounts`` / ``contacts`` / ``tickets`` or the Zendesk name.
            include_deleted: Include deleted records (which the exports serve too).
        """
        resource = self._resource(interaction_type)
        with self.lock:
            self._churn()
            return [dict(r) for _, r in sorted(self.data[resource].items())
                    if include_deleted or not self._deleted(resource, r)]

    def _bump(self, resource: str, record: dict[str, Any], at: datetime | None,
              *, system: bool = False) -> None:
        when = at or self.clock()
        if not system:
            record["updated_at"] = zd_datetime(when)
        if resource == "tickets":
            record["generated_timestamp"] = int(when.timestamp())

    def _live(self, resource: str) -> list[int]:
        return sorted(i for i, r in self.data[resource].items() if not self._deleted(resource, r))

    def _pick(self, resource: str, count: int, ids: Iterable[Any] | None) -> list[int]:
        if ids is not None:
            return known(self.data[resource], (int(i) for i in ids), resource)
        live = self._live(resource)
        return self.rng.sample(live, min(count, len(live)))

    def touch(self, interaction_type: str, count: int = 1,
              ids: Iterable[Any] | None = None) -> list[str]:
        """Change records now: a field and their ``updated_at``.

        Args:
            interaction_type: ``accounts`` / ``contacts`` / ``tickets`` or the Zendesk name.
            count: How many live records to pick at random (deterministic rng).
            ids: Exactly these records instead.

        Returns:
            The ids changed, as strings.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            return [str(i) for i in self._touch(resource, count, ids, None)]

    def _touch(self, resource: str, count: int, ids: Iterable[Any] | None,
               at: datetime | None) -> list[int]:
        chosen = self._pick(resource, count, ids)
        field, first, second = TOUCH_FIELD[resource]
        for record_id in chosen:
            record = self.data[resource][record_id]
            record[field] = second if record.get(field) != second else first
            self._bump(resource, record, at)
            self._notify(resource, record, CHANGE_EVENT.get(field, "custom_field_changed"))
        return chosen

    def system_update(self, ids: Iterable[Any]) -> list[str]:
        """A system update of tickets (an SLA recalculation, say): ``generated_timestamp``
        moves to now, ``updated_at`` does not."""
        with self.lock:
            chosen = self._pick("tickets", 0, ids)
            for record_id in chosen:
                record = self.data["tickets"][record_id]
                record["tags"] = [*record["tags"], "sla_recalculated"]
                self._bump("tickets", record, None, system=True)
            return [str(i) for i in chosen]

    def create(self, interaction_type: str, count: int = 1) -> list[str]:
        """Create ``count`` records stamped now (not world entities: no ground truth).

        Returns:
            The new ids, as strings, in creation order.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            return [str(i) for i in self._create(resource, count, None)]

    def _create(self, resource: str, count: int, at: datetime | None) -> list[int]:
        when = at or self.clock()
        made = []
        for _ in range(count):
            n = self.serial[resource] + 1
            if resource == "organizations":
                record = self._organization(f"New Company {n}", f"newco{n}.example", None, None,
                                            when, when)
            elif resource == "users":
                record = self._user(f"New Person{n}", f"new{n}@example.org", None, None, when,
                                    when)
            else:
                record = self._ticket(f"New ticket {n}", None, None, when, when)
            self.data[resource][record["id"]] = record
            self._notify(resource, record, "created")
            made.append(record["id"])
        return made

    def add_same_second(self, interaction_type: str, count: int, at: datetime) -> list[str]:
        """Create ``count`` records that all changed in the same second ``at`` (a bulk import):
        more than a page of them is the time-based export's boundary case."""
        resource = self._resource(interaction_type)
        with self.lock:
            return [str(i) for i in self._create(resource, count, at)]

    def _mark_deleted(self, resource: str, record: dict[str, Any], at: datetime | None) -> None:
        if resource == "organizations":
            record["deleted_at"] = zd_datetime(at) if at else record["updated_at"]
        elif resource == "users":
            record["active"] = False
        else:
            record["status"] = "deleted"
        if at is not None:
            self._bump(resource, record, at)
            self._notify(resource, record, "soft_deleted" if resource == "tickets"
                         else "deleted")

    def delete(self, interaction_type: str, ids: Iterable[Any]) -> None:
        """Delete records: they stay in the exports, marked deleted, with a fresh timestamp.

        Raises:
            KeyError: An unknown id.
        """
        resource = self._resource(interaction_type)
        with self.lock:
            for record_id in self._pick(resource, 0, ids):
                self._mark_deleted(resource, self.data[resource][record_id], self.clock())

    def expire_tokens(self) -> None:
        """Expire every OAuth access token issued so far (API tokens do not expire)."""
        with self.lock:
            past = self.clock() - timedelta(seconds=1)
            self.tokens = dict.fromkeys(self.tokens, past)

    def _churn(self) -> None:
        """Apply the changes due since the last request, stamped between then and now."""
        for at in self._churn_meter.due(self.clock()):
            resource = self.rng.choice(["organizations", "users", "users", "tickets"])
            if self.rng.random() < 0.2:
                self._create(resource, 1, at)
            else:
                self._touch(resource, 1, None, at)

    # -- HTTP -------------------------------------------------------------------------------
    # -- webhooks ---------------------------------------------------------------------------
    def subscribe_webhook(self, url: str, events: tuple[str, ...] = ("*",)) -> dict[str, Any]:
        """Create an active webhook posting JSON to ``url`` (as ``POST /api/v2/webhooks``
        does); the answer has its signing secret."""
        with self.lock:
            sub = self.webhooks.subscribe(url, secrets.token_urlsafe(32),
                                          subscription_id=f"01{secrets.token_hex(12).upper()}",
                                          events=events)
            return subscription_answer(sub, str(ACCOUNT_ID))

    def poke(self) -> None:
        """Apply the churn due now (the outbox's thread calls it so changes are pushed
        without any API request)."""
        if self.webhooks.subscribed:
            with self.lock:
                self._churn()

    def _notify(self, resource: str, record: dict[str, Any], change: str) -> None:
        if not self.webhooks.subscribed:
            return
        singular = resource[:-1] if resource != "organizations" else "organization"
        event_type = f"zen:event-type:{singular}.{change}"
        event = {"account_id": ACCOUNT_ID, "detail": {"id": str(record["id"])}, "event": {},
                 "id": str(uuid4()), "subject": f"zen:{singular}:{record['id']}",
                 "time": record.get("updated_at") or zd_datetime(self.clock()),
                 "type": event_type, "zendesk_event_version": "2022-11-06"}
        self.webhooks.publish(lambda _sub: event, event_type)

    def _webhook(self, sub: WebhookSubscription) -> dict[str, Any]:
        return {"id": sub.id, "name": "Akita push", "status": "active" if sub.active
                else "inactive", "endpoint": sub.url, "http_method": "POST",
                "request_format": "json", "subscriptions": list(sub.events)}

    def _webhooks_api(self, request: Request) -> Response:
        parts = request.path.removeprefix("/api/v2/webhooks").strip("/").split("/")
        subs = self.webhooks.subscriptions
        if parts == [""] and request.method == "POST":
            spec = (request.get_json(silent=True) or {}).get("webhook") or {}
            endpoint, wanted = spec.get("endpoint"), spec.get("subscriptions")
            if not endpoint or not isinstance(wanted, list) or not wanted:
                return _json({"errors": [{"code": "InvalidValue", "title": "Invalid value",
                                          "detail": "endpoint and subscriptions are required"}
                                         ]}, 400)
            created = self.subscribe_webhook(str(endpoint), tuple(str(w) for w in wanted))
            return _json({"webhook": self._webhook(subs[created["id"]])}, 201)
        if parts == [""] and request.method == "GET":
            return _json({"webhooks": [self._webhook(s) for s in subs.values()],
                          "meta": {"has_more": False}})
        if parts and parts[0] in subs:
            sub = subs[parts[0]]
            if parts[1:] == ["signing_secret"] and request.method == "GET":
                return _json({"signing_secret": {"algorithm": "SHA256",
                                                 "secret": sub.secret}})
            if len(parts) == 1 and request.method == "GET":
                return _json({"webhook": self._webhook(sub)})
            if len(parts) == 1 and request.method == "DELETE":
                self.webhooks.unsubscribe(sub.id)
                return Response(status=204)
        return _json({"errors": [{"code": "WebhookNotFound", "title": "Not found"}]}, 404)

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI application serving the account (thread-safe: one request at a time)."""
        return serve(self, self.lock, environ, start_response, self._dispatch)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/oauth/tokens":
            if request.method != "POST":
                return _json({"error": "InvalidEndpoint", "description": "Not found"}, 404)
            return self._token(request)
        if not path.startswith("/api/v2/"):
            return _json({"error": "InvalidEndpoint", "description": "Not found"}, 404)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if path.startswith("/api/v2/webhooks"):
            return self._webhooks_api(request)
        if request.method not in ("GET", "HEAD"):
            return _json({"error": "InvalidEndpoint", "description": "Not found"}, 404)
        self._churn()
        rest = path.removeprefix("/api/v2/")
        export = {"incremental/tickets/cursor.json": "tickets",
                  "incremental/users/cursor.json": "users",
                  "incremental/organizations.json": "organizations"}.get(rest)
        if export is not None:
            return self._export(request, export)
        if rest == "organizations.json":
            return self._list(request, "organizations")
        if rest == "users/me.json":
            return _json({"user": self._me(request)})
        parts = rest.removesuffix(".json").split("/")
        if len(parts) == 2 and parts[0] in ID_BASE and parts[1].isdigit():
            record = self.data[parts[0]].get(int(parts[1]))
            if record is None or self._deleted(parts[0], record):
                return _json({"error": "RecordNotFound", "description": "Not found"}, 404)
            return _json({parts[0][:-1]: record})
        return _json({"error": "InvalidEndpoint", "description": "Not found"}, 404)

    def _me(self, request: Request) -> dict[str, Any]:
        auth = request.authorization
        via = "api_token" if auth is not None and auth.type == "basic" else "oauth"
        return {"id": 1, "name": "Akita Integration", "email": self.email, "role": "admin",
                "active": True, "authenticity_token": None, "via": via}

    def _authenticate(self, request: Request) -> Response | None:
        denied = self._check_auth(request)
        if denied is not None:
            self.stats["unauthorized"] += 1
        return denied

    def _check_auth(self, request: Request) -> Response | None:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            user, password = auth.username or "", auth.password or ""
            if user == f"{self.email}/token" and password == self.api_token:
                return None
            return _json({"error": "Couldn't authenticate you"}, 401)
        if auth is not None and auth.type == "bearer":
            expires = self.tokens.get(auth.token or "")
            if expires is not None and expires > self.clock():
                return None
            return _json(INVALID_TOKEN, 401,
                         {"WWW-Authenticate": 'Bearer realm="Web", error="invalid_token"'})
        return _json({"error": "Couldn't authenticate you"}, 401)

    def _token(self, request: Request) -> Response:
        form: dict[str, Any] = dict(request.form.items())
        if not form:
            sent = request.get_json(silent=True)
            form = sent if isinstance(sent, dict) else {}
        if form.get("grant_type") != "refresh_token":
            return _json({"error": "unsupported_grant_type",
                          "error_description": "The authorization grant type is not supported "
                                               "by the authorization server."}, 400)
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return _json({"error": "invalid_client",
                          "error_description": "Client authentication failed."}, 401)
        refresh = str(form.get("refresh_token", ""))
        if refresh not in self.refresh_tokens:
            return _json({"error": "invalid_grant",
                          "error_description": "The provided authorization grant is invalid, "
                                               "expired, revoked, or was issued to another "
                                               "client."}, 400)
        self.stats["token_refreshes"] += 1
        access = secrets.token_hex(32)
        self.tokens[access] = self.clock() + self.token_ttl
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer",
                                "scope": "read", "refresh_token": refresh,
                                "expires_in": int(self.token_ttl.total_seconds()),
                                "refresh_token_expires_in": 30 * 24 * 3600}
        if self.rotate:
            new = secrets.token_hex(32)
            self.refresh_tokens.discard(refresh)
            self.refresh_tokens.add(new)
            self.current_refresh_token = new
            body["refresh_token"] = new
        return _json(body)

    # -- exports ----------------------------------------------------------------------------
    def _limited(self, endpoint: str) -> Response | None:
        """The export limit: ``export_rate_limit`` requests per sliding minute per endpoint."""
        now = self.clock()
        calls = self._export_calls.setdefault(endpoint, deque())
        while calls and calls[0] <= now - EXPORT_WINDOW:
            calls.popleft()
        if len(calls) >= self.export_rate_limit:
            self.stats["rate_limited"] += 1
            wait = math.ceil((calls[0] + EXPORT_WINDOW - now).total_seconds())
            return _json({"error": "APIRateLimitExceeded",
                          "description": "Number of allowed incremental export API requests "
                                         "per minute exceeded"}, 429,
                         {"Retry-After": str(max(1, wait)),
                          "X-Rate-Limit": str(self.export_rate_limit),
                          "X-Rate-Limit-Remaining": "0"})
        calls.append(now)
        return None

    def _key(self, resource: str, record: dict[str, Any]) -> int:
        """The second an export orders and filters a record by."""
        if resource == "tickets":
            return int(record["generated_timestamp"])
        return _epoch(record["updated_at"])

    def _visible(self, resource: str, exclude_deleted: bool) -> list[tuple[int, int]]:
        """(key, id) of every record an export may serve now, ascending."""
        horizon = int((self.clock() - self.exclude_recent).timestamp()) \
            if self.exclude_recent else None
        keys = []
        for record_id, record in self.data[resource].items():
            if exclude_deleted and self._deleted(resource, record):
                continue
            key = self._key(resource, record)
            if horizon is not None and key > horizon:
                continue
            keys.append((key, record_id))
        keys.sort()
        return keys

    def _export(self, request: Request, resource: str) -> Response:
        limited = self._limited(request.path)
        if limited is not None:
            return limited
        self.stats["exports"] += 1
        headers = {"X-Rate-Limit": str(self.export_rate_limit),
                   "X-Rate-Limit-Remaining": str(self.export_rate_limit
                                                 - len(self._export_calls[request.path]))}
        if self.faults:
            fault = self.faults[0]
            if fault != "bad_record":
                self.faults.pop(0)
            if fault == "rate_limit":
                return _json({"error": "APIRateLimitExceeded",
                              "description": "Number of allowed incremental export API "
                                             "requests per minute exceeded"}, 429,
                             {"Retry-After": "1"})
            if fault == "server_error":
                return _json({"error": "ServiceUnavailable",
                              "description": "Server temporarily unavailable"}, 503)
            if fault == "truncated":
                key = resource
                return Response(f'{{"{key}": [{{"id": 1, "na', mimetype="application/json",
                                headers=headers)
        if resource in CURSOR_EXPORTS:
            response = self._cursor_export(request, resource)
        else:
            response = self._time_export(request, resource)
        for name, value in headers.items():
            response.headers[name] = value
        return response

    def _list(self, request: Request, resource: str) -> Response:
        """A list endpoint with cursor pagination (``page[size]`` ≤ 100, ``page[after]``)."""
        size = request.args.get("page[size]", 100, type=int) or 100
        if not 1 <= size <= 100:
            return _json({"error": "InvalidPaginationParameter",
                          "description": "page[size] must be between 1 and 100"}, 400)
        after = request.args.get("page[after]")
        try:
            after_id = int(base64.b64decode(after, validate=True).decode()) if after else 0
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return _json({"error": "InvalidPaginationParameter",
                          "description": "page[after] is not a valid cursor"}, 400)
        ids = [i for i, r in sorted(self.data[resource].items())
               if i > after_id and not self._deleted(resource, r)]
        chunk = ids[:size]
        has_more = len(ids) > size
        cursor = base64.b64encode(str(chunk[-1]).encode()).decode() if chunk else None
        following = None
        if has_more and cursor:
            following = f"{request.host_url}api/v2/{resource}.json?" + urlencode(
                {"page[size]": size, "page[after]": cursor})
        return _json({resource: [dict(self.data[resource][i]) for i in chunk],
                      "meta": {"has_more": has_more, "after_cursor": cursor,
                               "before_cursor": None},
                      "links": {"next": following, "prev": None}})

    def _start_time(self, request: Request) -> int | Response:
        raw = request.args.get("start_time")
        if raw is None or not raw.lstrip("-").isdigit():
            return _json({"error": "InvalidValue",
                          "description": "start_time must be a unix timestamp"}, 400)
        start = int(raw)
        if start > (self.clock() - MIN_START_AGE).timestamp():
            return _json({"error": "InvalidValue",
                          "description": "Too recent start_time. Use a start_time older "
                                         "than 1 minute"}, 422)
        return start

    def _page_records(self, resource: str, ids: list[int]) -> list[dict[str, Any]]:
        page = [dict(self.data[resource][i]) for i in ids]
        if self.faults and self.faults[0] == "bad_record" and page:
            self.faults.pop(0)
            del page[0]["id"]
        return page

    def _cursor_export(self, request: Request, resource: str) -> Response:
        per_page = request.args.get("per_page", MAX_PER_PAGE, type=int) or MAX_PER_PAGE
        if not 1 <= per_page <= MAX_PER_PAGE:
            return _json({"error": "InvalidValue",
                          "description": f"per_page must be between 1 and {MAX_PER_PAGE}"}, 400)
        exclude_deleted = resource == "tickets" and \
            request.args.get("exclude_deleted", "").lower() == "true"
        visible = self._visible(resource, exclude_deleted)
        cursor = request.args.get("cursor")
        if cursor is not None:
            try:
                after = decode_cursor(cursor)
            except ValueError:
                return _json({"error": "InvalidValue", "description": "Invalid cursor"}, 400)
            remaining = [k for k in visible if k > after]
        else:
            start = self._start_time(request)
            if isinstance(start, Response):
                return start
            remaining = [k for k in visible if k[0] >= start]
            after = (start - 1, 2**62)
        chunk = remaining[:per_page]
        last = chunk[-1] if chunk else after
        after_cursor = encode_cursor(*last)
        query: dict[str, Any] = {"cursor": after_cursor}
        if "per_page" in request.args:
            query["per_page"] = per_page
        if exclude_deleted:
            query["exclude_deleted"] = "true"
        return _json({
            resource: self._page_records(resource, [i for _, i in chunk]),
            "after_url": f"{request.host_url}api/v2/incremental/{resource}/cursor.json?"
                         + urlencode(query),
            "after_cursor": after_cursor,
            # Paging backwards is not emulated.
            "before_url": None,
            "before_cursor": None,
            "end_of_stream": len(remaining) <= per_page,
        })

    def _time_export(self, request: Request, resource: str) -> Response:
        start = self._start_time(request)
        if isinstance(start, Response):
            return start
        remaining = [k for k in self._visible(resource, False) if k[0] >= start]
        size = self.time_page_size
        chunk = remaining[:size]
        # end_time is the last record's second and the next page starts at it, so when a
        # whole page shares start_time the export cannot move on (clients report exactly
        # this loop from the live API); see the list endpoint for the way out.
        end_time = chunk[-1][0] if chunk else start
        return _json({
            resource: self._page_records(resource, [i for _, i in chunk]),
            "next_page": f"{request.host_url}api/v2/incremental/{resource}.json?"
                         + urlencode({"start_time": end_time}),
            "count": len(chunk),
            "end_time": end_time,
            "end_of_stream": len(remaining) <= size,
        })


ACCOUNT_ID = 12_514_403
#: The event a touched field raises (``zen:event-type:<object>.<change>``).
CHANGE_EVENT = {"status": "status_changed", "tags": "tags_changed", "name": "name_changed",
                "priority": "priority_changed"}


def zendesk_signature(secret: str, url: str, body: bytes, now: datetime) -> dict[str, str]:
    """``X-Zendesk-Webhook-Signature``: base64 HMAC-SHA256 of the timestamp + body."""
    del url
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Invocation-Id": str(uuid4().int)[:12]}


def zendesk_retry(attempt: int, status: int | None, headers: Mapping[str, str]
                  ) -> float | None:
    """Zendesk retries a 409 up to three times, and a 429 or 503 whose ``Retry-After`` is
    under a minute after that wait; anything else (a timeout included) is not retried."""
    if status == 409:
        return 5.0 if attempt < 3 else None
    if status in (429, 503):
        wait = headers.get("Retry-After") or headers.get("retry-after") or ""
        if wait.isdigit() and int(wait) < 60 and attempt < 3:
            return float(wait)
    return None
