"""The `akita` command as a user runs it: registry, sync, status, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from akita_pipelines.cli import main
from akita_pipelines.sandbox.server import Sandbox


def _registry(tmp_path: Path, sandbox: Sandbox, **overrides: object) -> Path:
    info = dict(sandbox.urls["salesforce"])
    integration = {"id": "salesforce.acme", "provider": "salesforce",
                   "config": {"base_url": info.pop("base_url")}, "credentials": info,
                   **overrides}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"customers": [{
        "id": "acme", "name": "Acme", "settings": {"sync_frequency_per_day": 6},
        "integrations": [integration]}]}))
    return path


def test_load_sync_status_disable_enable(cli: CliRunner, tmp_path: Path,
                                         sandbox: Sandbox) -> None:
    loaded = cli.invoke(main, ["registry", "load", str(_registry(tmp_path, sandbox))])
    assert loaded.exit_code == 0, loaded.output
    listed = cli.invoke(main, ["integrations", "list"])
    assert "salesforce.acme" in listed.output
    synced = cli.invoke(main, ["sync", "--once"])
    assert synced.exit_code == 0, synced.output
    assert synced.output.count(" ok ") == 5
    status = json.loads(cli.invoke(main, ["status", "--json"]).output)
    assert {s["status"] for s in status} == {"ok"}
    assert {s["frequency_per_day"] for s in status if s["interaction_type"] != "tasks"} == {6.0}
    assert cli.invoke(main, ["sync", "--once"]).output.strip() == "nothing due"
    assert cli.invoke(main, ["integrations", "disable", "salesforce.acme"]).exit_code == 0
    status = json.loads(cli.invoke(main, ["status", "--json"]).output)
    assert {s["status"] for s in status} == {"disabled"}
    assert cli.invoke(main, ["integrations", "enable", "salesforce.acme"]).exit_code == 0
    again = cli.invoke(main, ["sync", "--once", "--type", "accounts"])
    assert again.exit_code == 0, again.output


def test_a_failing_sync_exits_non_zero_and_status_shows_why(cli: CliRunner, tmp_path: Path,
                                                           sandbox: Sandbox) -> None:
    assert cli.invoke(main, ["registry", "load",
                             str(_registry(tmp_path, sandbox))]).exit_code == 0
    sandbox.emulators["salesforce"].refresh_tokens.clear()
    failed = cli.invoke(main, ["sync", "--once", "--integration", "salesforce.acme",
                               "--type", "accounts"])
    assert failed.exit_code == 1
    status = {s["interaction_type"]: s
              for s in json.loads(cli.invoke(main, ["status", "--json"]).output)}
    assert status["accounts"]["status"] == "needs_reauth"
    assert "invalid_grant" in status["accounts"]["last_error"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"id": "Salesforce.Acme"}, "must read 'salesforce.<slug>'"),
        ({"provider": "salesforse"}, "unknown provider 'salesforse'; known providers:"),
        ({"settings": {"sync_frequency_per_day": "often"}}, "must be int or float"),
        ({"settings": {"types": {"invoices": {}}}}, "has no interaction types ['invoices']"),
        ({"credentials": {}}, "credentials lack"),
    ],
)
def test_bad_registry_input_says_what_to_fix(cli: CliRunner, tmp_path: Path, sandbox: Sandbox,
                                             override: dict[str, object], message: str) -> None:
    result = cli.invoke(main, ["registry", "load", str(_registry(tmp_path, sandbox, **override))])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
