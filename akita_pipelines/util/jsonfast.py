"""JSON through orjson (several times faster) wherever it gives what the stdlib gives.

Reading (:func:`loads`): orjson and the stdlib agree on every valid JSON text but one kind:
integers that may not fit in 64 bits, which orjson reads as floats (losing digits) and the
stdlib as exact ints. Texts with a run of 19 digits go to the stdlib; so does whatever orjson
refuses (NaN, Infinity, numbers beyond a double, lone surrogates, invalid JSON), for the stdlib
to read or reject exactly as without orjson. Writing (:func:`dumps`): orjson only for values
whose text it writes exactly as the stdlib encoder being replaced would (hashed texts must not
change).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

# Every digit read as 0: a run of 19 zeros marks the numbers orjson reads differently.
_ZEROED = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def loads(data: bytes, stdlib: Callable[[], Any]) -> Any:
    """The value of the JSON text ``data``: orjson's reading where it is the stdlib's, else
    ``stdlib()`` (the caller's own stdlib parse of the same text, with its own errors)."""
    if _LONG_NUMBER not in data.translate(_ZEROED):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return stdlib()


# orjson writes JSON several times faster than the stdlib encoder, and the same text where the
# values are of the builtin JSON types and every float prints without an exponent. Elsewhere
# the texts differ, so those values keep the stdlib: it refuses a UUID or a plain Enum (orjson
# writes them), writes subclasses through their own methods, writes NaN and Infinity (orjson:
# null, which would change the data), and spells exponents its own way (1e-07 against 1e-7;
# 1e+16 against 1e16 before orjson 3.11.7).
_SORT = orjson.OPT_SORT_KEYS
_LEAVES = frozenset({str, int, bool, type(None)})


def _plain(items: Iterable[Any]) -> bool:
    """Whether orjson writes these values (a dict's values or a list) as the stdlib does."""
    # A plain loop: twice as fast on records as a C-level set(map(type, items)) and a loop.
    for item in items:
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is float:
            # repr (the stdlib's float text) switches to an exponent below 1e-4 and from 1e16.
            if not (1e-4 <= abs(item) < 1e16 or item == 0.0):  # NaN and ±inf fail too
                return False
        elif kind is dict:
            if not _plain(item.values()):
                return False
        elif kind is list or kind is tuple:
            if not _plain(item):
                return False
        else:  # subclasses, datetimes, UUIDs, enums, sets …
            return False
    return True


def dumps(value: Any, stdlib: Callable[[Any], str], *, sort_keys: bool = False) -> str:
    """``value`` as JSON text: orjson's where it writes what ``stdlib`` writes, else ``stdlib``'s.

    ``stdlib`` is the encoder whose text this replaces; ``sort_keys`` must say whether it sorts
    keys (orjson's separators are ``(",", ":")`` and it never escapes non-ASCII). With the same
    separators and escapes the texts are then the same byte for byte; against ``json.dumps``
    defaults (SQLAlchemy's JSON processor), orjson's is the same JSON without the spaces and
    ``\\u`` escapes. Only dicts and lists take orjson: None, a scalar or a sentinel goes to
    ``stdlib``, which may treat it specially.
    """
    kind = type(value)
    if kind is dict or kind is list:
        try:
            if _plain(value.values() if kind is dict else value):
                return orjson.dumps(value, option=_SORT if sort_keys else 0).decode()
        except (orjson.JSONEncodeError, RecursionError):
            # Integers beyond 64 bits, non-string keys, lone surrogates, nesting deeper than
            # orjson's limit: the stdlib writes them (or raises) as it did before.
            pass
    return stdlib(value)
