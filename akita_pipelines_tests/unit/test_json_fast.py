"""orjson in the JSON hot paths gives what the stdlib gave: the same canonical text (it is
hashed), the same parsed values, the same stored JSON, the same errors."""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, select, text
from sqlalchemy.dialects import sqlite

from akita_pipelines.core.errors import DataError
from akita_pipelines.db import bulk, state
from akita_pipelines.providers.http import json_body, json_object
from akita_pipelines.providers.salesforce.streams import STREAMS
from akita_pipelines.sync.process import _parse
from akita_pipelines.util import jsonfast

# The encoders as they were before orjson: what the texts must stay.
STDLIB_CANONICAL = json.JSONEncoder(separators=(",", ":"), sort_keys=True,
                                    ensure_ascii=False).encode
STDLIB_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Plain(enum.Enum):
    A = 1


class Number(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


def contact(i: int) -> dict[str, Any]:
    """A Salesforce queryAll Contact row, with the values real ones carry."""
    stamp = f"2025-03-0{i % 9 + 1}T12:34:56.000+0000"
    return {
        "attributes": {"type": "Contact",
                       "url": f"/services/data/v60.0/sobjects/Contact/0035e00000Ab{i:03d}AAA"},
        "Id": f"0035e00000Ab{i:03d}AAA", "SystemModstamp": stamp, "CreatedDate": stamp,
        "IsDeleted": False, "FirstName": "Zoë", "LastName": "O'Brien-Nguyễn",
        "Name": "Zoë O'Brien-Nguyễn", "Email": None, "Phone": "+1 (212) 555-0100",
        "Title": "VP, \"Customer\" Success", "AccountId": "0015e00000Cd001AAA",
        "MailingStreet": "1 Main St\nSuite 200\r\n\tRear", "MailingCity": "Zürich",
        "MailingLatitude": 47.376887, "MailingLongitude": -0.0, "NumberOfEmployees": 12000,
        "Amount": 5000.0, "Score": 0.1, "Tiny": 0.0001, "Large": 9999999999999998.0,
        "Description": "\u2028line\u2029sep \x00\x1f\x7f \\ / 😀 漢字 \ufeff",
        "Tags": ["a", "b", [], {}], "Nested": {"z": {"y": [1, True, None, -5]}, "a": ""},
        "U64": 2**64 - 1, "I64": -(2**63),
    }


ORDINARY = [
    contact(1), contact(2), {}, [], {"": ""}, {"b": 1, "a": 2, "A": 3, "é": 4, "\uffff": 5,
                                              "\U00010000": 6, "a\x00": 7},
    {"floats": [0.1, 0.5, 2.5, 1.0, -1.5, 1e-4, 123456.789, 1e15, 0.30000000000000004]},
    {"tuple": (1, 2, (3, "x"))}, [{"deep": [[[[{"k": "v"}]]]]}],
]


@pytest.mark.parametrize("payload", ORDINARY)
def test_canonical_json_is_the_stdlib_text_written_by_orjson(payload: Any) -> None:
    assert state.canonical_json(payload) == STDLIB_CANONICAL(payload)
    # ... and orjson wrote it (the fast path is not silently always falling back).
    items = payload.values() if isinstance(payload, dict) else payload
    assert jsonfast._plain(items)
    assert orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode() == STDLIB_CANONICAL(payload)


# Where orjson's own text (or refusal) differs from the stdlib's: the stdlib writes these.
DIFFERENT = {
    "exponent below 1e-4": {"x": 1e-7},  # stdlib 1e-07, orjson 1e-7
    "below 1e-4 without exponent": {"x": 1.5e-5},  # stdlib 1.5e-05, orjson 0.000015
    "exponent from 1e16": {"x": [1e16, -1.2e30]},  # orjson < 3.11.7: 1e16, 1.2e30
    "NaN": {"x": math.nan},  # stdlib NaN, orjson null
    "Infinity": {"x": [math.inf, -math.inf]},
    "beyond 64 bits": {"x": 2**64, "y": -(2**63) - 1},  # orjson refuses
    "int keys": {1: "a", 2: "b"},  # stdlib writes them as strings
    "bool and None keys": {"x": {True: 1, False: 2}, "y": {None: 3}},
    "str subclass": {"x": Text("t")},
    "OrderedDict": {"x": OrderedDict(b=1, a=2)},
    "IntEnum": {"x": Number.ONE},
    "lone surrogate": {"x": "\ud800"},
    "deeper than orjson's limit": json.loads("[" * 300 + "]" * 300),
}


def _outcome(encode: Callable[[Any], str], value: Any) -> tuple[str, str]:
    try:
        return "ok", encode(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("payload", DIFFERENT.values(), ids=DIFFERENT.keys())
def test_canonical_json_keeps_the_stdlib_text_where_orjson_differs(payload: Any) -> None:
    assert state.canonical_json(payload) == STDLIB_CANONICAL(payload)


# What the stdlib refuses, canonical_json still refuses (orjson would write the first two).
REFUSED = {"plain Enum": {"x": Plain.A}, "UUID": {"x": uuid.UUID(int=1)},
           "datetime": {"x": datetime(2025, 1, 1, tzinfo=UTC)}, "Decimal": {"x": Decimal(1)},
           "set": {"x": {1}}, "bytes": {"x": b"x"}, "mixed keys": {1: 1, "a": 2}}


@pytest.mark.parametrize("payload", REFUSED.values(), ids=REFUSED.keys())
def test_canonical_json_refuses_what_the_stdlib_refuses(payload: Any) -> None:
    expected = _outcome(STDLIB_CANONICAL, payload)
    assert expected[0] == "TypeError"
    assert _outcome(state.canonical_json, payload) == expected


def test_orjson_still_differs_where_the_fallback_says() -> None:
    """The reasons for the fallback, pinned: if orjson changes, revisit jsonfast._plain."""
    assert orjson.dumps(1e-7) == b"1e-7"
    assert orjson.dumps(1.5e-5) == b"0.000015"
    assert orjson.dumps(math.nan) == b"null"
    assert orjson.dumps(Plain.A) == b"1"
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(2**64)
    assert orjson.loads(b"18446744073709551616") == 2.0**64  # a float, where json gives an int


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text()
    | st.integers(min_value=-(2**70), max_value=2**70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=6))
def test_canonical_json_and_its_parse_match_the_stdlib(record: dict[str, Any]) -> None:
    payload = state.canonical_json(record)
    assert payload == STDLIB_CANONICAL(record)
    assert repr(state.parse_payload(payload)) == repr(json.loads(payload))  # repr: NaN != NaN
    assert bulk._json_text(record) == STDLIB_COMPACT(record)


PAYLOADS = [
    STDLIB_CANONICAL(contact(3)), '{"a":1,"a":2}', '{"n":123456789012345678901234567890}',
    '[18446744073709551616,-9223372036854775809,18446744073709551615]', '[NaN,Infinity]',
    '[1e400,-1e400,1e-400]', '"\\ud800"', '"\\ud83d\\ude00"', ' {} ', '[-0,-0.0]',
    '[0.1000000000000000055511151231257827021181583404541015625]', "\ud800",
]
BAD_PAYLOADS = ['{"a":1', "", "[1,]", '{"a":"\x01"}', "01", "\ufeff{}", "nul", '{"a":1}}']


@pytest.mark.parametrize("payload", PAYLOADS + BAD_PAYLOADS)
def test_parse_payload_reads_what_json_loads_reads(payload: str) -> None:
    def outcome(loads: Callable[[str], Any]) -> tuple[str, str]:
        try:
            return "ok", repr(loads(payload))
        except ValueError as exc:  # json.JSONDecodeError: the same message as before
            return type(exc).__name__, str(exc)

    assert outcome(state.parse_payload) == outcome(json.loads)


def test_bad_staged_payloads_are_still_quarantined_with_the_stdlib_reason() -> None:
    good_payload = STDLIB_CANONICAL(contact(4))
    good, bad = _parse(STREAMS["contacts"], [(1, "a", '{"Id":"x"'), (2, "b", good_payload),
                                             (3, "c", '{"Id": NaN}')])
    assert [row_id for row_id, _ in good] == [2]
    assert good[0][1].fields["MailingStreet"] == contact(4)["MailingStreet"]
    reasons = {row_id: reason for row_id, _, reason, _ in bad}
    assert reasons[1].startswith("JSONDecodeError: Expecting ',' delimiter")
    assert reasons[3] == "ValueError: Id must be a non-empty string"  # NaN parsed, as before


FIELDS = [contact(5), {"nan": math.nan, "big": 2**70, "e": [1e-9, 1e300]}, {"k": "ünï\u2028"},
          [1, "two", None], {}]


@pytest.mark.parametrize("value", FIELDS)
def test_postgresql_json_text_is_the_stdlib_text(value: Any) -> None:
    assert bulk._json_text(value) == STDLIB_COMPACT(value)


def test_sqlite_json_columns_store_the_same_values_and_refuse_the_same() -> None:
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("doc", JSON, nullable=True))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    processor = JSON().bind_processor(sqlite.dialect())
    assert processor is not None
    values: list[Any] = [*FIELDS, None, "text"]
    with engine.begin() as conn:
        bulk.insert_new(conn, table, {"id": list(range(len(values))), "doc": values})
        stored = conn.execute(text("SELECT doc FROM t ORDER BY id")).scalars().all()
        read = conn.execute(select(table.c.doc).order_by(table.c.id)).scalars().all()
    by_orjson = {0, 2, 3, 4}  # the others: NaN and a big integer, None, scalars
    assert stored == [orjson.dumps(v).decode() if i in by_orjson else processor(v)
                      for i, v in enumerate(values)]
    assert repr(read) == repr(values)  # read back: the same values (NaN included)

    fast = partial(jsonfast.dumps, stdlib=processor)
    for refused in ({"at": datetime(2025, 1, 1, tzinfo=UTC)}, {"id": uuid.UUID(int=1)}):
        assert _outcome(fast, refused) == _outcome(processor, refused)
        assert _outcome(fast, refused)[0] == "TypeError"


def _response(body: bytes | None, content_type: str = "application/json") -> requests.Response:
    response = requests.Response()
    response._content = body
    response.status_code = 200
    response.headers["Content-Type"] = content_type
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    return response


BODIES = [
    json.dumps({"records": [contact(6), contact(7)], "done": True}).encode(),
    b'{"id":123456789012345678901234567890}', b'{"x":NaN}', b'\xef\xbb\xbf{"a":1}',
    '{"name":"é"}'.encode(), '{"name":"é"}'.encode("utf-16"), b'{"a":"\\ud800"}', b"[]",
    b"{}", b"", None,
]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain",
                                          "application/json; charset=ISO-8859-1"])
@pytest.mark.parametrize("body", BODIES)
def test_json_body_reads_what_response_json_reads(body: bytes | None,
                                                  content_type: str) -> None:
    def outcome(read: Callable[[requests.Response], Any]) -> tuple[str, str]:
        try:
            return "ok", repr(read(_response(body, content_type)))
        except ValueError as exc:
            return type(exc).__name__, str(exc)

    assert outcome(json_body) == outcome(requests.Response.json)


@pytest.mark.parametrize("body", [b'{"records":[{"Id":"1"},{"Id":', b"<html>busy</html>", b""])
def test_truncated_or_garbled_pages_are_still_data_errors(body: bytes) -> None:
    with pytest.raises(DataError, match="page: the body is not JSON"):
        json_object(_response(body), "page")
