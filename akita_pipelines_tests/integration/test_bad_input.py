"""Bad input a new user typed: a clear message naming what is wrong, a non-zero exit and no
traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from akita_pipelines.cli import main

CREDS = {"client_id": "c", "client_secret": "s", "refresh_token": "r"}


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(CREDS))
    return path


def _add(cli: CliRunner, creds: Path, *extra: str, config: str | None = None) -> Result:
    return cli.invoke(main, [
        "integrations", "add", "salesforce.acme", "--customer", "acme",
        "--config", config or '{"base_url": "http://127.0.0.1:1"}',
        "--credentials-file", str(creds), *extra])


def _refused(result: Result, *words: str) -> None:
    """Exit code not 0, a click message (SystemExit, not an exception) holding ``words``."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output


@pytest.mark.parametrize(("url", "words"), [
    ("127.0.0.1:3000", ("'127.0.0.1:3000' is not a webserver URL", "http://127.0.0.1:3000")),
    ("not-a-url", ("'not-a-url' is not a webserver URL",)),
    ("http://127.0.0.1:notaport", ("is not a webserver URL",)),
])
def test_resync_with_a_url_that_is_not_one(cli: CliRunner, creds: Path, url: str,
                                           words: tuple[str, ...]) -> None:
    assert _add(cli, creds).exit_code == 0
    _refused(cli.invoke(main, ["resync", "salesforce.acme", "--url", url]), "--url", *words)


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--config", "[1,2]", ("--config: expected a JSON object", "got a list")),
    ("--config", '{"base_url": ', ("--config: invalid JSON",)),
    ("--settings", '"x"', ("--settings: expected a JSON object", "got a str")),
])
def test_integrations_add_names_the_option_with_bad_json(
        cli: CliRunner, creds: Path, option: str, value: str, words: tuple[str, ...]) -> None:
    args = ["integrations", "add", "salesforce.acme", "--customer", "acme",
            "--credentials-file", str(creds), option, value]
    _refused(cli.invoke(main, args), *words)


def test_integrations_add_names_the_credentials_file_with_bad_json(
        cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "creds.json"
    bad.write_text("{client_id: c}")
    _refused(cli.invoke(main, ["integrations", "add", "salesforce.acme", "--customer", "acme",
                               "--credentials-file", str(bad)]),
             f"--credentials-file {bad}: invalid JSON")


def test_integrations_add_refuses_to_replace_without_replace(cli: CliRunner,
                                                            creds: Path) -> None:
    assert _add(cli, creds).output.strip() == "registered salesforce.acme"
    _refused(_add(cli, creds, config='{"base_url": "http://127.0.0.1:2"}'),
             "salesforce.acme is registered already", "--replace")
    listed = cli.invoke(main, ["integrations", "list"]).output
    assert "http://127.0.0.1:1" in listed  # untouched
    replaced = _add(cli, creds, "--replace", config='{"base_url": "http://127.0.0.1:2"}')
    assert replaced.exit_code == 0
    assert replaced.output.strip() == "replaced salesforce.acme"
    assert "http://127.0.0.1:2" in cli.invoke(main, ["integrations", "list"]).output


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_match_output_in_a_missing_folder(cli: CliRunner, tmp_path: Path) -> None:
    data = _csv(tmp_path / "in.csv", "name,website\nAcme,acme.com\n")
    _refused(cli.invoke(main, ["match", "accounts", "--input", str(data),
                               "--output", str(tmp_path / "missing-dir" / "o.csv")]),
             "--output", "missing-dir does not exist")


def test_match_refuses_a_broken_quote(cli: CliRunner, tmp_path: Path) -> None:
    data = _csv(tmp_path / "in.csv",
                'name,phone\n"Acme Inc,555-0100\nBeta GmbH,555-0101\nGamma,555-0102\n')
    _refused(cli.invoke(main, ["match", "accounts", "--input", str(data),
                               "--output", str(tmp_path / "o.csv")]), "unclosed or stray quote")
    assert not (tmp_path / "o.csv").exists()


def test_match_refuses_a_row_with_the_wrong_number_of_fields(cli: CliRunner,
                                                             tmp_path: Path) -> None:
    data = _csv(tmp_path / "in.csv",
                'name,phone\nAcme Inc,555-0100,x\nBeta GmbH,555-0101\n')
    _refused(cli.invoke(main, ["match", "accounts", "--input", str(data),
                               "--output", str(tmp_path / "o.csv")]),
             "line 2 has 3 fields, the header 2")


def test_match_reads_a_domain_column_and_names_columns_it_does_not_read(
        cli: CliRunner, tmp_path: Path) -> None:
    data = _csv(tmp_path / "in.csv", "name,domain,colour\n"
                                     "Acme Incorporated,acme.com,red\n"
                                     "Zebra Holdings,acme.com,blue\n"
                                     "Quokka Partners,quokka.io,green\n")
    out = tmp_path / "o.csv"
    result = cli.invoke(main, ["match", "accounts", "--input", str(data), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "not read: colour" in result.output
    assert "domain" not in result.output.split("not read:")[1].split("(")[0]
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
