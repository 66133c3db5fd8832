"""Salesforce REST API emulator: OAuth refresh grant, SOQL query / queryAll with paging.

Follows the real wire protocol (developer.salesforce.com, resources-query): pages of up to 2,000
records with ``nextRecordsUrl`` / ``done``, the result set snapshotted at query time, 401
``INVALID_SESSION_ID`` as a JSON array on an expired session, ``Sforce-Limit-Info`` on every
API response and 403 ``REQUEST_LIMIT_EXCEEDED`` past the daily limit. No ``expires_in`` in token
responses, as in Salesforce; with refresh-token rotation, reusing a rotated refresh token
revokes the whole token family.

Served paths (``vNN.N`` is any version from ``API_VERSIONS``):

=================================================  ==========================================
``POST /services/oauth2/token``                    ``grant_type=refresh_token`` only
``GET /services/data/``                            versions (no auth, as in Salesforce)
``GET /services/data/vNN.N/``                      resources
``GET /services/data/vNN.N/limits``                ``DailyApiRequests``, ``DailyBulkV2QueryJobs``
``GET /services/data/vNN.N/query?q=``              SOQL subset, ``IsDeleted`` rows excluded
``GET /services/data/vNN.N/queryAll?q=``           the same, ``IsDeleted`` rows included
``GET /services/data/vNN.N/query/<locator>-<n>``   next page (``nextRecordsUrl``)
``GET /services/data/vNN.N/sobjects[/T[/describe]]``  object list, describe
``GET /services/data/vNN.N/sobjects/T/<Id>``       one record
``/services/data/vNN.N/jobs/query[/<id>[/results]]``  Bulk API 2.0 query jobs (47.0+; see
                                                   :mod:`~akita_pipelines.sandbox.salesforce_bulk`)
``/__sandbox/...``                                 admin, no auth (see ``_admin``)
=================================================  ==========================================

The SOQL subset: ``SELECT f1, f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]``, where ``cond`` combines ``field op literal``
(``= != <> < <= > >= LIKE``) and ``field [NOT] IN (...)`` with ``AND``, ``OR``, ``NOT`` and
parentheses. Datetime literals are unquoted (``2024-01-01T00:00:00Z``,
``2024-01-01T00:00:00.000+0000``); strings are single-quoted. Keywords are case-insensitive.
Without ``ORDER BY`` rows come in Id order (creation order), not modstamp order, as a real org
gives no ordering guarantee. The SELECT list may follow a child-to-parent relationship
(``Account.Name`` on a Contact, Opportunity or Case; ``Contact.Email`` on a Case): REST renders
it as a nested object with its own ``attributes`` (null when the lookup is empty).
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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from akita_pipelines.sandbox.admin import serve
from akita_pipelines.sandbox.churn import ChurnMeter
from akita_pipelines.sandbox.salesforce_bulk import BulkQueryJobs
from akita_pipelines.sandbox.world import World, history_person

API_VERSIONS = [f"{v}.0" for v in range(31, 68)]
PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Case": "500", "Task": "00T"}
#: Connector stream names accepted as aliases by the Python API.
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
#: Salesforce field types; anything not listed is a string.
FIELD_TYPES: dict[str, str] = {
    **{f: "datetime" for f in DATE_FIELDS},
    "CloseDate": "date", "ActivityDate": "date", "IsDeleted": "boolean",
    "NumberOfEmployees": "int", "Amount": "currency",
    **{f: "id" for f in ("Id", "AccountId", "ContactId", "WhoId", "WhatId")},
}
#: Child-to-parent relationships a SELECT may follow (``Account.Name`` on a Contact):
#: relationship name → (the lookup field holding the parent's Id, the parent object).
RELATIONSHIPS: dict[str, dict[str, tuple[str, str]]] = {
    "Contact": {"Account": ("AccountId", "Account")},
    "Opportunity": {"Account": ("AccountId", "Account")},
    "Case": {"Account": ("AccountId", "Account"), "Contact": ("ContactId", "Contact")},
}
#: The field ``touch`` changes on each object, so a touched record differs in content too.
TOUCH_FIELD = {"Account": "Industry", "Contact": "Title", "Opportunity": "StageName",
               "Case": "Status", "Task": "Status"}
DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
#: Open query cursors kept; the oldest is dropped beyond this (a real org keeps few per user),
#: which bounds memory in a long-running demo.
MAX_OPEN_CURSORS = 50
USAGE_WINDOW = timedelta(hours=24)

_ID_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$")
_TOKEN = re.compile(r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<>|>=|<=|=|>|<)
    | (?P<punct>[(),])
    | (?P<name>[A-Za-z_][\w.]*)
    )""", re.VERBOSE)


def sf_datetime(value: datetime) -> str:
    """Render a datetime as Salesforce does: ``2024-01-01T00:00:00.000+0000`` (UTC, ms).

    Args:
        value: A timezone-aware datetime.

    Returns:
        The Salesforce rendering; lexical order equals time order.
    """
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def sf_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce id: key prefix, a 15-character body, the case checksum.

    Args:
        prefix: The object's 3-character key prefix (``001`` for Account).
        number: A sequence number, unique per emulator (< 10**8).

    Returns:
        The id, e.g. ``0015g0000000001AAA``; ids sort in ``number`` order.
    """
    return sf_id18(f"{prefix}5g00{number:08d}")


def sf_id18(id15: str) -> str:
    """Add Salesforce's case-safe checksum to a 15-character id.

    Args:
        id15: The case-sensitive 15-character id.

    Returns:
        The 18-character id (``001A0000006Vm9r`` → ``001A0000006Vm9rIAC``).
    """
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _ID_CHECKSUM[bits]
    return id15 + suffix


def parse_sf_datetime(text: str) -> datetime:
    """Parse a SOQL datetime literal or a stored Salesforce timestamp (UTC-aware).

    Args:
        text: ``2024-01-01T00:00:00Z``, ``...+01:00``, ``...+0100`` or with milliseconds.

    Returns:
        The aware datetime, in UTC.

    Raises:
        ValueError: ``text`` is not such a datetime.
    """
    if not _DATETIME.match(text):
        raise ValueError(text)
    cleaned = text.replace("Z", "+00:00")
    if cleaned[-5] in "+-" and ":" not in cleaned[-5:]:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    return datetime.fromisoformat(cleaned).astimezone(UTC)


@lru_cache(maxsize=1_000_000)
def _stamp(text: str) -> datetime:
    """Parse a stored timestamp once: queries compare every record's modstamp."""
    return parse_sf_datetime(text)


class SoqlError(Exception):
    """A query Salesforce would reject: ``code`` is its ``errorCode``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


Predicate = Callable[[dict[str, Any]], bool]


@dataclass
class Soql:
    """A parsed query of the supported SOQL subset."""

    sobject: str
    fields: list[str]
    count_only: bool
    where: Predicate | None
    order: list[tuple[str, bool, bool]]  # (field, descending, nulls_last)
    limit: int | None
    offset: int


def _comparable(field: str, value: Any) -> Any:
    """A record value in the form literals are compared with."""
    if value is None:
        return None
    kind = FIELD_TYPES.get(field, "string")
    if kind == "datetime":
        return _stamp(value)
    if kind == "id":
        return str(value)[:15]  # 15- and 18-character ids name the same record
    if kind == "string":
        return str(value).casefold()  # SOQL text comparison ignores case
    return value


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


class _Parser:
    """Recursive descent over the SOQL subset (see the module docstring)."""

    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(soql):
            if not soql[pos:].strip():
                break
            match = _TOKEN.match(soql, pos)
            if not match or match.end() == pos:
                raise SoqlError("MALFORMED_QUERY",
                                f"unexpected token: '{soql[pos:].strip()[:40]}'")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    # -- token helpers ----------------------------------------------------------------
    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        for i, word in enumerate(words):
            if self.pos + i >= len(self.tokens):
                return False
            kind, text = self.tokens[self.pos + i]
            if kind != "name" or text.upper() != word:
                return False
        return True

    def keyword(self, *words: str) -> None:
        if not self.at_keyword(*words):
            raise SoqlError("MALFORMED_QUERY",
                            f"expected {' '.join(words)} near '{self.peek()[1]}'")
        self.pos += len(words)

    def punct(self, char: str) -> None:
        if self.peek() != ("punct", char):
            raise SoqlError("MALFORMED_QUERY", f"expected '{char}' near '{self.peek()[1]}'")
        self.pos += 1

    def name(self) -> str:
        kind, text = self.take()
        if kind != "name":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'")
        return text

    # -- grammar ----------------------------------------------------------------------
    def parse(self) -> Soql:
        self.keyword("SELECT")
        raw_fields: list[str] = []
        count_only = False
        if self.at_keyword("COUNT") and self.tokens[self.pos + 1:self.pos + 2] == [("punct", "(")]:
            self.pos += 1
            self.punct("(")
            self.punct(")")
            count_only = True
        else:
            raw_fields.append(self.name())
            while self.peek() == ("punct", ","):
                self.pos += 1
                raw_fields.append(self.name())
        self.keyword("FROM")
        obj = self.name()
        sobject = next((o for o in FIELDS if o.lower() == obj.lower()), None)
        if sobject is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{obj}' is not supported. If you are "
                            "attempting to use a custom object, be sure to append the '__c' "
                            "after the entity name.")
        self.known = {f.lower(): f for f in FIELDS[sobject]}
        self.sobject = sobject
        fields = [self.field(f, select=True) for f in raw_fields]
        where = None
        if self.at_keyword("WHERE"):
            self.pos += 1
            where = self.disjunction()
        order: list[tuple[str, bool, bool]] = []
        if self.at_keyword("ORDER", "BY"):
            self.pos += 2
            while True:
                field = self.field(self.name())
                descending = False
                if self.at_keyword("ASC") or self.at_keyword("DESC"):
                    descending = self.take()[1].upper() == "DESC"
                nulls_last = False
                if self.at_keyword("NULLS", "FIRST") or self.at_keyword("NULLS", "LAST"):
                    nulls_last = self.tokens[self.pos + 1][1].upper() == "LAST"
                    self.pos += 2
                order.append((field, descending, nulls_last))
                if self.peek() != ("punct", ","):
                    break
                self.pos += 1
        limit = self.count_clause("LIMIT")
        offset = self.count_clause("OFFSET") or 0
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")
        return Soql(sobject, fields, count_only, where, order, limit, offset)

    def count_clause(self, word: str) -> int | None:
        if not self.at_keyword(word):
            return None
        self.pos += 1
        kind, text = self.take()
        if kind != "number" or not text.isdigit():
            raise SoqlError("MALFORMED_QUERY", f"{word} must be a non-negative integer")
        return int(text)

    def field(self, name: str, *, select: bool = False) -> str:
        if "." in name:
            return self.relationship_field(name, select)
        found = self.known.get(name.lower())
        if found is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity "
                            f"'{self.sobject}'. If you are attempting to use a custom field, "
                            "be sure to append the '__c' after the custom field name.")
        return found

    def relationship_field(self, name: str, select: bool) -> str:
        relation, _, parent_field = name.partition(".")
        relations = RELATIONSHIPS.get(self.sobject, {})
        found = next((r for r in relations if r.lower() == relation.lower()), None)
        if found is None or "." in parent_field:
            raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{relation}' in "
                            f"field path. If you are attempting to use a custom relationship, be "
                            "sure to append the '__r' after the custom relationship name.")
        parent = relations[found][1]
        canonical = next((f for f in FIELDS[parent] if f.lower() == parent_field.lower()), None)
        if canonical is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{parent_field}' on entity "
                            f"'{parent}'.")
        if not select:
            # The emulator's subset: parent fields are selected, not filtered or sorted on.
            raise SoqlError("MALFORMED_QUERY", f"relationship field '{name}' is supported in "
                            "the SELECT list only by this emulator")
        return f"{found}.{canonical}"

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.at_keyword("OR"):
            self.pos += 1
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda record: any(term(record) for term in terms)

    def conjunction(self) -> Predicate:
        factors = [self.factor()]
        while self.at_keyword("AND"):
            self.pos += 1
            factors.append(self.factor())
        if len(factors) == 1:
            return factors[0]
        return lambda record: all(factor(record) for factor in factors)

    def factor(self) -> Predicate:
        if self.at_keyword("NOT"):
            self.pos += 1
            inner = self.factor()
            return lambda record: not inner(record)
        if self.peek() == ("punct", "("):
            self.pos += 1
            inner = self.disjunction()
            self.punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        field = self.field(self.name())
        negate = False
        if self.at_keyword("NOT", "IN"):
            self.pos += 1
            negate = True
        if self.at_keyword("IN"):
            self.pos += 1
            self.punct("(")
            values = [self.literal(field)]
            while self.peek() == ("punct", ","):
                self.pos += 1
                values.append(self.literal(field))
            self.punct(")")
            members = set(values)
            return lambda record: (_comparable(field, record.get(field)) in members) != negate
        if self.at_keyword("LIKE"):
            self.pos += 1
            if FIELD_TYPES.get(field, "string") != "string":
                raise SoqlError("INVALID_FIELD", f"invalid operator on field '{field}'")
            pattern = _like(str(self.literal(field)))
            return lambda record: record.get(field) is not None and \
                pattern.fullmatch(str(record[field]).casefold()) is not None
        kind, op = self.take()
        if kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op}'")
        value = self.literal(field)
        return _compare(field, op, value)

    def literal(self, field: str) -> Any:
        kind, text = self.take()
        if kind == "name" and text.lower() == "null":
            return None
        ftype = FIELD_TYPES.get(field, "string")
        if ftype == "datetime":
            if kind != "datetime":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field "
                                f"'{field}' must be of type dateTime and should not be "
                                "enclosed in quotes")
            try:
                return parse_sf_datetime(text)
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", f"invalid datetime: {text}") from None
        if ftype == "date":
            if kind != "date":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field "
                                f"'{field}' must be of type date and should not be enclosed "
                                "in quotes")
            return text
        if ftype == "boolean":
            if kind != "name" or text.lower() not in ("true", "false"):
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field "
                                f"'{field}' must be of type boolean")
            return text.lower() == "true"
        if ftype in ("int", "currency"):
            if kind != "number":
                raise SoqlError("INVALID_FIELD", f"value of filter criterion for field "
                                f"'{field}' must be of type {ftype}")
            return float(text) if "." in text else int(text)
        if kind != "string":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}' (quote strings)")
        unquoted = re.sub(r"\\(.)", r"\1", text[1:-1])
        return unquoted[:15] if ftype == "id" else unquoted.casefold()


def _compare(field: str, op: str, value: Any) -> Predicate:
    if value is None:
        if op in ("=", "!=", "<>"):
            want_null = op == "="
            return lambda record: (record.get(field) is None) == want_null
        raise SoqlError("MALFORMED_QUERY", f"null can only be compared with = or != ({field})")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
        ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b}
    check = ops[op]

    def predicate(record: dict[str, Any]) -> bool:
        have = _comparable(field, record.get(field))
        if have is None:
            return op in ("!=", "<>")
        return check(have, value)
    return predicate


def parse_soql(soql: str) -> Soql:
    """Parse the supported SOQL subset.

    Args:
        soql: The query text.

    Returns:
        The parsed query, with canonical object and field names.

    Raises:
        SoqlError: ``MALFORMED_QUERY``, ``INVALID_TYPE`` or ``INVALID_FIELD``.
    """
    return _Parser(soql).parse()


def _sort(rows: list[dict[str, Any]], order: list[tuple[str, bool, bool]]) -> list[dict[str, Any]]:
    """Stable multi-key sort, one pass per key from the last; text sorts case-insensitively."""
    for field, descending, nulls_last in reversed(order):
        nulls = [r for r in rows if r.get(field) is None]
        ftype = FIELD_TYPES.get(field, "string")

        def key(record: dict[str, Any], field: str = field, ftype: str = ftype) -> Any:
            value = record[field]
            return value.casefold() if ftype == "string" else value
        # Stored timestamps share one rendering, so they sort correctly as text.
        present = sorted((r for r in rows if r.get(field) is not None), key=key,
                         reverse=descending)
        rows = present + nulls if nulls_last else nulls + present
    return rows


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    batch: int


def _describe_field(sobject: str, name: str) -> dict[str, Any]:
    """A field as describe shows it: lookups are ``reference`` fields naming their parent
    object and the relationship a query follows to it."""
    kind = FIELD_TYPES.get(name, "string")
    described: dict[str, Any] = {"name": name, "type": kind}
    if kind == "id" and name != "Id":
        described["type"] = "reference"
        found = [(rel, parent) for rel, (lookup, parent)
                 in RELATIONSHIPS.get(sobject, {}).items() if lookup == name]
        described["referenceTo"] = [found[0][1]] if found else []
        described["relationshipName"] = found[0][0] if found else None
    return described


def _error(status: int, code: str, message: str, headers: Headers | None = None) -> Response:
    return Response(json.dumps([{"message": message, "errorCode": code}]), status=status,
                    mimetype="application/json", headers=headers)


def _json(body: Any, status: int = 200, headers: Headers | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers=headers)


def _oauth_error(error: str, description: str) -> Response:
    return _json({"error": error, "error_description": description}, status=400)


class SalesforceEmulator:
    """A Salesforce org over one :class:`World`, served by ``wsgi_app``, with a Python API.

    Args:
        world: The seeded world; the org holds ``world.view("salesforce", coverage)``.
        client_id: The connected app's consumer key.
        client_secret: The connected app's consumer secret.
        refresh_token: The refresh token the demo starts with.
        token_ttl_seconds: Access-token lifetime (Salesforce's session timeout). Clients are
            not told it: they learn of expiry from a 401.
        rotate_refresh_tokens: Refresh Token Rotation: each refresh returns a new refresh
            token and invalidates the old one; reusing an old one revokes the family.
        daily_api_limit: API requests allowed per 24 hours of clock time.
        churn_per_minute: Records changed (80 %) or created (20 %) per minute of clock time,
            applied lazily on each request, stamped spread over the elapsed time.
        clock: Returns the current aware datetime; a fake clock lets tests move time.
        coverage: Share of the world's companies this org holds.
    """

    def __init__(self, world: World, *, client_id: str = "akita-demo-client",
                 client_secret: str = "akita-demo-secret",
                 refresh_token: str = "sf-demo-refresh-token", token_ttl_seconds: float = 3600,
                 rotate_refresh_tokens: bool = False, daily_api_limit: int = 100_000,
                 churn_per_minute: float = 0.0, clock: Callable[[], datetime] | None = None,
                 coverage: float = 0.8) -> None:
        self.world = world
        self.client_id, self.client_secret = client_id, client_secret
        #: Refresh tokens that grant access now; ``revoked`` holds rotated-out ones.
        self.refresh_tokens = {refresh_token}
        self.revoked: set[str] = set()
        self.current_refresh_token = refresh_token
        self.token_ttl = timedelta(seconds=token_ttl_seconds)
        self.rotate = rotate_refresh_tokens
        self.daily_api_limit = daily_api_limit
        self.churn_per_minute = churn_per_minute
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        #: access token → expiry time.
        self.tokens: dict[str, datetime] = {}
        self.cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self.api_usage = 0
        self._usage_since = self.clock()
        self.stats: dict[str, int] = {"requests": 0, "token_refreshes": 0, "queries": 0}
        self.faults: list[str] = []
        self.rng = random.Random(f"{world.seed}:salesforce:churn")
        self.sequence = 0
        self._locators = 0
        self.objects: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in PREFIX}
        self._churn_meter = ChurnMeter(churn_per_minute, self.clock())
        #: Bulk API 2.0 query jobs over the same records.
        self.bulk = BulkQueryJobs(self)
        self.truth: dict[tuple[str, str, str], str] = {}
        self._seed(coverage)

    # -- seeding ---------------------------------------------------------------------------
    def _new_id(self, sobject: str) -> str:
        self.sequence += 1
        return sf_id(PREFIX[sobject], self.sequence)

    def _stamps(self, rng: random.Random) -> dict[str, str]:
        created = self.world.timestamp(rng)
        modified = created + (self.world.now - created) * rng.random()
        return {"CreatedDate": sf_datetime(created), "LastModifiedDate": sf_datetime(modified),
                "SystemModstamp": sf_datetime(modified)}

    def _put(self, sobject: str, record: dict[str, Any]) -> dict[str, Any]:
        record["IsDeleted"] = record.get("IsDeleted", False)
        self.objects[sobject][record["Id"]] = record
        return record

    def _truth(self, object_type: str, record_id: str, entity_id: str) -> None:
        self.truth[("salesforce", object_type, record_id)] = entity_id
        self.world.register("salesforce", object_type, record_id, entity_id)

    def _seed(self, coverage: float) -> None:
        rng = random.Random(f"{self.world.seed}:salesforce:seed")
        view = self.world.view("salesforce", coverage)
        account_of: dict[str, str] = {}
        for cv in view.companies:
            c = cv.company
            rec = self._put("Account", {
                "Id": self._new_id("Account"), "Name": cv.name, "Website": cv.website,
                "Phone": cv.phone, "BillingCity": c.city, "BillingCountry": c.country,
                "Industry": c.industry, "NumberOfEmployees": c.employees, **self._stamps(rng)})
            account_of[c.entity_id] = rec["Id"]
            self._truth("accounts", rec["Id"], c.entity_id)
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
            self._truth("contacts", rec["Id"], p.entity_id)
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
        """The demo connected app and the latest refresh token issued."""
        with self.lock:
            return {"client_id": self.client_id, "client_secret": self.client_secret,
                    "refresh_token": self.current_refresh_token}

    def _sobject(self, name: str) -> str:
        sobject = TYPES.get(name, name)
        if sobject not in PREFIX:
            raise KeyError(f"unknown sObject {name!r}")
        return sobject

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The org's current records of ``sobject`` (copies, in Id order), for assertions.

        Args:
            sobject: ``Account`` ... or a stream alias (``accounts``, ``contacts``, ...).
            include_deleted: Include ``IsDeleted`` records, as ``queryAll`` does.

        Returns:
            One dict per record with every field.
        """
        sobject = self._sobject(sobject)
        with self.lock:
            self._churn()
            return [dict(r) for r in self.objects[sobject].values()
                    if include_deleted or not r["IsDeleted"]]

    def _bump(self, record: dict[str, Any], at: datetime | None = None) -> None:
        stamp = sf_datetime(at or self.clock())
        record["LastModifiedDate"] = record["SystemModstamp"] = stamp

    def touch(self, sobject: str, count: int | None = None,
              ids: list[str] | None = None) -> list[str]:
        """Change records now: a field and their ``LastModifiedDate`` / ``SystemModstamp``.

        Args:
            sobject: Object name or stream alias.
            count: How many live records to pick at random (deterministic rng); default 1.
            ids: Exactly these records instead (wins over ``count``).

        Returns:
            The ids changed.

        Raises:
            KeyError: An unknown object or id.
        """
        sobject = self._sobject(sobject)
        with self.lock:
            return self._touch(sobject, count, ids, None)

    def _touch(self, sobject: str, count: int | None, ids: list[str] | None,
               at: datetime | None) -> list[str]:
        table = self.objects[sobject]
        if ids is not None:
            missing = [i for i in ids if i not in table]
            if missing:
                raise KeyError(f"no {sobject} with id {missing[0]!r}")
            chosen = list(ids)
        else:
            live = sorted(i for i, r in table.items() if not r["IsDeleted"])
            chosen = self.rng.sample(live, min(1 if count is None else count, len(live)))
        field = TOUCH_FIELD[sobject]
        for rid in chosen:
            record = table[rid]
            record[field] = f"{record.get(field) or ''} (updated)"[-60:]
            self._bump(record, at)
        return chosen

    def create(self, sobject: str, count: int = 1) -> list[str]:
        """Create ``count`` new records stamped now (not world entities: no ground truth).

        Args:
            sobject: Object name or stream alias.
            count: How many.

        Returns:
            The new ids, in creation (= Id) order.
        """
        sobject = self._sobject(sobject)
        with self.lock:
            return self._create(sobject, count, None)

    def _create(self, sobject: str, count: int, at: datetime | None) -> list[str]:
        ids = []
        now = sf_datetime(at or self.clock())
        for _ in range(count):
            rid = self._new_id(sobject)
            tag = rid[7:15]
            base: dict[str, Any] = {f: None for f in FIELDS[sobject]}
            base.update({"Id": rid, "CreatedDate": now, "LastModifiedDate": now,
                         "SystemModstamp": now, "IsDeleted": False})
            if sobject == "Account":
                base.update({"Name": f"New Co {tag}", "Website": f"newco{tag}.com"})
            elif sobject == "Contact":
                base.update({"FirstName": "New", "LastName": tag, "Name": f"New {tag}",
                             "Email": f"new{tag}@example.org"})
            else:
                base.update({k: f"New {tag}" for k in ("Name", "Subject") if k in base})
            self._put(sobject, base)
            ids.append(rid)
        return ids

    def add_history(self, sobject: str, count: int) -> None:
        """Add ``count`` records changed at times spread over the world's past year.

        History for backfill and memory benchmarks.
        """
        sobject = self._sobject(sobject)
        rng = random.Random(f"{self.world.seed}:history:{sobject}:{count}")
        with self.lock:
            for n, rid in enumerate(self._create(sobject, count, None)):
                record = self.objects[sobject][rid]
                record.update(self._stamps(rng))
                if sobject == "Contact":
                    who = history_person(rng, n)
                    record.update({"FirstName": who["first"], "LastName": who["last"],
                                   "Name": f"{who['first']} {who['last']}",
                                   "Email": who["email"], "Phone": who["phone"]})

    def delete(self, sobject: str, ids: list[str]) -> None:
        """Soft-delete records: ``IsDeleted`` becomes true and the modstamps move to now.

        They then appear only in ``queryAll``, as in the recycle bin.

        Raises:
            KeyError: An unknown object or id.
        """
        sobject = self._sobject(sobject)
        with self.lock:
            table = self.objects[sobject]
            missing = [i for i in ids if i not in table]
            if missing:
                raise KeyError(f"no {sobject} with id {missing[0]!r}")
            for rid in ids:
                table[rid]["IsDeleted"] = True
                self._bump(table[rid])

    def expire_tokens(self) -> None:
        """Expire every access token issued so far (refresh tokens stay valid)."""
        with self.lock:
            past = self.clock() - timedelta(seconds=1)
            self.tokens = {t: past for t in self.tokens}

    def inject(self, fault: str, count: int = 1) -> None:
        """Queue faults for the next API responses.

        Args:
            fault: ``rate_limit`` (403 ``REQUEST_LIMIT_EXCEEDED``, as Salesforce has no 429),
                ``server_error`` (503), ``truncated`` (a cut JSON body) or ``bad_record``
                (the next page's first record lacks its ``Id``) or ``bulk_job_failed``
                (the next Bulk API 2.0 query job ends ``Failed``).
            count: How many responses it affects.
        """
        with self.lock:
            self.faults.extend([fault] * count)

    def expire_bulk_jobs(self) -> None:
        """Delete every Bulk API 2.0 job, as Salesforce does seven days after creation."""
        with self.lock:
            self.bulk.expire()

    def ground_truth(self) -> dict[tuple[str, str, str], str]:
        """``{("salesforce", "accounts"|"contacts", Id): entity_id}`` for the seeded records."""
        with self.lock:
            return dict(self.truth)

    def _churn(self) -> None:
        """Apply the changes due since the last request, stamped between then and now.

        Stamps never fall before a request already answered, so churn never makes a record
        appear late behind a client's checkpoint.
        """
        for at in self._churn_meter.due(self.clock()):
            sobject = self.rng.choice(["Account", "Contact", "Contact", "Opportunity", "Case"])
            if self.rng.random() < 0.2:
                self._create(sobject, 1, at)
            else:
                self._touch(sobject, 1, None, at)

    # -- HTTP -------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The WSGI application serving the org (thread-safe: one request at a time)."""
        return serve(self, self.lock, environ, start_response, self._dispatch, type_key="sobject")

    def _limit_headers(self) -> Headers:
        return Headers({"Sforce-Limit-Info":
                        f"api-usage={self.api_usage}/{self.daily_api_limit}"})

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/services/oauth2/token":
            if request.method != "POST":
                return _error(405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed. Use POST")
            return self._token(request)
        if not path.startswith("/services/data"):
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        now = self.clock()
        if now - self._usage_since >= USAGE_WINDOW:
            self.api_usage, self._usage_since = 0, now
        if path in ("/services/data", "/services/data/"):
            # The versions resource needs no session, as in Salesforce.
            return _json([{"version": v, "label": f"v{v}", "url": f"/services/data/v{v}"}
                          for v in API_VERSIONS], headers=self._limit_headers())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        expires = self.tokens.get(token)
        if expires is None or expires <= now:
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid",
                          self._limit_headers())
        self.api_usage += 1
        limit = self._limit_headers()
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
        match = re.match(r"^/services/data/v(\d+\.\d)(/.*)?$", path)
        if not match or match.group(1) not in API_VERSIONS:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", limit)
        jobs = re.match(r"^/jobs/query(/.*)?$", match.group(2) or "")
        if jobs:
            if float(match.group(1)) < 47.0:  # Bulk API 2.0 query jobs came with 47.0
                return _error(404, "NOT_FOUND", "The requested resource does not exist", limit)
            self._churn()
            return self.bulk.dispatch(request, match.group(1), jobs.group(1) or "", limit)
        if request.method not in ("GET", "HEAD"):
            return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not "
                          "allowed. Allowed are GET,HEAD", limit)
        self._churn()
        version, rest = match.group(1), (match.group(2) or "/").rstrip("/") or "/"
        base = f"/services/data/v{version}"
        if rest == "/":
            return _json({**{name: f"{base}/{name}" for name in
                             ("limits", "query", "queryAll", "sobjects")},
                          "jobs": f"{base}/jobs"}, headers=limit)
        if rest == "/limits":
            return _json({"DailyApiRequests": {
                "Max": self.daily_api_limit,
                "Remaining": max(0, self.daily_api_limit - self.api_usage)},
                "DailyBulkV2QueryJobs": {
                "Max": self.bulk.daily_limit,
                "Remaining": max(0, self.bulk.daily_limit - self.bulk.used_today(now))}},
                headers=limit)
        if rest in ("/query", "/queryAll"):
            try:
                return self._query(request, version, include_deleted=rest == "/queryAll",
                                   headers=limit)
            except SoqlError as exc:
                return _error(400, exc.code, str(exc), limit)
        more = re.match(r"^/query(?:All)?/(?P<locator>\w+)-(?P<offset>\d+)$", rest)
        if more:
            return self._page(more["locator"], int(more["offset"]), limit, version)
        if rest.startswith("/sobjects"):
            return self._sobjects(base, rest.removeprefix("/sobjects").strip("/"), limit)
        return _error(404, "NOT_FOUND", "The requested resource does not exist", limit)

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "refresh_token":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != self.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        refresh = form.get("refresh_token", "")
        if refresh in self.revoked:
            # Reusing a rotated refresh token revokes the whole family, sessions included.
            self.revoked.update(self.refresh_tokens)
            self.refresh_tokens.clear()
            self.tokens.clear()
        if refresh not in self.refresh_tokens:
            return _oauth_error("invalid_grant", "expired access/refresh token")
        self.stats["token_refreshes"] += 1
        now = self.clock()
        access = "00D5g00000000001!" + secrets.token_urlsafe(36)
        self.tokens[access] = now + self.token_ttl
        base = request.host_url.rstrip("/")
        identity = f"{base}/id/00D5g00000000001AAA/0055g00000000001AAA"
        issued_at = str(int(now.timestamp() * 1000))
        # As Salesforce: base64 HMAC-SHA256 of id + issued_at, keyed by the client secret.
        signature = base64.b64encode(hmac.new(self.client_secret.encode(),
                                              (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        body: dict[str, Any] = {
            "access_token": access, "instance_url": base, "id": identity,
            "token_type": "Bearer", "issued_at": issued_at, "signature": signature,
            "scope": "api refresh_token"}
        if self.rotate:
            new = "5Aep861" + secrets.token_urlsafe(48)
            self.refresh_tokens.discard(refresh)
            self.revoked.add(refresh)
            self.refresh_tokens.add(new)
            self.current_refresh_token = new
            body["refresh_token"] = new
        return _json(body)

    def _query(self, request: Request, version: str, *, include_deleted: bool,
               headers: Headers) -> Response:
        soql = request.args.get("q")
        if not soql:
            raise SoqlError("MALFORMED_QUERY", "missing query parameter q")
        query = parse_soql(soql)
        self.stats["queries"] += 1
        where = query.where
        rows = [r for r in self.objects[query.sobject].values()
                if (include_deleted or not r["IsDeleted"]) and (where is None or where(r))]
        if query.order:
            rows = _sort(rows, query.order)
        rows = rows[query.offset:]
        if query.limit is not None:
            rows = rows[:query.limit]
        if query.count_only:
            return _json({"totalSize": len(rows), "done": True, "records": []}, headers=headers)
        # The result set is fixed now: later changes do not move rows between pages.
        snapshot = [self._rest_record(query.sobject, r, query.fields, version) for r in rows]
        batch = DEFAULT_BATCH
        found = re.search(r"batchSize\s*=\s*(\d+)", request.headers.get("Sforce-Query-Options",
                                                                         ""))
        if found:
            batch = max(MIN_BATCH, min(MAX_BATCH, int(found.group(1))))
        self._locators += 1
        locator = sf_id("01g", self._locators)
        self.cursors[locator] = _Cursor(snapshot, batch)
        while len(self.cursors) > MAX_OPEN_CURSORS:
            self.cursors.popitem(last=False)
        return self._page(locator, 0, headers, version)

    def parent_of(self, sobject: str, record: dict[str, Any],
                  relation: str) -> dict[str, Any] | None:
        """The parent record a relationship of ``record`` points at, or None."""
        lookup, parent = RELATIONSHIPS[sobject][relation]
        parent_id = record.get(lookup)
        return self.objects[parent].get(parent_id) if parent_id else None

    def _rest_record(self, sobject: str, record: dict[str, Any], fields: list[str],
                     version: str) -> dict[str, Any]:
        """One record as the REST query resource renders it: ``attributes`` first, and each
        relationship as a nested object (with its own ``attributes``) or null."""
        base = f"/services/data/v{version}/sobjects/"
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": base + sobject + "/"
                                              + record["Id"]}}
        for field in fields:
            relation, _, parent_field = field.partition(".")
            if not parent_field:
                out[field] = record.get(field)
                continue
            if relation not in out:
                parent = self.parent_of(sobject, record, relation)
                parent_type = RELATIONSHIPS[sobject][relation][1]
                out[relation] = None if parent is None else {"attributes": {
                    "type": parent_type, "url": base + parent_type + "/" + parent["Id"]}}
            if out[relation] is not None:
                parent = self.parent_of(sobject, record, relation)
                assert parent is not None
                out[relation][parent_field] = parent.get(parent_field)
        return out

    def _page(self, locator: str, offset: int, headers: Headers, version: str) -> Response:
        cursor = self.cursors.get(locator)
        if cursor is None:
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", headers)
        self.cursors.move_to_end(locator)
        page = [dict(r) for r in cursor.rows[offset:offset + cursor.batch]]
        if self.faults and self.faults[0] == "bad_record" and page:
            self.faults.pop(0)
            page[0] = {k: v for k, v in page[0].items() if k != "Id"}
        done = offset + cursor.batch >= len(cursor.rows)
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = \
                f"/services/data/v{version}/query/{locator}-{offset + cursor.batch}"
        return _json(body, headers=headers)

    def _sobjects(self, base: str, rest: str, headers: Headers) -> Response:
        if not rest:
            return _json({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
                {"name": name, "label": name, "keyPrefix": prefix, "queryable": True,
                 "urls": {"sobject": f"{base}/sobjects/{name}",
                          "describe": f"{base}/sobjects/{name}/describe"}}
                for name, prefix in PREFIX.items()]}, headers=headers)
        parts = rest.split("/")
        sobject = next((o for o in PREFIX if o.lower() == parts[0].lower()), None)
        if sobject is None or len(parts) > 2:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", headers)
        if len(parts) == 1 or parts[1] == "describe":
            return _json({"name": sobject, "keyPrefix": PREFIX[sobject], "queryable": True,
                          "fields": [_describe_field(sobject, f) for f in FIELDS[sobject]]},
                         headers=headers)
        wanted = parts[1][:15]
        record = next((r for rid, r in self.objects[sobject].items() if rid[:15] == wanted),
                      None)
        if record is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", headers)
        if record["IsDeleted"]:
            return _error(404, "ENTITY_IS_DELETED", "entity is deleted", headers)
        return _json({"attributes": {"type": sobject,
                                     "url": f"{base}/sobjects/{sobject}/{record['Id']}"},
                      **record}, headers=headers)
