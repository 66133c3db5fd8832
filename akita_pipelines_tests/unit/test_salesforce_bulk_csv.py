"""Bulk API 2.0 CSV read into records shaped as REST JSON: the typing rules, one by one."""

from __future__ import annotations

from datetime import UTC, datetime

from akita_pipelines.providers.salesforce.bulk import job_checkpoint, parse_csv

KINDS = {"Id": "id", "Name": "string", "IsDeleted": "boolean", "NumberOfEmployees": "int",
         "Amount": "currency", "SystemModstamp": "datetime", "CloseDate": "date",
         "Account.Name": "string", "Account.IsDeleted": "boolean"}


def test_csv_values_become_the_values_rest_json_carries() -> None:
    text = (
        '"Id","Name","IsDeleted","NumberOfEmployees","Amount","SystemModstamp","CloseDate",'
        '"Account.Name","Account.IsDeleted"\r\n'
        '"0015g0000000001AAA","He said ""hi"", then\nleft","false","250","1234.5",'
        '"2024-03-01T10:00:00.000Z","2024-04-01","Acme","false"\r\n'
        '"0015g0000000002AAA","","true","","5000","2024-03-01T11:00:00.123+0100","","",""\r\n'
        '"0015g0000000003AAA","Big","false","-7","1.5E+7","2024-03-01T10:00:00Z","","",""\r\n')
    first, second, third = parse_csv(text, sobject="Account", api_version="v59.0", kinds=KINDS)
    assert first == {
        "attributes": {"type": "Account",
                       "url": "/services/data/v59.0/sobjects/Account/0015g0000000001AAA"},
        "Id": "0015g0000000001AAA", "Name": 'He said "hi", then\nleft', "IsDeleted": False,
        "NumberOfEmployees": 250, "Amount": 1234.5,
        "SystemModstamp": "2024-03-01T10:00:00.000+0000", "CloseDate": "2024-04-01",
        "Account": {"Name": "Acme", "IsDeleted": False}}
    # Empty is null (Salesforce keeps no empty strings); a relationship with nothing is null.
    assert second["Name"] is None
    assert second["IsDeleted"] is True
    assert second["NumberOfEmployees"] is None
    assert second["Amount"] == 5000
    assert isinstance(second["Amount"], int)  # as JSON reads the digits 5000
    assert second["SystemModstamp"] == "2024-03-01T10:00:00.123+0000"  # re-zoned to UTC
    assert second["Account"] is None
    assert third["NumberOfEmployees"] == -7
    assert third["Amount"] == 15_000_000.0
    assert third["SystemModstamp"] == "2024-03-01T10:00:00.000+0000"


def test_an_empty_result_set_and_a_header_only_one_have_no_records() -> None:
    assert parse_csv("", sobject="Account", api_version="v59.0", kinds=KINDS) == []
    assert parse_csv('"Id","Name"\n', sobject="Account", api_version="v59.0",
                     kinds=KINDS) == []


def test_a_job_moves_the_cursor_to_its_newest_record_but_not_past_its_creation() -> None:
    assert job_checkpoint(None, "2024-03-01T10:00:00.000+0000") is None
    assert job_checkpoint("2024-03-01T09:00:00.000+0000", "2024-03-01T10:00:00.000+0000") == \
        datetime(2024, 3, 1, 9, tzinfo=UTC)
    assert job_checkpoint("2024-03-01T11:00:00.000+0000", "2024-03-01T10:00:00.000+0000") == \
        datetime(2024, 3, 1, 10, tzinfo=UTC)
