"""Intercom REST API emulator: contact and conversation search, the company scroll.

Follows the real wire protocol (the 2.15 / 2.16 OpenAPI descriptions in Intercom-OpenAPI)
closely enough for the official ``python-intercom`` client:

====================================  ==================================================
``GET /me``                           the admin and its workspace (``app.timezone``)
``POST /contacts/search``             ``{query, sort?, pagination?}`` → ``contact_list``
``POST /conversations/search``        the same → ``conversation_list``
``GET /companies/scroll``             ``?scroll_param=`` → ``company_scroll``
``GET /conversations/deleted``        ``?page&per_page&order`` (2.16 on): deleted ids
``GET /contacts/<id>``                one contact (likewise companies, conversations)
====================================  ==================================================

The traps a client must survive, all emulated:

* Search matches date fields **by calendar day in the workspace's time zone**: ``>`` on a
  timestamp starts at the next local day, ``<`` before the value's local day, ``=`` matches the
  whole day, and ``!=``, ``>=``, ``<=``, ``IN`` and ``NIN`` on dates are refused. Responses still
  carry full UNIX timestamps and sorting uses the full value.
* The search cursor travels in the body (``pagination.starting_after``); query-string
  parameters are ignored, so a cursor sent there returns page 1 again. Cursors are
  search-after positions (sort value, id), so a record changed while a client pages moves
  behind it instead of shifting the pages.
* Newly created records can take ``index_delay_seconds`` to become searchable.
* One open company scroll per workspace: a second one is refused with 400 ``scroll_exists``
  until the first reaches its end or sits unused for ``scroll_expiry_seconds``; an expired
  ``scroll_param`` answers 404 ``not_found``; a 500 mid-scroll kills the scroll.
* ``Intercom-Version`` must be a published version (400 ``intercom_version_invalid``
  otherwise, and for the search endpoints on versions before 2.0); without it the
  workspace's default applies.
* Access tokens do not expire; a revoked one gets 401 ``unauthorized``. Every error is an
  ``error.list``. Every response carries ``X-RateLimit-Limit`` (per minute),
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (UNIX seconds); the budget is spent in
  10-second windows, and past it the answer is 429 ``rate_limit_exceeded``.
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
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.admin import serve
from akita_pipelines.sandbox.churn import ChurnMeter
from akita_pipelines.sandbox.emulator import AdminSurface, known, own_name
from akita_pipelines.sandbox.webhooks import WebhookOutbox, json_body, subscription_answer
from akita_pipelines.sandbox.world import World

VERSIONS = tuple([f"1.{n}" for n in range(5)] + [f"2.{n}" for n in range(17)])
DEFAULT_VERSION = "2.16"
#: Akita stream names → Intercom object names.
TYPES = {"accounts": "companies", "contacts": "contacts", "tickets": "conversations"}
MAX_PER_PAGE = 150
DEFAULT_PER_PAGE = {"contacts": 50, "conversations": 20}
SCROLL_PAGE = 100
#: Date fields per searchable object: matched by local calendar day.
DATE_FIELDS = {
    "contacts": {"created_at", "signed_up_at", "updated_at", "last_seen_at",
                 "last_contacted_at", "last_replied_at", "last_email_opened_at",
                 "last_email_clicked_at"},
    "conversations": {"created_at", "updated_at", "waiting_since", "snoozed_until"},
}
DATE_OPERATORS = {"=", ">", "<"}
OPERATORS = {"=", "!=", "IN", "NIN", "<", "<=", ">", ">=", "~", "!~", "^", "$"}
MAX_FILTERS_PER_GROUP = 15
MAX_NESTING = 2
WINDOW_SECONDS = 10


def _error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [error]}


class SearchError(Exception):
    """A search Intercom would refuse with 400 and this error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _lookup(record: dict[str, Any], field: str) -> Any:
    value: Any = record
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _cursor(values: list[Any]) -> str:
    """A search cursor: base64 JSON of the last record's sort key and the page number."""
    return base64.b64encode(json.dumps(values, separators=(",", ":")).encode()).decode()


def _uncursor(text: str) -> list[Any]:
    try:
        values = json.loads(base64.b64decode(text.encode(), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise SearchError("parameter_invalid", "starting_after is invalid") from None
    if not isinstance(values, list) or len(values) != 4 \
            or not all(isinstance(v, int | float | str) for v in values):
        raise SearchError("parameter_invalid", "starting_after is invalid")
    return values


class IntercomEmulator(AdminSurface):
    """An Intercom workspace over one :class:`World`, served by ``wsgi_app``, with a Python API.

    Args:
        world: The seeded world; the workspace holds ``world.view("intercom", coverage)``.
        token_ttl_seconds: Ignored: Intercom access tokens do not expire by themselves.
        churn_per_minute: Records changed per minute of clock time, applied lazily on each
            request, stamped spread over the elapsed time.
        clock: Returns the current aware datetime; a fake clock lets tests move time.
        coverage: Share of the world's companies this workspace holds.
        timezone: The workspace's time zone: search compares dates by its calendar days.
        rate_limit_per_minute: The app's budget, spent in 10-second windows (a sixth each).
        scroll_expiry_seconds: An unused company scroll expires after this long.
        index_delay_seconds: How long a new record stays invisible to search.
        scroll_ends_with_404: End a scroll as observed in the wild (404 on the call after the
            last, short page) instead of as documented (an empty page).
    """

    #: ``rate_limit`` (429 ``rate_limit_exceeded``), ``server_error`` (500; kills a scroll it
    #: hits mid-way), ``truncated`` (a cut JSON body) or ``bad_record`` (the next list page's
    #: first record lacks its ``id``); faults come after authentication.
    FAULTS = AdminSurface.FAULTS

    def __init__(self, world: World, *, token_ttl_seconds: float = 3600,
                 churn_per_minute: float = 0.0, clock: Callable[[], datetime] | None = None,
                 coverage: float = 0.75, timezone: str = "America/Los_Angeles",
                 rate_limit_per_minute: int = 10_000, scroll_expiry_seconds: float = 60.0,
                 index_delay_seconds: float = 0.0, scroll_ends_with_404: bool = False) -> None:
        del token_ttl_seconds  # part of the emulator contract; Intercom tokens never expire
        self.world = world
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        self.churn_per_minute = churn_per_minute
        self.rate_limit_per_minute = rate_limit_per_minute
        self.scroll_expiry = timedelta(seconds=scroll_expiry_seconds)
        self.index_delay = timedelta(seconds=index_delay_seconds)
        self.scroll_ends_with_404 = scroll_ends_with_404
        self.lock = threading.RLock()
        self.rng = random.Random(f"{world.seed}:intercom:churn")
        self.app_id = "akitademoapp"
        self.tokens = {f"dG9rOi{secrets.token_urlsafe(24)}"}
        self.revoked: set[str] = set()
        self.current_token = next(iter(self.tokens))
        self.stats: dict[str, int] = {"requests": 0, "searches": 0, "scroll_pages": 0,
                                      "rate_limited": 0, "token_refreshes": 0}
        self.faults: list[str] = []
        self.data: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in TYPES.values()}
        #: When each record became searchable (creation + index delay).
        self.indexed_at: dict[str, datetime] = {}
        #: Deleted conversation id → when (the only deletions Intercom lists).
        self.deleted_conversations: dict[str, int] = {}
        self.truth: dict[tuple[str, str, str], str] = {}
        self.scroll: dict[str, Any] | None = None
        self._bad_served = False
        self._sequence = 0
        self._conversation_number = 500
        self._window_start = 0
        self._window_used = 0
        now = self.clock()
        self._churn_meter = ChurnMeter(churn_per_minute, now)
        #: The app's client secret: Intercom signs webhook notifications with it.
        self.client_secret = "ic-demo-client-secret"
        self.webhooks = WebhookOutbox(
            clock=self.clock, sign=intercom_signature, render=_intercom_body,
            retry=intercom_retry, timeout_seconds=5, user_agent="intercom-parrot-service")
        self._seed(coverage)

    # -- seeding ----------------------------------------------------------------------------
    def _new_id(self) -> str:
        self._sequence += 1
        return f"6762f097{self._sequence:016x}"

    def _times(self, rng: random.Random) -> tuple[int, int]:
        created = self.world.timestamp(rng)
        updated = created + (self.world.now - created) * rng.random()
        return int(created.timestamp()), int(updated.timestamp())

    def _company(self, name: str, website: str | None, industry: str | None, size: int | None,
                 created: int, updated: int, company_id: str | None = None) -> dict[str, Any]:
        record_id = self._new_id()
        return {
            "type": "company", "id": record_id, "name": name, "app_id": self.app_id,
            "company_id": company_id or f"remote_{record_id[-8:]}", "remote_created_at": created,
            "created_at": created, "updated_at": updated, "last_request_at": updated,
            "size": size or 0, "website": website or "", "industry": industry or "",
            "monthly_spend": 0, "session_count": 0, "user_count": 0, "custom_attributes": {},
            "plan": {}, "tags": {"type": "tag.list", "tags": []},
            "segments": {"type": "segment.list", "segments": []}}

    def _contact(self, name: str, email: str | None, phone: str | None,
                 company_ids: list[str], created: int, updated: int,
                 external_id: str | None = None) -> dict[str, Any]:
        record_id = self._new_id()
        domain = email.rsplit("@", 1)[1].lower() if email and "@" in email else ""
        return {
            "type": "contact", "id": record_id, "workspace_id": self.app_id,
            "external_id": external_id, "role": "user", "email": email or "",
            "email_domain": domain, "phone": phone, "name": name, "owner_id": None,
            "has_hard_bounced": False, "marked_email_as_spam": False,
            "unsubscribed_from_emails": False, "created_at": created, "updated_at": updated,
            "signed_up_at": created, "last_seen_at": None, "last_replied_at": None,
            "last_contacted_at": None, "last_email_opened_at": None,
            "last_email_clicked_at": None, "language_override": None, "browser": None,
            "browser_version": None, "browser_language": None, "os": None,
            "custom_attributes": {}, "avatar": {"type": "avatar", "image_url": None},
            "tags": {"data": [], "url": f"/contacts/{record_id}/tags", "total_count": 0,
                     "has_more": False},
            "notes": {"data": [], "url": f"/contacts/{record_id}/notes", "total_count": 0,
                      "has_more": False},
            "companies": {"type": "list",
                          "data": [{"type": "company", "id": c, "url": f"/companies/{c}"}
                                   for c in company_ids],
                          "url": f"/contacts/{record_id}/companies",
                          "total_count": len(company_ids), "has_more": False},
            "location": {"type": "location", "country": None, "region": None, "city": None},
            "social_profiles": {"data": []}}

    def _conversation(self, contact: dict[str, Any], subject: str, state: str, created: int,
                      updated: int) -> dict[str, Any]:
        self._conversation_number += 1
        company_ids = [c["id"] for c in contact["companies"]["data"]]
        record: dict[str, Any] = {
            "type": "conversation", "id": str(self._conversation_number), "title": subject,
            "created_at": created, "updated_at": updated, "waiting_since": None,
            "snoozed_until": None, "open": state == "open", "state": state, "read": True,
            "priority": "none",
            "source": {"type": "conversation", "id": str(400_000_000 + self._conversation_number),
                       "delivered_as": "customer_initiated", "subject": subject,
                       "body": f"<p>{subject}</p>",
                       "author": {"type": "user", "id": contact["id"], "name": contact["name"],
                                  "email": contact["email"]},
                       "attachments": [], "url": None, "redacted": False},
            "contacts": {"type": "contact.list",
                         "contacts": [{"type": "contact", "id": contact["id"],
                                       "external_id": contact["external_id"]}]},
            "teammates": {"type": "admin.list", "teammates": []},
            "tags": {"type": "tag.list", "tags": []}, "custom_attributes": {},
            "ai_agent_participated": False}
        if company_ids:
            company = self.data["companies"].get(company_ids[0])
            if company is not None:
                record["company"] = {k: company[k] for k in ("type", "id", "name", "company_id",
                                                             "created_at", "updated_at")}
        return record

    def _put(self, kind: str, record: dict[str, Any], searchable_from: datetime | None = None
             ) -> dict[str, Any]:
        self.data[kind][record["id"]] = record
        if searchable_from is not None:
            self.indexed_at[record["id"]] = searchable_from
        return record

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:intercom:seed")
        view = self.world.view("intercom", coverage)
        company_of: dict[str, str] = {}
        for cv in view.companies:
            created, updated = self._times(rng)
            record = self._put("companies", self._company(
                cv.name, cv.website, cv.company.industry, cv.company.employees, created,
                updated, company_id=cv.company.entity_id))
            company_of[cv.company.entity_id] = record["id"]
            self._register("accounts", record["id"], cv.company.entity_id)
        for pv in view.people:
            created, updated = self._times(rng)
            company = company_of.get(pv.person.company)
            record = self._put("contacts", self._contact(
                f"{pv.first_name} {pv.last_name}", pv.email, pv.phone,
                [company] if company else [], created, updated,
                external_id=pv.person.entity_id))
            self._register("contacts", record["id"], pv.person.entity_id)
            if rng.random() < 0.35:
                c_created, c_updated = self._times(rng)
                c_created = max(c_created, created)
                self._put("conversations", self._conversation(
                    record, rng.choice(["Cannot log in", "Billing question", "Feature request",
                                        "Export fails", "Invite teammates"]),
                    rng.choice(["open", "closed", "closed", "snoozed"]), c_created,
                    max(c_created, c_updated)))

    def _register(self, object_type: str, record_id: str, entity_id: str) -> None:
        self.truth[("intercom", object_type, record_id)] = entity_id
        self.world.register("intercom", object_type, record_id, entity_id)

    # -- Python API -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        """The workspace's current access token (what the integration is registered with)."""
        with self.lock:
            return {"access_token": self.current_token}

    @staticmethod
    def _kind(interaction_type: str) -> str:
        return own_name(TYPES, set(TYPES.values()), interaction_type, "Intercom object")

    def records(self, interaction_type: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The workspace's current records (copies, in id order), as the API serves them.

        Intercom deletes for good. Only conversations leave a trace, in
        ``GET /conversations/deleted``: ``include_deleted`` adds those entries for tickets.
        """
        kind = self._kind(interaction_type)
        with self.lock:
            self._churn()
            found = [json.loads(json.dumps(r)) for _, r in sorted(self.data[kind].items())]
            if include_deleted and kind == "conversations":
                found += [self._deleted_item(i) for i in sorted(self.deleted_conversations)]
            return found

    def _deleted_item(self, record_id: str) -> dict[str, Any]:
        return {"type": "conversation", "id": record_id, "metrics_retained": False,
                "deleted_at": self.deleted_conversations[record_id]}

    def _stamp(self, at: datetime | None = None) -> int:
        return int((at or self.clock()).timestamp())

    def touch(self, interaction_type: str, count: int) -> list[str]:
        """Change ``count`` random records now: one field and their ``updated_at``."""
        kind = self._kind(interaction_type)
        with self.lock:
            return self._touch(kind, count, None)

    def _touch(self, kind: str, count: int, at: datetime | None) -> list[str]:
        table = self.data[kind]
        chosen = self.rng.sample(sorted(table), min(count, len(table)))
        stamp = self._stamp(at)
        for record_id in chosen:
            record = table[record_id]
            if kind == "companies":
                record["monthly_spend"] = int(record["monthly_spend"]) + 10
            elif kind == "contacts":
                record["last_seen_at"] = stamp
            else:
                record["state"] = "closed" if record["state"] != "closed" else "open"
                record["open"] = record["state"] == "open"
            record["updated_at"] = max(stamp, int(record["updated_at"]))
            self._notify(kind, record, "updated")
        return chosen

    def create(self, interaction_type: str, count: int) -> list[str]:
        """Create ``count`` records stamped now (not world entities: no ground truth).

        They become searchable ``index_delay_seconds`` later, as in Intercom.
        """
        kind = self._kind(interaction_type)
        with self.lock:
            return self._create(kind, count, None)

    def _create(self, kind: str, count: int, at: datetime | None) -> list[str]:
        when = at or self.clock()
        stamp = self._stamp(when)
        made = []
        for _ in range(count):
            if kind == "companies":
                tag = f"{self._sequence + 1:06d}"
                record = self._company(f"New Company {tag}", f"newco{tag}.example", None, None,
                                       stamp, stamp)
            elif kind == "contacts":
                tag = f"{self._sequence + 1:06d}"
                record = self._contact(f"New Person{tag}", f"new{tag}@example.org", None, [],
                                       stamp, stamp)
            else:
                contacts = sorted(self.data["contacts"])
                owner = self.data["contacts"][self.rng.choice(contacts)]
                record = self._conversation(owner, "New question", "open", stamp, stamp)
            self._put(kind, record, when + self.index_delay)
            self._notify(kind, record, "created")
            made.append(record["id"])
        return made

    def delete(self, interaction_type: str, ids: Iterable[str]) -> None:
        """Delete records for good; deleted conversations are listed with their time."""
        kind = self._kind(interaction_type)
        with self.lock:
            table = self.data[kind]
            for record_id in known(table, ids, kind):
                self._notify(kind, table.pop(record_id), "deleted")
                if kind == "conversations":
                    self.deleted_conversations[record_id] = self._stamp()

    def expire_tokens(self) -> None:
        """Revoke every access token (Intercom's do not expire: they are revoked).

        A new token is minted, as if the customer authorised the app again;
        :meth:`credentials` returns it.
        """
        with self.lock:
            self.revoked |= self.tokens
            self.current_token = f"dG9rOi{secrets.token_urlsafe(24)}"
            self.tokens = {self.current_token}

    def _churn(self) -> None:
        for at in self._churn_meter.due(self.clock()):
            kind = self.rng.choice(["companies", "contacts", "contacts", "conversations"])
            if self.rng.random() < 0.2:
                self._create(kind, 1, at)
            else:
                self._touch(kind, 1, at)

    # -- webhooks ---------------------------------------------------------------------------
    def subscribe_webhook(self, url: str) -> dict[str, Any]:
        """Point the app's webhook at ``url`` with every topic (Intercom: in the Developer
        Hub); notifications are signed with the app's client secret."""
        with self.lock:
            sub = self.webhooks.subscribe(url, self.client_secret)
            return subscription_answer(sub, self.app_id)

    def poke(self) -> None:
        """Apply the churn due now (the outbox's thread calls it so changes are pushed
        without any API request)."""
        if self.webhooks.subscribed:
            with self.lock:
                self._churn()

    def _notify(self, kind: str, record: dict[str, Any], change: str) -> None:
        if not self.webhooks.subscribed:
            return
        if kind == "contacts":
            topic = ("contact.deleted" if change == "deleted"
                     else f"contact.{record.get('role', 'user')}.{change}")
        elif kind == "companies":
            topic = f"company.{change}"
        elif change == "updated":
            topic = "conversation.admin.closed" if record.get("state") == "closed" \
                else "conversation.admin.opened"
        else:
            topic = f"conversation.{'user.' if change == 'created' else ''}{change}"
        created = self._stamp()
        notification = {
            "type": "notification_event", "app_id": self.app_id,
            "data": {"type": "notification_event_data",
                     "item": _render(record, DEFAULT_VERSION)},
            "links": {}, "id": f"notif_{uuid.uuid4()}", "topic": topic,
            "delivery_status": "pending", "delivery_attempts": 1, "delivered_at": 0,
            "first_sent_at": created, "created_at": created, "self": None}
        self.webhooks.publish(lambda _sub: notification, topic)

    def _list_contacts(self, request: Request, version: str, headers: dict[str, str], *,
                       bad_record: bool) -> Response:
        """``GET /contacts``: every contact in id order, ``starting_after`` paging."""
        per_page = request.args.get("per_page", DEFAULT_PER_PAGE["contacts"], type=int)
        if per_page is None or not 1 <= per_page <= MAX_PER_PAGE:
            return self._error(400, "parameter_invalid",
                               f"per_page must be between 1 and {MAX_PER_PAGE}", headers)
        ids = sorted(self.data["contacts"])
        page = 1
        after = request.args.get("starting_after")
        if after:
            try:
                last_id, page_before = json.loads(base64.b64decode(after, validate=True))
                page = int(page_before) + 1
            except (binascii.Error, ValueError, TypeError):
                return self._error(400, "parameter_invalid", "starting_after is invalid",
                                   headers)
            ids = [i for i in ids if i > str(last_id)]
        chosen = [_render(self.data["contacts"][i], version) for i in ids[:per_page]]
        if bad_record and chosen:
            del chosen[0]["id"]
        total = len(self.data["contacts"])
        pages: dict[str, Any] = {"type": "pages", "page": page, "per_page": per_page,
                                 "total_pages": math.ceil(total / per_page)}
        if len(ids) > per_page:
            pages["next"] = {"page": page + 1,
                             "starting_after": _cursor([ids[per_page - 1], page])}
        self._bad_served = bad_record and bool(chosen)
        return self._json({"type": "list", "data": chosen, "total_count": total,
                           "pages": pages}, headers=headers)

    # -- HTTP -------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI application serving the workspace (one request at a time)."""
        return serve(self, self.lock, environ, start_response, self._dispatch)

    def _rate_headers(self) -> dict[str, str]:
        now = self.clock().timestamp()
        window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        if window != self._window_start:
            self._window_start, self._window_used = window, 0
        per_window = max(1, self.rate_limit_per_minute * WINDOW_SECONDS // 60)
        return {"X-RateLimit-Limit": str(self.rate_limit_per_minute),
                "X-RateLimit-Remaining": str(max(0, per_window - self._window_used)),
                "X-RateLimit-Reset": str(window + WINDOW_SECONDS)}

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None
              ) -> Response:
        return Response(json.dumps(body), status=status, headers=headers,
                        content_type="application/json; charset=utf-8")

    def _error(self, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> Response:
        return self._json(_error_body(code, message), status, headers)

    def _dispatch(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "")
        scheme, _, value = token.partition(" ")
        if scheme.lower() != "bearer" or value.strip() not in self.tokens:
            return self._error(401, "unauthorized", "Access Token Invalid")
        version = request.headers.get("Intercom-Version") or DEFAULT_VERSION
        if version not in VERSIONS:
            return self._error(400, "intercom_version_invalid",
                               "The requested version could not be found")
        headers = self._rate_headers()
        self._window_used += 1
        if int(headers["X-RateLimit-Remaining"]) <= 0:
            self.stats["rate_limited"] += 1
            return self._error(429, "rate_limit_exceeded", "Rate Limit Exceeded", headers)
        headers["X-RateLimit-Remaining"] = str(int(headers["X-RateLimit-Remaining"]) - 1)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "rate_limit":
            self.stats["rate_limited"] += 1
            reset = math.ceil(self.clock().timestamp()) + 1
            return self._error(429, "rate_limit_exceeded", "Rate Limit Exceeded", {
                **headers, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        if fault == "server_error":
            if request.path == "/companies/scroll" and request.args.get("scroll_param"):
                self.scroll = None  # a failure mid-scroll: the client must start over
            return self._error(500, "server_error", "Request failed due to an internal network "
                               "error. Please restart the scroll operation.", headers)
        if fault == "truncated":
            return Response('{"type": "list", "data": [{"type": "contact", "id": "6762f',
                            content_type="application/json", headers=headers)
        self._churn()
        self._bad_served = False
        response = self._route(request, version, headers, bad_record=fault == "bad_record")
        if fault == "bad_record" and not self._bad_served:
            self.faults.insert(0, fault)  # applies to the next list page served
        return response

    def _route(self, request: Request, version: str, headers: dict[str, str], *,
               bad_record: bool) -> Response:
        path = request.path.rstrip("/")
        method = request.method
        if path == "/me" and method == "GET":
            return self._json(self._me(), headers=headers)
        if path in ("/contacts/search", "/conversations/search"):
            if method != "POST":
                return self._error(404, "not_found", "Resource Not Found", headers)
            if version.startswith("1."):
                return self._error(400, "intercom_version_invalid", "Requested resource is not "
                                   "available in current API version", headers)
            kind = path.split("/")[1]
            try:
                response = self._search(kind, request, version, headers,
                                        bad_record=bad_record)
            except SearchError as exc:
                return self._error(400, exc.code, str(exc), headers)
            return response
        if path == "/conversations/deleted" and method == "GET":
            if version not in VERSIONS[VERSIONS.index("2.16"):]:
                return self._error(400, "intercom_version_invalid", "Requested resource is not "
                                   "available in current API version.", headers)
            return self._deleted(request, headers)
        if path == "/companies/scroll" and method == "GET":
            return self._scroll(request, headers, bad_record=bad_record)
        if path == "/contacts" and method == "GET":
            return self._list_contacts(request, version, headers, bad_record=bad_record)
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in self.data and method == "GET":
            record = self.data[parts[0]].get(parts[1])
            if record is None:
                return self._error(404, "not_found", "Resource Not Found", headers)
            return self._json(_render(record, version), headers=headers)
        return self._error(404, "not_found", "Resource Not Found", headers)

    def _me(self) -> dict[str, Any]:
        return {"type": "admin", "id": "991267459", "email": "admin@akita.example",
                "name": "Akita Demo", "email_verified": True,
                "app": {"type": "app", "id_code": self.app_id, "name": "Akita Demo",
                        "created_at": 1577836800, "secure": False,
                        "identity_verification": False, "timezone": self.timezone,
                        "region": "US"},
                "avatar": {"type": "avatar", "image_url": None}, "has_inbox_seat": True}

    # -- search -----------------------------------------------------------------------------
    def _local_day(self, stamp: int) -> date:
        return datetime.fromtimestamp(stamp, self.zone).date()

    def _predicate(self, kind: str, query: Any, depth: int) -> Callable[[dict[str, Any]], bool]:
        if not isinstance(query, dict):
            raise SearchError("parameter_invalid", "query must be an object")
        operator = query.get("operator")
        if operator in ("AND", "OR") and isinstance(query.get("value"), list):
            if depth >= MAX_NESTING:
                raise SearchError("parameter_invalid",
                                  f"a query may nest at most {MAX_NESTING} levels")
            items = query["value"]
            if len(items) > MAX_FILTERS_PER_GROUP:
                raise SearchError("parameter_invalid", "a query group may hold at most "
                                  f"{MAX_FILTERS_PER_GROUP} filters")
            parts = [self._predicate(kind, item, depth + 1) for item in items]
            if operator == "AND":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        field = query.get("field")
        if not isinstance(field, str) or operator not in OPERATORS:
            raise SearchError("parameter_invalid", f"invalid query: operator {operator!r}")
        value = query.get("value")
        if field in DATE_FIELDS[kind]:
            return self._date_predicate(field, operator, value)
        return _value_predicate(field, operator, value)

    def _date_predicate(self, field: str, operator: str, value: Any
                        ) -> Callable[[dict[str, Any]], bool]:
        if operator not in DATE_OPERATORS:
            raise SearchError("parameter_invalid", f"operator '{operator}' is not supported "
                              f"for the date field {field}")
        if isinstance(value, bool) or not isinstance(value, int | str) \
                or not str(value).lstrip("-").isdigit():
            raise SearchError("parameter_invalid", f"{field} must be a UNIX timestamp")
        # Intercom truncates the value to its calendar day in the workspace's time zone.
        day = self._local_day(int(value))

        def predicate(record: dict[str, Any]) -> bool:
            stamp = _lookup(record, field)
            if not isinstance(stamp, int):
                return False
            have = self._local_day(stamp)
            return have == day if operator == "=" else have > day if operator == ">" \
                else have < day
        return predicate

    def _search(self, kind: str, request: Request, version: str, headers: dict[str, str], *,
                bad_record: bool) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "query" not in body:
            raise SearchError("parameter_invalid", "query is required")
        predicate = self._predicate(kind, body["query"], 0)
        sort = body.get("sort") or {}
        if not isinstance(sort, dict):
            raise SearchError("parameter_invalid", "sort must be an object")
        order = sort.get("order", "ascending")
        if order not in ("ascending", "descending"):
            raise SearchError("invalid_sort_order", f"Invalid sort order '{order}'. Must be "
                              "one of: ascending, descending")
        sort_field = sort.get("field")
        pagination = body.get("pagination") or {}
        if not isinstance(pagination, dict):
            raise SearchError("parameter_invalid", "pagination must be an object")
        per_page = pagination.get("per_page", DEFAULT_PER_PAGE[kind])
        if isinstance(per_page, bool) or not isinstance(per_page, int) \
                or not 1 <= per_page <= MAX_PER_PAGE:
            raise SearchError("parameter_invalid",
                              f"per_page must be between 1 and {MAX_PER_PAGE}")
        self.stats["searches"] += 1
        now = self.clock()
        rows = [r for rid, r in self.data[kind].items()
                if self.indexed_at.get(rid, now) <= now and predicate(r)]

        def key(record: dict[str, Any]) -> tuple[int, Any, str]:
            # Numbers before text (and missing values), then the id: a total order.
            value = _lookup(record, sort_field) if isinstance(sort_field, str) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return (0, value, record["id"])
            return (1, "" if value is None else str(value), record["id"])

        rows.sort(key=key, reverse=order == "descending")
        total = len(rows)
        page = 1
        starting_after = pagination.get("starting_after")
        if starting_after:
            rank, value, last_id, page_before = _uncursor(str(starting_after))
            if rank not in (0, 1) or (rank == 0) != isinstance(value, int | float):
                raise SearchError("parameter_invalid", "starting_after is invalid")
            after = (int(rank), value, str(last_id))
            if order == "descending":
                rows = [r for r in rows if key(r) < after]
            else:
                rows = [r for r in rows if key(r) > after]
            page = int(page_before) + 1
        chosen = [_render(r, version) for r in rows[:per_page]]
        if bad_record and chosen:
            del chosen[0]["id"]
        pages: dict[str, Any] = {"type": "pages", "page": page, "per_page": per_page,
                                 "total_pages": math.ceil(total / per_page)}
        if len(rows) > per_page:
            last = rows[per_page - 1]
            pages["next"] = {"page": page + 1,
                             "starting_after": _cursor([*key(last), page])}
        list_key = "data" if kind == "contacts" else "conversations"
        list_type = "list" if kind == "contacts" else "conversation.list"
        response = self._json({"type": list_type, list_key: chosen, "total_count": total,
                               "pages": pages}, headers=headers)
        self._bad_served = bad_record and bool(chosen)
        return response

    def _deleted(self, request: Request, headers: dict[str, str]) -> Response:
        page = request.args.get("page", 1, type=int) or 1
        per_page = request.args.get("per_page", 20, type=int) or 20
        if not 1 <= per_page <= 60 or page < 1:
            return self._error(400, "parameter_invalid", "per_page must be between 1 and 60",
                               headers)
        order = request.args.get("order", "desc")
        items = sorted((self._deleted_item(i) for i in self.deleted_conversations),
                       key=lambda d: (d["deleted_at"], d["id"]), reverse=order != "asc")
        total_pages = max(1, math.ceil(len(items) / per_page))
        following = None
        if page < total_pages:
            following = (f"{request.host_url}conversations/deleted?per_page={per_page}"
                         f"&order={order}&page={page + 1}")
        return self._json({
            "type": "conversations.list", "total_count": len(items),
            "pages": {"type": "pages", "next": following, "page": page, "per_page": per_page,
                      "total_pages": total_pages},
            "conversations": items[(page - 1) * per_page:page * per_page]}, headers=headers)

    # -- scroll -----------------------------------------------------------------------------
    def _scroll(self, request: Request, headers: dict[str, str], *, bad_record: bool
                ) -> Response:
        now = self.clock()
        if self.scroll is not None and now - self.scroll["used_at"] > self.scroll_expiry:
            self.scroll = None
        param = request.args.get("scroll_param")
        if not param:
            if self.scroll is not None:
                return self._error(400, "scroll_exists", "scroll already exists for this "
                                   "workspace", headers)
            # A point-in-time scroll over the companies in creation (id) order.
            self.scroll = {"param": str(uuid.uuid4()), "ids": sorted(self.data["companies"]),
                           "position": 0, "used_at": now}
        elif self.scroll is None or self.scroll["param"] != param:
            return self._error(404, "not_found", "scroll parameter not found", headers)
        scroll = self.scroll
        ids = scroll["ids"][scroll["position"]:scroll["position"] + SCROLL_PAGE]
        scroll["position"] += len(ids)
        scroll["used_at"] = now
        chosen = [json.loads(json.dumps(self.data["companies"][i])) for i in ids
                  if i in self.data["companies"]]
        if not ids or (self.scroll_ends_with_404 and scroll["position"] >= len(scroll["ids"])):
            self.scroll = None  # the end: the scroll parameter expires
        self.stats["scroll_pages"] += 1
        if bad_record and chosen:
            del chosen[0]["id"]
        response = self._json({"type": "list", "data": chosen, "pages": None,
                               "total_count": None, "scroll_param": scroll["param"]},
                              headers=headers)
        self._bad_served = bad_record and bool(chosen)
        return response


def _render(record: dict[str, Any], version: str) -> dict[str, Any]:
    """A copy of ``record`` as ``version`` shows it: before 2.16 a conversation's priority was
    only ``priority`` or ``not_priority``."""
    copy: dict[str, Any] = json.loads(json.dumps(record))
    major, _, minor = version.partition(".")
    if copy.get("type") == "conversation" and (int(major), int(minor)) < (2, 16):
        copy["priority"] = "not_priority" if copy.get("priority") in (None, "none") \
            else "priority"
    return copy


def _value_predicate(field: str, operator: str, value: Any) -> Callable[[dict[str, Any]], bool]:
    """Non-date filters: exact, set and (case-insensitive) text operators."""
    if operator in ("IN", "NIN"):
        if not isinstance(value, list):
            raise SearchError("parameter_invalid", f"{operator} needs an array value")
        members = {str(v).casefold() for v in value}
        negate = operator == "NIN"
        return lambda r: (str(_lookup(r, field)).casefold() in members) != negate

    def text(record: dict[str, Any]) -> str:
        have = _lookup(record, field)
        return "" if have is None else str(have).casefold()

    wanted = "" if value is None else str(value).casefold()
    if operator in ("<", ">", "<=", ">="):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SearchError("parameter_invalid", f"operator '{operator}' needs a number")
        compare: dict[str, Callable[[float, float], bool]] = {
            "<": lambda a, b: a < b, ">": lambda a, b: a > b,
            "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}
        check = compare[operator]

        def numeric(record: dict[str, Any]) -> bool:
            have = _lookup(record, field)
            return isinstance(have, int | float) and check(have, value)
        return numeric
    tests: dict[str, Callable[[str], bool]] = {
        "=": lambda t: t == wanted, "!=": lambda t: t != wanted,
        "~": lambda t: wanted in t, "!~": lambda t: wanted not in t,
        "^": lambda t: t.startswith(wanted), "$": lambda t: t.endswith(wanted)}
    test = tests[operator]
    return lambda r: test(text(r))


def _intercom_body(notifications: list[Any], attempt: int) -> bytes:
    return json_body({**notifications[0], "delivery_attempts": attempt + 1})


def intercom_signature(secret: str, url: str, body: bytes, now: datetime) -> dict[str, str]:
    """``X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, body)>``."""
    del url, now
    return {"X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body,
                                                   hashlib.sha1).hexdigest()}


def intercom_retry(attempt: int, status: int | None, headers: Mapping[str, str]
                   ) -> float | None:
    """A failed notification (an error answer or none within 5 s) is retried once, a minute
    later."""
    del status, headers
    return 60.0 if attempt == 0 else None
