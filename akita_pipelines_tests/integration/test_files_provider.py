"""The files provider: CSV / Excel files dropped into an inbox, imported once and whole."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pytest

from akita_pipelines.core.errors import ConfigError, DataError
from akita_pipelines.providers.auth import MemoryCredentialStore
from akita_pipelines.providers.base import ConnectionContext, Page
from akita_pipelines.providers.files import PROVIDER
from akita_pipelines.providers.http import HttpClient

ACCOUNTS = {"pattern": "accounts*.csv", "primary_key": "company_id", "updated_at": "modified",
            "deleted": "is_deleted",
            "fields": {"name": "company_name", "website": "site"}}
HEADER = "company_id,company_name,site,modified,is_deleted\n"


def _config(inbox: Path | str, **streams: Any) -> dict[str, Any]:
    return {"inbox": str(inbox), "settle_seconds": 0,
            "streams": streams or {"accounts": ACCOUNTS}}


def _read(config: dict[str, Any], since: datetime | None = None, kind: str = "accounts",
          page_size: int = 1000) -> list[Page]:
    ctx = ConnectionContext("files.acme", config, MemoryCredentialStore({}), HttpClient(),
                            page_size=page_size)
    stream = PROVIDER.streams_for(config)[kind]
    return list(PROVIDER.connect(ctx).read_changes(stream, since))


def _records(pages: list[Page]) -> list[dict[str, Any]]:
    return [r for p in pages for r in p.records]


def _drop(inbox: Path, name: str, body: str | bytes) -> Path:
    path = inbox / name
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    time.sleep(0.01)  # distinct arrival times
    return path


def test_csv_rows_import_with_lineage_and_the_cursor_is_the_arrival(tmp_path: Path) -> None:
    # Excel writes a BOM; a quoted field spans two lines.
    _drop(tmp_path, "accounts-1.csv", "\ufeff" + HEADER +
          '1,Acme,acme.example,2024-01-01T00:00:00Z,false\n'
          '2,"Multi\nLine Ltd",multi.example,2024-01-02 10:00:00,\n'
          '3,Gone,gone.example,2024-01-03,yes\n')
    pages = _read(_config(tmp_path), page_size=2)
    records = _records(pages)
    assert [r["company_id"] for r in records] == ["1", "2", "3"]
    assert [r["_line"] for r in records] == [2, 3, 5]
    stream = PROVIDER.streams_for(_config(tmp_path))["accounts"]
    typed = [stream.to_typed(r) for r in records]
    assert typed[1].name == "Multi\nLine Ltd"
    assert typed[0].updated_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert [t.deleted for t in typed] == [False, False, True]
    arrived = datetime.fromisoformat(records[0]["_file_arrived_at"].replace("Z", "+00:00"))
    assert {p.checkpoint for p in pages} == {arrived}

    # The next sync sees only files that arrived since; an untouched inbox yields nothing new.
    assert _records(_read(_config(tmp_path), since=arrived)) == records  # the boundary file
    later = _drop(tmp_path, "accounts-2.csv", HEADER + "4,Newco,new.example,2024-02-01,\n")
    fresh = _read(_config(tmp_path), since=datetime.fromtimestamp(
        later.stat().st_mtime - 0.001, UTC))
    assert [r["company_id"] for r in _records(fresh)] == ["4"]


def test_a_file_with_bad_rows_is_rejected_whole_and_named_by_line(tmp_path: Path) -> None:
    _drop(tmp_path, "accounts-1.csv", HEADER + "1,Good,good.example,2024-01-01,\n")
    _drop(tmp_path, "accounts-2.csv", HEADER +
          "2,Fine,fine.example,2024-01-01,\n"
          ",No Id,x.example,2024-01-01,\n"
          "4,Bad Date,y.example,last tuesday,\n"
          "5,Too,many,columns,here,!\n")
    _drop(tmp_path, "accounts-3.csv", HEADER + "6,Later,later.example,2024-01-01,\n")
    config = _config(tmp_path)
    records = _records(_read(config))
    assert [r["company_id"] for r in records] == ["1", "rejected:accounts-2.csv:" +
                                                  records[1]["_file_sha256"][:12], "6"]
    report = records[1]["_rejected"]
    assert "line 3: empty 'company_id'" in report
    assert "line 4: 'modified' is 'last tuesday'" in report
    assert "line 5: 6 values for 5 columns" in report
    # The report reaches the quarantine through to_typed, with the line numbers as reason.
    with pytest.raises(ValueError, match="line 3"):
        PROVIDER.streams_for(config)["accounts"].to_typed(records[1])
    strict = {**config, "streams": {"accounts": {**ACCOUNTS, "on_bad_file": "fail"}}}
    with pytest.raises(DataError, match="accounts-2.csv rejected.*line 3"):
        _read(strict)


def test_non_utf8_file_is_reported_with_line_and_byte(tmp_path: Path) -> None:
    _drop(tmp_path, "accounts-1.csv", (HEADER + "1,Café,cafe.example,2024-01-01,\n")
          .encode("latin-1"))
    report = _records(_read(_config(tmp_path)))[0]["_rejected"]
    assert "line 2: not valid utf-8 (byte 0xe9" in report
    latin = {**ACCOUNTS, "encoding": "latin-1"}
    assert _records(_read(_config(tmp_path, accounts=latin)))[0]["company_name"] == "Café"


def test_a_missing_header_column_rejects_the_file(tmp_path: Path) -> None:
    _drop(tmp_path, "accounts-1.csv", "company_id,name\n1,Acme\n")
    report = _records(_read(_config(tmp_path)))[0]["_rejected"]
    assert "line 1: the header lacks the configured columns" in report


@pytest.mark.parametrize("pattern", ["../accounts*.csv", "/etc/*.csv", "sub/*.csv", "~/x.csv",
                                     "..", "a\\..\\b.csv"])
def test_patterns_cannot_leave_the_inbox(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigError, match="inside the inbox"):
        PROVIDER.streams_for(_config(tmp_path, accounts={**ACCOUNTS, "pattern": pattern}))


def test_a_symlink_pointing_outside_the_inbox_is_refused(tmp_path: Path) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "secret"
    inbox.mkdir()
    outside.mkdir()
    (outside / "accounts-x.csv").write_text(HEADER + "1,Secret,s.example,2024-01-01,\n")
    (inbox / "accounts-x.csv").symlink_to(outside / "accounts-x.csv")
    with pytest.raises(ConfigError, match="outside the inbox"):
        _read(_config(inbox))


def test_relative_inbox_is_refused() -> None:
    with pytest.raises(ConfigError, match="absolute"):
        PROVIDER.connect(ConnectionContext("files.acme", {"inbox": "inbox/acme"},
                                           MemoryCredentialStore({}), HttpClient()))


def test_same_content_twice_in_one_read_is_imported_once(tmp_path: Path) -> None:
    body = HEADER + "1,Acme,acme.example,2024-01-01,\n"
    _drop(tmp_path, "accounts-a.csv", body)
    _drop(tmp_path, "accounts-b.csv", body)
    assert [r["_file"] for r in _records(_read(_config(tmp_path)))] == ["accounts-a.csv"]


def test_a_file_copied_in_with_an_old_mtime_is_still_imported(tmp_path: Path) -> None:
    _drop(tmp_path, "accounts-1.csv", HEADER + "1,Acme,acme.example,2024-01-01,\n")
    cursor = _read(_config(tmp_path))[-1].checkpoint
    assert cursor is not None
    # cp -p / rsync -t / unzip keep the export's own (old) modification time.
    old = _drop(tmp_path, "accounts-2.csv", HEADER + "2,Old,old.example,2024-01-01,\n")
    os.utime(old, (946684800, 946684800))  # year 2000
    assert [r["company_id"] for r in _records(_read(_config(tmp_path), since=cursor))] == \
        ["1", "2"]


def test_a_file_still_settling_waits_for_the_next_sync(tmp_path: Path) -> None:
    _drop(tmp_path, "accounts-1.csv", HEADER + "1,Acme,acme.example,2024-01-01,\n")
    assert _read({**_config(tmp_path), "settle_seconds": 3600}) == []


def test_excel_workbooks_import(tmp_path: Path) -> None:
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook()
    sheet = book.active
    sheet.append(["company_id", "company_name", "site", "modified", "is_deleted"])
    # Excel cells hold naive date-times: that is what a customer's workbook contains.
    sheet.append([101, "Acme", "acme.example", datetime(2024, 1, 1, 9, 30), None])  # noqa: DTZ001
    sheet.append([102.0, "Beta", "beta.example", datetime(2024, 1, 2), True])  # noqa: DTZ001
    book.save(tmp_path / "accounts.xlsx")
    config = _config(tmp_path, accounts={**ACCOUNTS, "pattern": "accounts*.xlsx"})
    records = _records(_read(config))
    typed = [PROVIDER.streams_for(config)["accounts"].to_typed(r) for r in records]
    assert [t.external_id for t in typed] == ["101", "102"]
    assert [r["_line"] for r in records] == [2, 3]
    assert typed[0].updated_at == datetime(2024, 1, 1, 9, 30, tzinfo=UTC)
    assert typed[1].deleted is True


def test_an_fsspec_object_store_inbox(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/acme-inbox/accounts-1.csv", (HEADER + "1,Acme,acme.example,2024-01-01,\n")
            .encode())
    try:
        records = _records(_read(_config("memory://acme-inbox")))
        assert [r["company_id"] for r in records] == ["1"]
    finally:
        fs.rm("/acme-inbox", recursive=True)


def test_a_full_read_does_not_delete_rows_of_files_taken_out_of_the_inbox(
        sqlite_engine: Any, tmp_path: Path) -> None:
    """An inbox is a stream of deliveries, not a snapshot: archiving an old file deletes
    nothing (deletions come through the ``deleted`` column)."""
    from sqlalchemy import select

    from akita_pipelines.core.types import Customer, Integration
    from akita_pipelines.db.schema import interactions
    from akita_pipelines.onboarding import add_customer, add_integration
    from akita_pipelines.sync.service import sync_object

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old = _drop(inbox, "accounts-1.csv", HEADER + "1,Acme,acme.example,2024-01-01,\n")
    _drop(inbox, "accounts-2.csv", HEADER + "2,Globex,globex.example,2024-01-02,\n")
    add_customer(sqlite_engine, Customer(id="acme", name="Acme"))
    add_integration(sqlite_engine, Integration(id="files.acme", customer_id="acme",
                                               provider="files", config=_config(inbox)), {})
    sync_object(sqlite_engine, "files.acme", "accounts")
    old.unlink()
    full = sync_object(sqlite_engine, "files.acme", "accounts", full=True)
    assert full.retrieved.reconciled_deleted == 0
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(interactions.c.external_id).where(
            interactions.c.deleted_at.is_not(None))).all() == []
