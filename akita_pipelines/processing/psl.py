"""Registrable domains from the public suffix list that ``publicsuffixlist`` ships, loaded fast.

``publicsuffixlist.PublicSuffixList()`` IDNA-encodes all ~10,000 rules each time it is built,
which costs every process that looks up a domain ~0.1-0.3 s of CPU. This module reads the same
bundled file into one dict in about a fifth of that time and gives the answers of the default
``PublicSuffixList().privatesuffix``: the PRIVATE section included, an unknown TLD public (the
default rule ``*``) and the library's own reading of wildcards (see ``private_suffix``). Only
the ~460 non-ASCII rules need IDNA encoding (a third of the library's cost), and only hosts
with a punycode (``xn--``) label can match them, so they are encoded when the first such host
is looked up (but for any that encode without one: see ``_without_punycode``).

Offline: the file is read from the installed package, never fetched. Nothing is read at import.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import cache, cached_property
from itertools import repeat

_DATA_FILE = "public_suffix_list.dat"

# What the library finds for a suffix ``s``, in its order of precedence: an exception rule
# ``!s``, else a wildcard rule ``*.s``, else ``s`` listed. One dict maps each suffix to the
# strongest of the three, so a look-up costs one dict probe per label instead of three.
_LISTED, _WILDCARD, _EXCEPTION = 1, 2, 3

# What the idna codec splits labels at besides ".".
_IDNA_DOTS = frozenset("\u3002\uff0e\uff61")


def _read_rules(data: bytes) -> list[str]:
    """The rules of a list file, read as ``PublicSuffixList._parse`` reads them: a line's text up
    to its first space, lower-cased and right-stripped; blank lines and ``//`` comments skipped."""
    # Comment lines (a quarter of the file) are cut out while still bytes, by splitting at them:
    # a Python loop over the ~4,000 comments instead of all ~16,500 lines.
    chunks = (b"\n" + data).split(b"\n//")
    body = b"\n".join([chunks[0], *(chunk.partition(b"\n")[2] for chunk in chunks[1:])])
    if b" " in body:  # a rule followed by a comment: the list has none, the format allows it
        body = b"\n".join([line.split(b" ", 1)[0] for line in body.split(b"\n")])
    text = body.decode("utf-8", "surrogateescape").lower()
    return list(filter(None, map(str.rstrip, text.split("\n"))))


def _kinds(rules: list[str], marked: list[str]) -> dict[str, int]:
    """Each suffix's strongest entry under ``rules``; ``marked`` are those starting ``*`` or ``!``
    (~300 of 10,000: scanned for wildcards and exceptions instead of all the rules)."""
    kinds = dict.fromkeys(rules, _LISTED)
    # Later updates win: wildcards over listings, exceptions over both.
    kinds.update((rule[2:], _WILDCARD) for rule in marked if rule.startswith("*."))
    kinds.update((rule[1:], _EXCEPTION) for rule in marked if rule.startswith("!"))
    return kinds


def _marked(rules: list[str]) -> list[str]:
    return [rule for rule in rules if rule[0] in "*!"]


def _encoded(rule: str) -> str:
    """The library's second copy of a rule: the name IDNA-encoded, its leading ``!`` kept once
    (it strips them all and adds one back)."""
    name = rule.lstrip("!")
    if not name.isascii():
        # The idna codec itself, not per-label punycode: it nameprep-maps labels as the
        # library does, so a rule encodes to exactly the key the library stores.
        name = name.encode("idna").decode("ascii")
    return "!" + name if rule.startswith("!") else name


def _without_punycode(rules: list[str]) -> list[str]:
    """The non-ASCII rules whose encoded copy may have no ``xn--`` label, so that a host without
    one can match it: nameprep maps each of their characters to ASCII or to nothing (``straße``
    → ``strasse``; IDNA 2008 allows ``ß``, so the list may well get one)."""
    chars = {char for char in set("".join(rules)) if not char.isascii()}
    if not chars:
        return []
    import stringprep  # ~1.5 ms at load, for the exact answer; the idna codec imports it too
    from unicodedata import ucd_3_2_0

    # Nameprep maps a character to nothing (table B.1) or case-folds it (B.2), then applies
    # NFKC, whose result is ASCII exactly when NFKD's is (no ASCII characters compose). The
    # codec splits labels at _IDNA_DOTS as at ".".
    ascii_chars = {char for char in chars if char in _IDNA_DOTS
                   or stringprep.in_table_b1(char)
                   or ucd_3_2_0.normalize("NFKD", stringprep.map_table_b2(char)).isascii()}
    if not ascii_chars:
        return []
    return [rule for rule in rules if all(c.isascii() or c in ascii_chars for c in rule)]


class SuffixList:
    """The rules of a public suffix list file, for look-ups."""

    def __init__(self, data: bytes) -> None:
        """Reads a list.

        Args:
            data: The list file's bytes (UTF-8, one rule per line, ``//`` comments).
        """
        rules = _read_rules(data)
        unicode_rules = [rule for rule in rules if not rule.isascii()]
        # The library looks no further up a host than its longest rule's labels plus one. No
        # key has more labels than its rule, so that bound changes no answer, and costs 1-2 ms
        # to find, unless the codec splits a rule at one of _IDNA_DOTS (the list has none).
        self._max_labels = sys.maxsize
        if not _IDNA_DOTS.isdisjoint("".join(unicode_rules)):
            self._max_labels = max(map(str.count, rules, repeat("."))) + 1
        # The library stores each rule and its encoded copy. For an ASCII rule the copy is the
        # rule itself, but for the (unlisted) form "!!name", whose copy is "!name".
        marked = _marked(rules)
        copies = [_encoded(rule) for rule in marked if rule.startswith("!!") and rule.isascii()]
        # A non-ASCII rule's copy nearly always has an "xn--" label, and then only a host with
        # one can match it: those copies are made on the first such host (_idn_kinds), the
        # copies of any other non-ASCII rules now.
        now = set(_without_punycode(unicode_rules))
        copies += [_encoded(rule) for rule in now]
        self._later = [rule for rule in unicode_rules if rule not in now]
        self._kinds = _kinds(rules + copies, marked + _marked(copies))

    @cached_property
    def _idn_kinds(self) -> dict[str, int]:
        encoded = [_encoded(rule) for rule in self._later]
        return _kinds(encoded, _marked(encoded))

    def private_suffix(self, host: str) -> str | None:
        """The registrable domain of a host, as ``PublicSuffixList().privatesuffix(host)``.

        Args:
            host: A host name, ``shop.acme.co.uk``; IDN labels in punycode (``xn--...``). Case
                and one trailing dot are ignored, as the library ignores them.

        Returns:
            The public suffix and one label more (``acme.co.uk``), or None when the host has no
            label in front of its public suffix (``co.uk``, ``kawasaki.jp`` below the wildcard
            ``*.kawasaki.jp``) or has an empty label.
        """
        if host.endswith("."):
            host = host[:-1]
        host = host.lower()
        if not host or host[0] == "." or host[-1] == "." or ".." in host:
            return None  # an empty label
        kinds = self._kinds
        idn = self._idn_kinds if "xn--" in host else None
        count = host.count(".") + 1
        start = max(0, count - self._max_labels - 1)  # the label the search starts at
        at = 0  # where that label starts in host
        for _ in range(start):
            at = host.index(".", at) + 1
        public = 1  # the default rule "*": an unknown TLD is a public suffix
        # Longest suffix first, as the library does: the first suffix with an entry decides.
        # Suffixes are slices of host (one per label), not joins of its labels.
        while True:
            suffix = host[at:]
            kind = kinds.get(suffix, 0)
            if idn is not None:
                kind = max(kind, idn.get(suffix, 0))
            if kind:
                depth = count - start
                if kind == _EXCEPTION:  # "!www.ck": the rule's parent is the public suffix
                    public = depth - 1
                elif kind == _WILDCARD:
                    # "*.ck" makes one more label public, and "ck" itself (the library reads a
                    # wildcard's parent as listed) when the host is the parent.
                    public = depth + 1 if start else depth
                else:
                    public = depth
                break
            at = host.find(".", at) + 1
            if not at:
                break
            start += 1
        if not public or count <= public:
            return None
        return host.split(".", count - public - 1)[-1]


def bundled_path() -> str:
    """The path of the list file inside the installed ``publicsuffixlist`` package.

    Returns:
        The path of ``public_suffix_list.dat`` (the file the library reads by default).

    Raises:
        ModuleNotFoundError: When ``publicsuffixlist`` is not installed.
    """
    # find_spec locates the package without importing it: its __init__ costs ~5 ms and
    # importlib.resources more than that in a fresh process, for a path we can join ourselves.
    spec = importlib.util.find_spec("publicsuffixlist")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("publicsuffixlist, which ships the public suffix list, is "
                                  "not installed")
    return os.path.join(spec.submodule_search_locations[0], _DATA_FILE)


@cache
def _bundled() -> SuffixList:
    with open(bundled_path(), "rb") as file:
        return SuffixList(file.read())


def private_suffix(host: str) -> str | None:
    """The registrable domain of a host under the bundled public suffix list.

    Same answer as ``publicsuffixlist.PublicSuffixList().privatesuffix(host)``; the list is read
    on the first call.

    Args:
        host: A host name, ``shop.acme.co.uk``; IDN labels in punycode (``xn--...``).

    Returns:
        ``acme.co.uk`` for ``shop.acme.co.uk``; None for a public suffix itself (``co.uk``) and
        for a host with an empty label.
    """
    return _bundled().private_suffix(host)
