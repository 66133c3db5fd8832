"""Salesforce REST API emulator: OAuth refresh grant, SOQL query / queryAll with paging.

Follows the real wire protocol (developer.salesforce.com, resources-query): pages of up to 2,000
records with ``nextRecordsUrl`` / ``done``, the result set snapshotted at query time, 401
``INVALID_SESSION_ID`` as a JSON array on an expired session, ``Sforce-Limit-Info`` on every
API response and 403 ``REQUEST_LIMIT_EXCEEDED`` past the daily limit. No ``expires_in`` in token
responses, as in Salesforce.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.world import World

API_VERSIONS = ["58.0", "59.0", "60.0", "61.0", "62.0"]
PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Case": "500", "Task": "00T"}
TYPES = {"accounts": "Account", "contacts": "Contact", "deals": "Opportunity",
         "tickets": "Case", "tasks": "Task"}
COMMON = ["Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"]
FIELDS = {
    "Account": COMMON + ["Name", "Website", "Phone", "BillingCity", "BillingCountry",
                         "Industry", "NumberOfEmployees"],
    "Contact": COMMON + ["FirstName", "LastName", "Name", "Email", "Phone", "Title",
                         "AccountId"],
    "Opportunity": COMMON + ["Name", "AccountId", "Amount", "StageName", "CloseDate"],
    "Case": COMMON + ["Subject", "Status", "Priority", "AccountId", "ContactId"],
    "Task": COMMON + ["Subject", "Status", "ActivityDate", "WhoId", "WhatId"],
}
DATE_FIELDS = {"SystemModstamp", "LastModifiedDate", "CreatedDate"}

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w\s,]+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.IGNORECASE | re.DOTALL)
_COND = re.compile(r"^\s*(?P<field>\w+)\s*(?P<op>>=|<=|>|<|=)\s*(?P<value>\S+)\s*$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$")


def sf_datetime(value: datetime) -> str:
    """Salesforce's rendering: ``2024-01-01T00:00:00.000+0000``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{value.microsecond // 1000:03d}+0000"


def _parse_literal(text: str) -> datetime:
    if not _DATETIME.match(text):
        raise ValueError(text)
    cleaned = text.replace("Z", "+00:00")
    if cleaned[-5] in "+-" and ":" not in cleaned[-5:]:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    return datetime.fromisoformat(cleaned).astimezone(UTC)


@lru_cache(maxsize=1_000_000)
def _stamp(text: str) -> datetime:
    """Parse a stored timestamp once: queries compare every record's modstamp."""
    return _parse_literal(text)


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _error(status: int, code: str, message: str, headers: Headers | None = None) -> Response:
    return Response(json.dumps([{"message": message, "errorCode": code}]), status=status,
                    mimetype="application/json", headers=headers)


class SalesforceEmulator:
    """A Salesforce org over one :class:`World`, with a Python API for tests."""

    def __init__(self, world: World, *, client_id: str = "akita-demo-client",
                 client_secret: str = "akita-demo-secret",
                 refresh_token: str = "sf-demo-refresh-token", token_ttl_seconds: float = 3600,
                 rotate_refresh_tokens: bool = False, daily_api_limit: int = 100_000,
                 churn_per_minute: float = 0.0, clock: Callable[[], datetime] | None = None,
                 coverage: float = 0.8) -> None:
        self.world = world
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.revoked: set[str] = set()
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.rotate = rotate_refresh_tokens
        self.daily_api_limit = daily_api_limit
        self.churn_per_minute = churn_per_minute
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.tokens: dict[str, datetime] = {}
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.api_usage = 0
        self.stats: dict[str, int] = {"requests": 0, "token_refreshes": 0, "queries": 0}
        self.faults: list[str] = []
        self.rng = random.Random(f"{world.seed}:salesforce:churn")
        self.sequence = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in PREFIX}
        self._last_churn = self.clock()
        self._seed(coverage)

    # -- seeding ---------------------------------------------------------------------------
    def _new_id(self, sobject: str) -> str:
        self.sequence += 1
        return f"{PREFIX[sobject]}{'5g0000'}{self.sequence:09d}AAA"[:18]

    def _stamps(self, rng: random.Random) -> dict[str, str]:
        created = self.world.timestamp(rng)
        modified = created + (self.world.now - created) * rng.random()
        return {"CreatedDate": sf_datetime(created), "LastModifiedDate": sf_datetime(modified),
                "SystemModstamp": sf_datetime(modified)}

    def _put(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        record["IsDeleted"] = record.get("IsDeleted", False)
        self.objects[sobject][record["Id"]] = record
        return record

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:salesforce:seed")
        view = self.world.view("salesforce", coverage)
        self.truth: dict[tuple[str, str, str], str] = {}
        account_of: dict[str, str] = {}
        for cv in view.companies:
            c = cv.company
            rec = self._put("Account", {
                "Id": self._new_id("Account"), "Name": cv.name, "Website": cv.website,
                "Phone": cv.phone, "BillingCity": c.city, "BillingCountry": c.country,
                "Industry": c.industry, "NumberOfEmployees": c.employees, **self._stamps(rng)})
            account_of[c.entity_id] = rec["Id"]
            self.truth[("salesforce", "accounts", rec["Id"])] = c.entity_id
            for n in range(rng.choice([0, 1, 2])):
                self._put("Opportunity", {
                    "Id": self._new_id("Opportunity"), "Name": f"{cv.name} renewal {n + 1}",
                    "AccountId": rec["Id"], "Amount": rng.choice([5000, 12000, 48000]),
                    "StageName": rng.choice(["Prospecting", "Negotiation", "Closed Won"]),
                    "CloseDate": (self.world.now + timedelta(days=rng.randrange(-90, 90)))
                    .date().isoformat(), **self._stamps(rng)})
        for pv in view.people:
            p = pv.person
            rec = self._put("Contact", {
                "Id": self._new_id("Contact"), "FirstName": pv.first_name,
                "LastName": pv.last_name, "Name": f"{pv.first_name} {pv.last_name}",
                "Email": pv.email, "Phone": pv.phone, "Title": p.title,
                "AccountId": account_of.get(p.company), **self._stamps(rng)})
            self.truth[("salesforce", "contacts", rec["Id"])] = p.entity_id
            if rng.random() < 0.3:
                self._put("Case", {
                    "Id": self._new_id("Case"), "Subject": "Cannot log in",
                    "Status": rng.choice(["New", "Working", "Closed"]), "Priority": "Medium",
                    "AccountId": rec["AccountId"], "ContactId": rec["Id"], **self._stamps(rng)})
            if rng.random() < 0.3:
                self._put("Task", {
                    "Id": self._new_id("Task"), "Subject": "Quarterly business review",
                    "Status": "Not Started", "ActivityDate": self.world.now.date().isoformat(),
                    "WhoId": rec["Id"], "WhatId": rec["AccountId"], **self._stamps(rng)})
        # A few deleted records, so queryAll has IsDeleted rows to show.
        for sobject in ("Account", "Contact"):
            for rid in sorted(self.objects[sobject])[:: 37]:
                self.objects[sobject][rid]["IsDeleted"] = True

    # -- Python API -------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": sorted(self.refresh_tokens)[0]}

    def _sobject(self, name: str) -> str:
        return TYPES.get(name, name)

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            self._churn()
            return [dict(r) for r in self.objects[self._sobject(sobject)].values()
                    if include_deleted or not r["IsDeleted"]]

    def _bump(self, record: dict[str, Any]) -> None:
        now = sf_datetime(self.clock())
        record["LastModifiedDate"] = record["SystemModstamp"] = now

    def touch(self, sobject: str, count: int | None = None,
              ids: list[str] | None = None) -> list[str]:
        """Change records now (a field and their modstamps); returns their ids."""
        sobject = self._sobject(sobject)
        with self.lock:
            live = sorted(i for i, r in self.objects[sobject].items() if not r["IsDeleted"])
            chosen = ids if ids is not None else self.rng.sample(live, min(count or 1, len(live)))
            for rid in chosen:
                record = self.objects[sobject][rid]
                field = {"Account": "Industry", "Contact": "Title", "Opportunity": "StageName",
                         "Case": "Status", "Task": "Status"}[sobject]
                record[field] = f"{record.get(field) or ''} (updated)"[-60:]
                self._bump(record)
            return list(chosen)

    def create(self, sobject: str, count: int = 1) -> list[str]:
        sobject = self._sobject(sobject)
        with self.lock:
            ids = []
            now = sf_datetime(self.clock())
            for _ in range(count):
                rid = self._new_id(sobject)
                base: dict[str, Any] = {f: None for f in FIELDS[sobject]}
                base.update({"Id": rid, "CreatedDate": now, "LastModifiedDate": now,
                             "SystemModstamp": now, "IsDeleted": False})
                if sobject == "Account":
                    base.update({"Name": f"New Co {rid[-8:]}", "Website": f"newco{rid[-6:]}.com"})
                elif sobject == "Contact":
                    base.update({"FirstName": "New", "LastName": rid[-6:],
                                 "Name": f"New {rid[-6:]}", "Email": f"new{rid[-6:]}@example.org"})
                else:
                    base.update({k: f"New {rid[-6:]}" for k in ("Name", "Subject") if k in base})
                self._put(sobject, base)
                ids.append(rid)
            return ids

    def add_history(self, sobject: str, count: int) -> None:
        """Add ``count`` records changed at times spread over the past year: history for
        backfill and memory benchmarks."""
        sobject = self._sobject(sobject)
        rng = random.Random(f"{self.world.seed}:history:{sobject}:{count}")
        with self.lock:
            ids = self.create(sobject, count)
            for rid in ids:
                stamps = self._stamps(rng)
                self.objects[sobject][rid].update(stamps)

    def delete(self, sobject: str, ids: list[str]) -> None:
        sobject = self._sobject(sobject)
        with self.lock:
            for rid in ids:
                record = self.objects[sobject][rid]
                record["IsDeleted"] = True
                self._bump(record)

    def expire_tokens(self) -> None:
        with self.lock:
            past = self.clock() - timedelta(seconds=1)
            self.tokens = {t: past for t in self.tokens}

    def inject(self, fault: str, count: int = 1) -> None:
        """Queue faults for the next API responses: rate_limit, server_error, bad_record,
        truncated."""
        with self.lock:
            self.faults.extend([fault] * count)

    def ground_truth(self) -> dict[tuple[str, str, str], str]:
        return dict(self.truth)

    def _churn(self) -> None:
        if self.churn_per_minute <= 0:
            return
        now = self.clock()
        due = int((now - self._last_churn).total_seconds() / 60 * self.churn_per_minute)
        if due <= 0:
            return
        self._last_churn = now
        for _ in range(min(due, 500)):
            sobject = self.rng.choice(["Account", "Contact", "Contact", "Opportunity", "Case"])
            if self.rng.random() < 0.2:
                self.create(sobject, 1)
            else:
                self.touch(sobject, count=1)

    # -- HTTP -------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        with self.lock:
            self.stats["requests"] += 1
            response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/__sandbox/"):
            return self._admin(request)
        if path == "/services/oauth2/token" and request.method == "POST":
            return self._token(request)
        if not path.startswith("/services/data"):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        expires = self.tokens.get(token)
        if expires is None or expires <= self.clock():
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        self.api_usage += 1
        limit = Headers({"Sforce-Limit-Info":
                         f"api-usage={self.api_usage}/{self.daily_api_limit}"})
        if self.api_usage > self.daily_api_limit:
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", limit)
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "server_error":
                return _error(503, "SERVER_UNAVAILABLE", "Server unavailable", limit)
            if fault == "rate_limit":
                # Salesforce has no 429: concurrent-request limits also answer 403.
                return _error(403, "REQUEST_LIMIT_EXCEEDED",
                              "ConcurrentPerOrgLongTxn Limit exceeded.", limit)
            if fault == "truncated":
                return Response('{"totalSize": 3, "done": true, "records": [{"attri',
                                mimetype="application/json", headers=limit)
            self.faults.insert(0, fault)  # bad_record applies to the next page served
        self._churn()
        match = re.match(r"^/services/data/v(\d+\.\d)(/.*)?$", path)
        if path in ("/services/data", "/services/data/"):
            return Response(json.dumps([{"version": v, "label": f"v{v}",
                                         "url": f"/services/data/v{v}"} for v in API_VERSIONS]),
                            mimetype="application/json", headers=limit)
        if not match or match.group(1) not in API_VERSIONS:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", limit)
        version, rest = match.group(1), match.group(2) or "/"
        if rest in ("/query", "/query/", "/queryAll", "/queryAll/"):
            try:
                return self._query(request, version, include_deleted="All" in rest,
                                   headers=limit)
            except SoqlError as exc:
                return _error(400, exc.code, str(exc), limit)
        more = re.match(r"^/query(?:All)?/(?P<locator>[\w]+)-(?P<offset>\d+)$", rest)
        if more:
            return self._page(version, more["locator"], int(more["offset"]), limit)
        return _error(404, "NOT_FOUND", "The requested resource does not exist", limit)

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return Response(json.dumps({"error": "unsupported_grant_type",
                                        "error_description": "grant type not supported"}),
                            status=400, mimetype="application/json")
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return Response(json.dumps({"error": "invalid_client_id",
                                        "error_description": "client identifier invalid"}),
                            status=400, mimetype="application/json")
        refresh = form.get("refresh_token", "")
        if refresh in self.revoked:
            # Reusing a rotated refresh token revokes the whole family.
            self.refresh_tokens.clear()
        if refresh not in self.refresh_tokens:
            return Response(json.dumps({"error": "invalid_grant",
                                        "error_description": "expired access/refresh token"}),
                            status=400, mimetype="application/json")
        self.stats["token_refreshes"] += 1
        access = "00D" + secrets.token_urlsafe(24)
        self.tokens[access] = self.clock() + self.token_ttl
        base = request.host_url.rstrip("/")
        body: dict[str, Any] = {
            "access_token": access, "instance_url": base,
            "id": f"{base}/id/00D000000000001AAA/005000000000001AAA", "token_type": "Bearer",
            "issued_at": str(int(self.clock().timestamp() * 1000)),
            "signature": secrets.token_urlsafe(16), "scope": "api refresh_token"}
        if self.rotate:
            new = "5Aep" + secrets.token_urlsafe(24)
            self.refresh_tokens.discard(refresh)
            self.revoked.add(refresh)
            self.refresh_tokens.add(new)
            body["refresh_token"] = new
        return Response(json.dumps(body), mimetype="application/json")

    def _parse(self, soql: str) -> tuple[str, list[str], list[tuple[str, str, Any]], int | None]:
        match = _SELECT.match(soql)
        if not match:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token in: {soql[:80]}")
        sobject = next((o for o in FIELDS if o.lower() == match["obj"].lower()), None)
        if sobject is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{match['obj']}' is not supported.")
        fields = [f.strip() for f in match["fields"].split(",")]
        known = {f.lower(): f for f in FIELDS[sobject]}
        for f in fields:
            if f.lower() not in known:
                raise SoqlError("INVALID_FIELD", f"No such column '{f}' on entity '{sobject}'.")
        conditions = []
        if match["where"]:
            for part in re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE):
                cond = _COND.match(part)
                if not cond or cond["field"].lower() not in known:
                    raise SoqlError("MALFORMED_QUERY", f"unexpected condition: {part[:60]}")
                field = known[cond["field"].lower()]
                value: Any = cond["value"]
                if field in DATE_FIELDS:
                    try:
                        value = _parse_literal(value)
                    except ValueError:
                        raise SoqlError("MALFORMED_QUERY",
                                        f"invalid datetime literal {value[:40]}") from None
                else:
                    value = value.strip("'")
                conditions.append((field, cond["op"], value))
        if match["order"]:
            order = [o.strip().split()[0] for o in match["order"].split(",")]
            for o in order:
                if o.lower() not in known:
                    raise SoqlError("INVALID_FIELD", f"No such column '{o}'")
        limit = int(match["limit"]) if match["limit"] else None
        return sobject, [known[f.lower()] for f in fields], conditions, limit

    def _query(self, request: Request, version: str, *, include_deleted: bool,
               headers: Headers) -> Response:
        soql = request.args.get("q")
        if not soql:
            raise SoqlError("MALFORMED_QUERY", "missing query parameter q")
        sobject, fields, conditions, limit = self._parse(soql)
        self.stats["queries"] += 1
        ops: dict[str, Callable[[Any, Any], bool]] = {
            ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
            "<": lambda a, b: a < b, "=": lambda a, b: a == b}
        rows = []
        for record in self.objects[sobject].values():
            if record["IsDeleted"] and not include_deleted:
                continue
            ok = True
            for field, op, value in conditions:
                have = record.get(field)
                if field in DATE_FIELDS and isinstance(have, str):
                    have = _stamp(have)
                if have is None or not ops[op](have, value):
                    ok = False
                    break
            if ok:
                rows.append(record)
        rows.sort(key=lambda r: (r["SystemModstamp"], r["Id"]))
        if limit is not None:
            rows = rows[:limit]
        url = f"/services/data/v{version}/sobjects/{sobject}/"
        snapshot = [{"attributes": {"type": sobject, "url": url + r["Id"]},
                     **{f: r.get(f) for f in fields}} for r in rows]
        locator = "01g" + secrets.token_hex(6).upper()
        self.cursors[locator] = snapshot
        batch = request.headers.get("Sforce-Query-Options", "")
        size = 2000
        found = re.search(r"batchSize=(\d+)", batch)
        if found:
            size = max(200, min(2000, int(found.group(1))))
        self.cursors[locator + ":size"] = [{"size": size}]
        return self._page(version, locator, 0, headers)

    def _page(self, version: str, locator: str, offset: int, headers: Headers) -> Response:
        snapshot = self.cursors.get(locator)
        if snapshot is None:
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", headers)
        size = int(self.cursors[locator + ":size"][0]["size"])
        page = [dict(r) for r in snapshot[offset:offset + size]]
        if self.faults and self.faults[0] == "bad_record" and page:
            self.faults.pop(0)
            page[0] = {k: v for k, v in page[0].items() if k != "Id"}
        done = offset + size >= len(snapshot)
        body: dict[str, Any] = {"totalSize": len(snapshot), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + size}"
        return Response(json.dumps(body), mimetype="application/json", headers=headers)

    def _admin(self, request: Request) -> Response:
        action = request.path.removeprefix("/__sandbox/").strip("/")
        body = request.get_json(silent=True) or {}
        result: Any
        if action == "stats":
            result = dict(self.stats)
        elif action == "ground_truth":
            result = [{"provider": p, "type": t, "id": i, "entity": e}
                      for (p, t, i), e in sorted(self.truth.items())]
        elif action == "touch":
            result = {"ids": self.touch(body["sobject"], body.get("count"), body.get("ids"))}
        elif action == "create":
            result = {"ids": self.create(body["sobject"], int(body.get("count", 1)))}
        elif action == "delete":
            self.delete(body["sobject"], list(body["ids"]))
            result = {"ok": True}
        elif action == "expire_tokens":
            self.expire_tokens()
            result = {"ok": True}
        elif action == "faults":
            self.inject(str(body["fault"]), int(body.get("count", 1)))
            result = {"ok": True}
        else:
            return Response(json.dumps({"error": f"unknown action {action}"}), status=404,
                            mimetype="application/json")
        return Response(json.dumps(result), mimetype="application/json")
