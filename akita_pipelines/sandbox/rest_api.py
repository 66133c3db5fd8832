"""A customer's own REST API, emulated: one dataset served through five pagination styles.

There is no standard to follow, so this emulates the common shapes customers' APIs take:

=====================  ==========================================================================
``/cursor/v1/<type>``  ``?limit=&cursor=&updated_since=`` → ``{"data": {"items": […]},
                       "meta": {"next_cursor": "…" | null}}``
``/next/v1/<type>``    ``?per_page=&updated_since=`` → ``{"results": […], "next": absolute URL}``
``/offset/v1/<type>``  ``?offset=&limit=&updated_since=<unix>`` → ``{"items": […], "total": n}``
``/pages/v1/<type>``   ``?page=&per_page=`` → ``{"data": […], "page": n, "total_pages": m}``
``/link/v1/<type>``    ``?page=&per_page=`` → a JSON array, ``Link: <…>; rel="next"``
=====================  ==========================================================================

Types: ``accounts``, ``contacts``, and the custom ``product_usage``. Records come ordered by
id, not by ``updated_at`` (as most APIs do): a client must not assume cursor order. Deleted
records stay listed with ``"deleted": true`` and a fresh ``updated_at``.

Every auth style is accepted at once: ``Authorization: Bearer <token>`` (the static token or an
OAuth2 access token from ``POST /oauth/token``, grant ``client_credentials``, client
authenticated by HTTP Basic or form fields), ``X-API-Key`` header or ``api_key`` query
parameter, and HTTP Basic ``username:password``. A failed check is 401 ``{"error": …}``.
Rate limits: ``X-RateLimit-Limit/Remaining/Reset`` on every response; an injected
``rate_limit`` fault answers 429 with ``Retry-After: 1``.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.world import World

TYPES = ("accounts", "contacts", "product_usage")
STYLES = ("cursor", "next", "offset", "pages", "link")
DEFAULT_PAGE, MAX_PAGE = 50, 100


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_since(text: str) -> datetime:
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class RestApiEmulator:
    """The emulated customer API (see the module docstring for its wire shapes)."""

    def __init__(self, world: World | None = None, *, token_ttl_seconds: float = 1800,
                 churn_per_minute: float = 0.0, clock: Callable[[], datetime] | None = None,
                 coverage: float = 0.7) -> None:
        self.world = world or World(seed=7)
        self.coverage = coverage
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.churn_per_minute = churn_per_minute
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.rng = random.Random(f"{self.world.seed}:rest")
        self.data: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}
        self.tokens: dict[str, datetime] = {}
        self.faults: list[str] = []
        self.stats: dict[str, int] = {"requests": 0, "token_refreshes": 0}
        self.rate_limit = 1000
        #: When set, next-page links point at this host (a misconfigured proxy): clients must
        #: not follow them with their credentials.
        self.link_host: str | None = None
        self._serial = 0
        self._last_churn = self.clock()
        self._seed()

    # -- data -----------------------------------------------------------------------------
    def _seed(self) -> None:
        view = self.world.view("rest", coverage=self.coverage)
        account_of: dict[str, str] = {}
        for n, company in enumerate(view.companies, start=1):
            record_id = f"acc_{n:05d}"
            account_of[company.company.entity_id] = record_id
            self.data["accounts"][record_id] = {
                "id": record_id, "name": company.name, "domain": company.website,
                "phone": company.phone, "industry": company.company.industry,
                "updated_at": _stamp(self.world.timestamp(self.rng)), "deleted": False}
            self.data["product_usage"][f"use_{n:05d}"] = {
                "id": f"use_{n:05d}", "account_id": record_id,
                "active_users": self.rng.randrange(1, 500),
                "updated_at": _stamp(self.world.timestamp(self.rng)), "deleted": False}
        for n, person in enumerate(view.people, start=1):
            record_id = f"con_{n:05d}"
            self.data["contacts"][record_id] = {
                "id": record_id, "first_name": person.first_name, "last_name": person.last_name,
                "email": person.email, "phone": person.phone,
                "company": {"id": account_of.get(person.person.company)},
                "updated_at": _stamp(self.world.timestamp(self.rng)), "deleted": False}
        self._serial = max(len(v) for v in self.data.values())

    def credentials(self) -> dict[str, str]:
        """Demo credentials for every auth style."""
        return {"token": "rest-static-token", "api_key": "rest-api-key",
                "username": "akita", "password": "rest-password",
                "client_id": "rest-client", "client_secret": "rest-secret"}

    def integration_config(self, base_url: str, style: str = "cursor",
                           auth: str = "oauth2_client_credentials") -> dict[str, Any]:
        """A ready ``rest`` provider config reading this API (for the demo and tests)."""
        paginators: dict[str, dict[str, Any]] = {
            "cursor": {"type": "cursor", "cursor_param": "cursor",
                       "cursor_path": "meta.next_cursor", "limit_param": "limit"},
            "next": {"type": "next_link", "next_path": "next", "limit_param": "per_page"},
            "offset": {"type": "offset", "offset_param": "offset", "limit_param": "limit"},
            "pages": {"type": "page_number", "page_param": "page", "limit_param": "per_page"},
            "link": {"type": "link_header", "limit_param": "per_page"},
        }
        records = {"cursor": "data.items", "next": "results", "offset": "items",
                   "pages": "data", "link": ""}[style]
        incremental = {"param": "updated_since", "field": "updated_at",
                       "format": "unix" if style == "offset" else "iso"}

        def stream(kind: str, fields: dict[str, str]) -> dict[str, Any]:
            return {"path": f"/{style}/v1/{kind}", "records": records,
                    "paginator": paginators[style], "incremental": incremental,
                    "primary_key": "id", "deleted": "deleted", "fields": fields}

        return {"base_url": base_url, "auth": {"type": auth, "token_url": "/oauth/token"},
                "streams": {
                    "accounts": stream("accounts", {"name": "name", "website": "domain",
                                                    "phone": "phone"}),
                    "contacts": stream("contacts", {
                        "first_name": "first_name", "last_name": "last_name",
                        "email": "email", "phone": "phone", "account_ref": "company.id"}),
                    "product_usage": stream("product_usage", {"account_ref": "account_id"}),
                }}

    def records(self, interaction_type: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.data[interaction_type].values()
                    if include_deleted or not r["deleted"]]

    def touch(self, interaction_type: str, count: int) -> list[str]:
        with self.lock:
            live = sorted(k for k, r in self.data[interaction_type].items() if not r["deleted"])
            chosen = self.rng.sample(live, min(count, len(live)))
            now = _stamp(self.clock())
            for record_id in chosen:
                record = self.data[interaction_type][record_id]
                record["updated_at"] = now
                if "name" in record:
                    record["name"] = f"{record['name']} (updated)"
            return chosen

    def create(self, interaction_type: str, count: int) -> list[str]:
        with self.lock:
            prefix = {"accounts": "acc", "contacts": "con", "product_usage": "use"}
            made = []
            for _ in range(count):
                self._serial += 1
                record_id = f"{prefix[interaction_type]}_{self._serial:05d}"
                record: dict[str, Any] = {"id": record_id, "updated_at": _stamp(self.clock()),
                                          "deleted": False}
                if interaction_type == "accounts":
                    record |= {"name": f"New Company {self._serial}",
                               "domain": f"new{self._serial}.example", "phone": None}
                elif interaction_type == "contacts":
                    record |= {"first_name": "New", "last_name": f"Person{self._serial}",
                               "email": f"new{self._serial}@example.org", "phone": None,
                               "company": {"id": None}}
                else:
                    record |= {"account_id": None, "active_users": 1}
                self.data[interaction_type][record_id] = record
                made.append(record_id)
            return made

    def delete(self, interaction_type: str, ids: Iterable[str]) -> None:
        with self.lock:
            for record_id in ids:
                record = self.data[interaction_type][record_id]
                record["deleted"] = True
                record["updated_at"] = _stamp(self.clock())

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def inject(self, fault: str, count: int = 1) -> None:
        if fault not in ("rate_limit", "server_error", "bad_record", "truncated"):
            raise ValueError(f"unknown fault {fault!r}")
        with self.lock:
            self.faults.extend([fault] * count)

    def _churn(self) -> None:
        if self.churn_per_minute <= 0:
            return
        now = self.clock()
        due = int((now - self._last_churn).total_seconds() / 60 * self.churn_per_minute)
        if due:
            self._last_churn = now
            self.touch("accounts", due)

    # -- HTTP -----------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.lock:
            self.stats["requests"] += 1
            self._churn()
            response = self._dispatch(request)
        return response(environ, start_response)

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None
              ) -> Response:
        return Response(json.dumps(body), status=status, headers=headers,
                        content_type="application/json")

    def _dispatch(self, request: Request) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] not in STYLES or parts[1] != "v1" \
                or parts[2] not in TYPES:
            return self._json({"error": "not_found"}, 404)
        if not self._authorised(request):
            return self._json({"error": "unauthorized",
                               "message": "missing or invalid credentials"}, 401)
        fault = self.faults.pop(0) if self.faults else None
        if fault == "rate_limit":
            return self._json({"error": "rate_limited", "message": "Too many requests"}, 429,
                              {"Retry-After": "1", "X-RateLimit-Limit": str(self.rate_limit),
                               "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"})
        if fault == "server_error":
            return self._json({"error": "unavailable"}, 503)
        response = self._list(request, parts[0], parts[2], bad_record=fault == "bad_record")
        if fault == "truncated":
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        return response

    def _token(self, request: Request) -> Response:
        client_id = request.form.get("client_id")
        secret = request.form.get("client_secret")
        if request.authorization is not None and request.authorization.type == "basic":
            client_id = request.authorization.username
            secret = request.authorization.password
        if request.form.get("grant_type") != "client_credentials":
            return self._json({"error": "unsupported_grant_type"}, 400)
        creds = self.credentials()
        if client_id != creds["client_id"] or secret != creds["client_secret"]:
            return self._json({"error": "invalid_client"}, 401)
        token = f"at_{self.rng.getrandbits(64):016x}"
        self.tokens[token] = self.clock() + self.token_ttl
        self.stats["token_refreshes"] += 1
        return self._json({"access_token": token, "token_type": "Bearer",
                           "expires_in": int(self.token_ttl.total_seconds())})

    def _authorised(self, request: Request) -> bool:
        creds = self.credentials()
        if request.headers.get("X-API-Key") == creds["api_key"] \
                or request.args.get("api_key") == creds["api_key"]:
            return True
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username == creds["username"] and auth.password == creds["password"]
        if auth is not None and auth.type == "bearer":
            token = auth.token or ""
            if token == creds["token"]:
                return True
            expires = self.tokens.get(token)
            return expires is not None and expires > self.clock()
        return False

    def _list(self, request: Request, style: str, kind: str, *, bad_record: bool) -> Response:
        rows = sorted(self.data[kind].values(), key=lambda r: r["id"])
        since = request.args.get("updated_since")
        if since:
            try:
                bound = _parse_since(since)
            except ValueError:
                return self._json({"error": "invalid_parameter", "parameter": "updated_since"},
                                  400)
            rows = [r for r in rows if _parse_since_stamp(r["updated_at"]) >= bound]
        size_name = {"cursor": "limit", "offset": "limit"}.get(style, "per_page")
        size = max(1, min(MAX_PAGE, request.args.get(size_name, DEFAULT_PAGE, type=int)
                          or DEFAULT_PAGE))
        if style in ("cursor", "next"):
            token = request.args.get("cursor" if style == "cursor" else "page_token")
            start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        elif style == "offset":
            start = request.args.get("offset", 0, type=int) or 0
        else:
            start = ((request.args.get("page", 1, type=int) or 1) - 1) * size
        page = [dict(r) for r in rows[start:start + size]]
        if bad_record and page:
            del page[0]["id"]
        more = start + size < len(rows)
        following = base64.urlsafe_b64encode(str(start + size).encode()).decode() \
            if more else None
        headers = {"X-RateLimit-Limit": str(self.rate_limit),
                   "X-RateLimit-Remaining": str(self.rate_limit - 1), "X-RateLimit-Reset": "60"}
        if style == "cursor":
            return self._json({"data": {"items": page}, "meta": {"next_cursor": following}},
                              headers=headers)
        if style == "next":
            link = None
            if following:
                query = {k: v for k, v in request.args.items() if k != "page_token"}
                host = f"http://{self.link_host}/" if self.link_host else request.host_url
                link = f"{host}next/v1/{kind}?" + urlencode(
                    {**query, "page_token": following})
            return self._json({"results": page, "next": link}, headers=headers)
        if style == "offset":
            return self._json({"items": page, "total": len(rows)}, headers=headers)
        number = start // size + 1
        total_pages = max(1, -(-len(rows) // size))
        if style == "pages":
            return self._json({"data": page, "page": number, "total_pages": total_pages},
                              headers=headers)
        if more:
            query = {**{k: v for k, v in request.args.items() if k != "page"},
                     "page": str(number + 1)}
            headers["Link"] = f'<{request.base_url}?{urlencode(query)}>; rel="next"'
        return self._json(page, headers=headers)


def _parse_since_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
