"""psl: the same answers as ``publicsuffixlist.PublicSuffixList().privatesuffix``, the oracle."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from functools import cache

import pytest
from publicsuffixlist import PSLFILE, PublicSuffixList, encode_idn

from akita_pipelines.processing import normalize as nz
from akita_pipelines.processing import psl

#: Labels put in front of rules: "www" and "city" are the labels of exception rules (``!www.ck``,
#: ``!city.kawasaki.jp``), so wildcards are tried both with and without their exceptions.
_PREFIXES = ("www", "city", "shop", "a-1", "0", "xn--80ak6aa92e")


@cache
def _oracle() -> PublicSuffixList:
    return PublicSuffixList()


def _bundled_rules() -> list[str]:
    """The list's rules, read here without psl's reader (the list has no comment after a rule)."""
    with open(PSLFILE, encoding="utf-8") as file:
        return [line.split()[0].lower() for line in file
                if line.strip() and not line.startswith("//")]


def _hosts_from(rules: list[str], seed: int) -> set[str]:
    """Each rule's name (wildcard and exception marks off), in Unicode and punycode, alone and
    with one and two labels in front (three below a wildcard)."""
    rng = random.Random(seed)
    hosts: set[str] = set()
    for rule in rules:
        wildcard = rule.startswith("*.")
        name = rule.lstrip("!")[2:] if wildcard else rule.lstrip("!")
        forms = {name, encode_idn(name)} if name.strip(".") else set()
        for form in forms:
            hosts.add(form)
            for depth in (1, 2, 3) if wildcard else (1, 2):
                hosts.add(".".join([*rng.choices(_PREFIXES, k=depth), form]))
    return hosts


def _unknown_tld_hosts(known: set[str], seed: int) -> set[str]:
    rng = random.Random(seed)
    hosts: set[str] = set()
    while len(hosts) < 2000:
        tld = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))
        if tld not in known:
            hosts.add(".".join([*rng.choices(_PREFIXES, k=rng.randint(0, 3)), tld]))
    return hosts


@cache
def _bundled_hosts() -> list[str]:
    rules = _bundled_rules()
    tlds = {rule.rsplit(".", 1)[-1] for rule in rules} | {encode_idn(rule).rsplit(".", 1)[-1]
                                                         for rule in rules}
    hosts = _hosts_from(rules, seed=1) | _unknown_tld_hosts(tlds, seed=2)
    return sorted(hosts)


def _mismatches(ours: psl.SuffixList | None, hosts: list[str],
                oracle: PublicSuffixList) -> list[tuple[str, str | None, str | None]]:
    found = []
    for host in hosts:
        mine = psl.private_suffix(host) if ours is None else ours.private_suffix(host)
        expected = oracle.privatesuffix(host)
        if mine != expected:
            found.append((host, mine, expected))
    return found


def test_the_hosts_cover_every_kind_of_rule() -> None:
    hosts = _bundled_hosts()
    answers = [_oracle().privatesuffix(host) for host in hosts]
    assert len(hosts) > 20_000
    assert sum(1 for host in hosts if "xn--" in host and host != "xn--80ak6aa92e") > 1000
    assert sum(1 for answer in answers if answer is None) > 5000  # hosts that are suffixes
    exceptions = [rule[1:] for rule in _bundled_rules() if rule.startswith("!")]
    assert exceptions
    assert all(_oracle().privatesuffix(f"www.{name}") == name for name in exceptions)


def test_the_bundled_list_answers_as_the_library_does() -> None:
    assert _mismatches(None, _bundled_hosts(), _oracle())[:20] == []


def test_normalize_answers_as_the_library_does_for_host_names() -> None:
    hosts = [host for host in _bundled_hosts() if nz._HOST.match(host)]
    assert len(hosts) > 20_000
    found = [(host, nz._registered_host(host), _oracle().privatesuffix(host)) for host in hosts]
    assert [row for row in found if row[1] != row[2]][:20] == []


@pytest.mark.parametrize(("host", "expected"), [
    ("shop.acme.co.uk", "acme.co.uk"),
    ("co.uk", None),                                  # a public suffix
    ("foo.github.io", "foo.github.io"),               # the PRIVATE section is honoured
    ("a.b.foo.ck", "b.foo.ck"), ("foo.ck", None),     # wildcard *.ck
    ("ck", None),
    ("www.ck", "www.ck"), ("a.www.ck", "www.ck"),     # exception !www.ck
    ("kawasaki.jp", None),                            # a wildcard's parent counts as listed
    ("x.city.kawasaki.jp", "city.kawasaki.jp"),
    ("acme.zzqxv", "acme.zzqxv"), ("a.acme.zzqxv", "acme.zzqxv"),  # unknown TLD: rule "*"
    ("zzqxv", None),
    ("shop.acme.xn--55qx5d.cn", "acme.xn--55qx5d.cn"),  # 公司.cn, in punycode
    ("xn--55qx5d.cn", None),
    ("Shop.ACME.co.uk.", "acme.co.uk"),               # case and one trailing dot ignored
    ("", None), (".", None), ("a..co.uk", None), (".acme.com", None), ("acme.com..", None),
])
def test_known_answers(host: str, expected: str | None) -> None:
    assert psl.private_suffix(host) == expected
    assert _oracle().privatesuffix(host) == expected


@pytest.mark.parametrize("more", [[], ["\u3002".join("abcdefghijkl") + ".test"]])  # 13 labels
def test_odd_rules_are_read_as_the_library_reads_them(more: list[str]) -> None:
    data = "\n".join([*more,
        "// ===BEGIN ICANN DOMAINS===",
        "test", "*.wild.test", "!keep.wild.test", "!!double.test", "!!!triple.test",
        "*.wild2.test", "!!keep.wild2.test",      # the library also stores "!keep.wild2.test"
        "ünï.test", "*.ünï2.test", "!ausnahme.ünï2.test", "!!doppelt.ünï3.test",
        "xn--n-eha9a.test",                       # listed in punycode too
        "straße.test", "ΑΘΉΝΑ.test",              # nameprep maps ß → ss; upper case → lower
        "ｆｕｌｌ.test", "ﬁ.test", "soft\u00adhyphen.test", "dot\u3002test",  # IDN → ASCII
        "*.ß.test", "!ausnahme.ß.test",
        "rule.test // a comment after a rule", " indented.test", "\ttabbed.test",
        "trailing.test\t\r", "UPPER.Test", "a.b.c.d.e.f.g.h.i.test", "*.*.star.test",
        "/slash.test", "", "//comment.test",
    ]).encode()
    oracle = PublicSuffixList(data)
    ours = psl.SuffixList(data)
    rules = [rule for rule in (line.split(" ")[0].rstrip().lower()
                               for line in data.decode().split("\n"))
             if rule and not rule.startswith("//")]
    hosts = sorted(_hosts_from(rules, seed=3) | {"www.keep.wild.test", "double.test",
                                                  "x.double.test", "x.a.b.c.d.e.f.g.h.i.test"})
    assert any(host.count(".") > 10 for host in hosts)
    assert _mismatches(ours, hosts, oracle) == []


@pytest.mark.parametrize("extra", [
    [], ["straße.test", "ｆｕｌｌ.test", "ﬁ.test", "soft\u00adhyphen.test", "k\u212aelvin.test",
         "dot\u3002test", "ß.ü.test", "!ß.test", "*.ß.test"],
])
def test_idn_rules_that_need_no_punycode_host_are_encoded_at_once(extra: list[str]) -> None:
    """psl encodes the other IDN rules only when a host with an ``xn--`` label comes."""
    unicode_rules = [rule for rule in _bundled_rules() if not rule.isascii()] + extra
    now = psl._without_punycode(unicode_rules)
    assert len(unicode_rules) > 100
    for rule in unicode_rules:
        labels = encode_idn(rule.lstrip("!")).split(".")
        assert rule in now or any(label.startswith("xn--") for label in labels), rule
    assert len(now) < len(extra) + 10  # the rest wait for a punycode host


def test_psl_reads_the_file_the_library_reads() -> None:
    assert os.path.samefile(psl.bundled_path(), PSLFILE)


def test_the_list_loads_on_first_use_and_idn_rules_on_the_first_punycode_host() -> None:
    code = (
        "import sys\n"
        "from akita_pipelines.processing import normalize as nz\n"
        "assert 'akita_pipelines.processing.psl' not in sys.modules\n"
        "from akita_pipelines.processing import psl\n"
        "assert psl._bundled.cache_info().currsize == 0\n"
        "assert nz.registered_domain('jane@shop.acme.co.uk') == 'acme.co.uk'\n"
        "rules = psl._bundled()\n"
        "assert '_idn_kinds' not in vars(rules)\n"
        "assert nz.registered_domain('a.b.xn--55qx5d.cn') == 'b.xn--55qx5d.cn'\n"
        "assert '_idn_kinds' in vars(rules)\n"
        "assert 'publicsuffixlist' not in sys.modules\n"  # the file is found, not imported
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
