"""The csv and jsonl providers: change detection, resumable pages, bad input, staging and atomic merges."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Cursor, Page, SupportsErase, SupportsFinishWrites, WriteRequest
from adapters.errors import FatalProviderError
from adapters.files import CsvAdapter, FileAdapter, JsonlAdapter, create_adapter

# -- helpers ---------------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_jsonl(path: Path, rows: list[Any]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def read_all(adapter: FileAdapter, cursor: Cursor | None = None) -> list[Page]:
    return list(adapter.read_contacts(cursor or Cursor()))


def ids(pages: list[Page]) -> list[str]:
    return [record.remote_id for page in pages for record in page.records]


def req(
    email: str, fields: dict[str, Any] | None = None, *, previous: str | None = None, ref: str = "r"
) -> WriteRequest:
    return WriteRequest(
        ref=ref,
        remote_id=None,
        email=email,
        previous_email=previous,
        fields=fields if fields is not None else {"email": email},
    )


def staging_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.crmsync-staging.jsonl")


@pytest.fixture(params=["csv", "jsonl"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, path: Path, page_size: int = 1000) -> FileAdapter:
    return create_adapter("files", {"type": kind, "path": str(path), "page_size": page_size})


def seed(kind: str, path: Path, emails: list[str]) -> None:
    if kind == "csv":
        write_csv(path, ["email", "first_name"], [[email, f"N{i}"] for i, email in enumerate(emails)])
    else:
        write_jsonl(path, [{"email": email, "first_name": f"N{i}"} for i, email in enumerate(emails)])


def rows_of(kind: str, path: Path) -> list[dict[str, Any]]:
    return read_csv(path) if kind == "csv" else read_jsonl(path)


# -- construction ------------------------------------------------------------------------------------


def test_create_adapter_dispatches_on_type(tmp_path: Path) -> None:
    csv_adapter = create_adapter("a", {"type": "csv", "path": str(tmp_path / "a.csv")})
    jsonl_adapter = create_adapter(
        "b", {"type": "jsonl", "path": tmp_path / "b.jsonl", "page_size": 7, "interval": "5m"}
    )
    assert isinstance(csv_adapter, CsvAdapter) and csv_adapter.page_size == 1000
    assert isinstance(jsonl_adapter, JsonlAdapter) and jsonl_adapter.page_size == 7
    for adapter in (csv_adapter, jsonl_adapter):
        assert isinstance(adapter, SupportsFinishWrites) and isinstance(adapter, SupportsErase)
        assert adapter.max_batch == 1000


@pytest.mark.parametrize(
    "options", [{"type": "xml", "path": "/x"}, {"type": "csv"}, {"type": "csv", "path": "/x", "page_size": 0}]
)
def test_create_adapter_refuses_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="providers.f"):
        create_adapter("f", options)


def test_check(tmp_path: Path, kind: str) -> None:
    make(kind, tmp_path / f"new.{kind}").check()  # a target that does not exist yet is fine
    with pytest.raises(FatalProviderError, match="does not exist"):
        make(kind, tmp_path / "missing" / f"x.{kind}").check()


# -- reading -----------------------------------------------------------------------------------------


def test_an_unchanged_file_yields_no_page(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com", "b@example.com"])
    adapter = make(kind, path)
    pages = read_all(adapter)
    assert ids(pages) == ["a@example.com", "b@example.com"]
    final = pages[-1].next_cursor
    assert final.page_token is None and final.extra["size"] == str(path.stat().st_size)
    assert read_all(adapter, Cursor.from_json(final.to_json())) == []


def test_a_changed_file_is_read_again(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com"])
    adapter = make(kind, path)
    final = read_all(adapter)[-1].next_cursor
    seed(kind, path, ["a@example.com", "b@example.com"])
    again = read_all(adapter, final)
    assert ids(again) == ["a@example.com", "b@example.com"]
    assert again[-1].next_cursor.extra != final.extra


def test_an_empty_changed_file_still_records_its_fingerprint(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    path.write_text("email\n" if kind == "csv" else "")
    pages = read_all(make(kind, path))
    assert len(pages) == 1 and not pages[0].records and pages[0].next_cursor.extra["size"] == str(path.stat().st_size)


def test_a_missing_file_reads_nothing(tmp_path: Path, kind: str) -> None:
    assert read_all(make(kind, tmp_path / f"none.{kind}")) == []


def test_identity_and_time(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["  Ann@Example.COM "])
    os.utime(path, (1_700_000_000, 1_700_000_000))
    [record] = [r for page in read_all(make(kind, path)) for r in page.records]
    assert record.remote_id == "ann@example.com"
    assert record.updated_at == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert record.data["email"] == "  Ann@Example.COM "  # the raw row: mapping normalises


def test_an_id_column_is_the_remote_id(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    write_csv(path, ["Id", "email"], [["c-1", "a@example.com"], ["", "b@example.com"]])
    assert ids(read_all(make("csv", path))) == ["c-1", "b@example.com"]
    jpath = tmp_path / "c.jsonl"
    write_jsonl(jpath, [{"id": 42, "email": "a@example.com"}, {"email": "b@example.com"}])
    assert ids(read_all(make("jsonl", jpath))) == ["42", "b@example.com"]


def test_pages_resume_mid_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    emails = [f"p{i}@example.com" for i in range(10)]
    seed(kind, path, emails)
    adapter = make(kind, path, page_size=3)
    pages = read_all(adapter)
    assert [len(page.records) for page in pages] == [3, 3, 3, 1]
    assert [page.next_cursor.page_token is None for page in pages] == [False, False, False, True]
    for i, page in enumerate(pages[:-1]):
        assert ids(read_all(adapter, Cursor.from_json(page.next_cursor.to_json()))) == emails[3 * (i + 1) :]


def test_an_exact_multiple_of_the_page_size_ends_on_a_final_page(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, [f"p{i}@example.com" for i in range(6)])
    pages = read_all(make(kind, path, page_size=3))
    assert [len(page.records) for page in pages] == [3, 3]
    assert pages[-1].next_cursor.page_token is None


def test_a_file_changed_between_pages_restarts_from_row_0(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, [f"p{i}@example.com" for i in range(6)])
    adapter = make(kind, path, page_size=2)
    first = next(iter(adapter.read_contacts(Cursor())))
    seed(kind, path, ["new@example.com", *[f"p{i}@example.com" for i in range(6)]])
    assert ids(read_all(adapter, first.next_cursor))[:2] == ["new@example.com", "p0@example.com"]


def test_a_file_rewritten_in_place_while_read_stops_and_restarts(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, [f"p{i}@example.com" for i in range(6)])
    adapter = make(kind, path, page_size=2)
    reading = adapter.read_contacts(Cursor())
    first = next(reading)
    with path.open("a", encoding="utf-8") as handle:  # grows under the open reader
        handle.write("late@example.com\n" if kind == "csv" else '{"email": "late@example.com"}\n')
    rest = list(reading)
    assert all(page.next_cursor.page_token is not None for page in [first, *rest])  # no final cursor stored
    assert "late@example.com" in ids(read_all(adapter, [first, *rest][-1].next_cursor))


def test_bad_csv_rows_are_rejected_and_good_rows_kept(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    body = (
        b"\xef\xbb\xbfemail,first_name,notes\r\n"
        b'a@example.com,Ann,"two\nlines"\r\n'  # lines 2-3
        b"\r\n"  # 4: blank, skipped
        b"b@example.com,B\xe9a,latin-1\r\n"  # 5: not UTF-8
        b",NoEmail,x\r\n"  # 6
        b" ,,\r\n"  # 7: blank cells, skipped
        b"c@example.com,Cy\r\n"  # 8: short row, padded
    )
    path.write_bytes(body)
    pages = read_all(make("csv", path))
    records = [r for page in pages for r in page.records]
    assert [r.remote_id for r in records] == ["a@example.com", "c@example.com"]
    assert records[0].data == {"email": "a@example.com", "first_name": "Ann", "notes": "two\nlines"}
    assert records[1].data["notes"] == ""
    rejected = [(r.where, r.message) for page in pages for r in page.rejected]
    assert rejected == [("in.csv:5", "not valid UTF-8"), ("in.csv:6", "no email column/value")]


def test_bad_jsonl_lines_are_rejected_and_good_lines_kept(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'{"email": "a@example.com"}\n'
        b"\n"
        b'{"email": "b@example.com", "first_name": "B\xe9a"}\n'  # 3
        b"[1, 2]\n"  # 4
        b"{not json\n"  # 5
        b'{"first_name": "x"}\n'  # 6
        b'{"email": 7}\n'  # 7
        b'{"email": "c@example.com"}'  # no final newline
    )
    pages = read_all(make("jsonl", path))
    assert ids(pages) == ["a@example.com", "c@example.com"]
    rejected = [(r.where, r.message) for page in pages for r in page.rejected]
    assert rejected == [
        ("in.jsonl:3", "not valid UTF-8"),
        ("in.jsonl:4", "line 4 is not a JSON object"),
        ("in.jsonl:5", "line 5 is not a JSON object"),
        ("in.jsonl:6", "no email column/value"),
        ("in.jsonl:7", "no email column/value"),
    ]


def test_a_csv_without_an_email_column_is_fatal_and_named(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    write_csv(path, ["name", "mail"], [["Ann", "a@example.com"]])
    adapter = make("csv", path)
    with pytest.raises(FatalProviderError, match=r"people\.csv"):
        read_all(adapter)
    with pytest.raises(FatalProviderError, match=r"people\.csv"):
        adapter.check()


def test_very_long_fields(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    notes = "x" * 2_000_000
    if kind == "csv":
        write_csv(path, ["email", "notes"], [["a@example.com", notes]])
    else:
        write_jsonl(path, [{"email": "a@example.com", "notes": notes}])
    [record] = [r for page in read_all(make(kind, path)) for r in page.records]
    assert record.data["notes"] == notes


def test_duplicates_keep_the_last_row_and_report_nothing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["ann@example.com", "bob@example.com", "ANN@example.com"])
    pages = read_all(make(kind, path))
    records = [r for page in pages for r in page.records]
    assert [(r.remote_id, r.data["first_name"]) for r in records] == [
        ("bob@example.com", "N1"),
        ("ann@example.com", "N2"),
    ]
    assert not [r for page in pages for r in page.rejected]


# -- writing -----------------------------------------------------------------------------------------


def test_writes_are_staged_until_finish(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"out.{kind}"
    adapter = make(kind, path)
    results = adapter.write_contacts([req("A@Example.com", ref="1"), req("b@example.com", ref="2")])
    assert [(r.ref, r.ok, r.remote_id) for r in results] == [("1", True, "a@example.com"), ("2", True, "b@example.com")]
    assert not path.exists() and staging_of(path).exists()
    adapter.finish_writes()
    assert [row["email"] for row in rows_of(kind, path)] == ["A@Example.com", "b@example.com"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not staging_of(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    adapter.finish_writes()  # idempotent: nothing staged, nothing changes
    assert [row["email"] for row in rows_of(kind, path)] == ["A@Example.com", "b@example.com"]


def test_a_request_without_email_is_refused_alone(tmp_path: Path, kind: str) -> None:
    adapter = make(kind, tmp_path / f"out.{kind}")
    results = adapter.write_contacts([req(" ", ref="1"), req("b@example.com", ref="2")])
    assert [(r.ok, r.error) for r in results] == [(False, "no email"), (True, None)]


def test_the_merge_keeps_order_mode_and_the_last_staged_row(tmp_path: Path, kind: str) -> None:
    """An updated row keeps its place (someone keeps the file by hand); a new row goes at the end."""
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com", "b@example.com", "c@example.com"])
    path.chmod(0o640)
    adapter = make(kind, path)
    adapter.write_contacts([req("b@example.com", {"email": "b@example.com", "first_name": "B1"})])
    adapter.write_contacts(
        [req("new@example.com"), req("B@example.com", {"email": "b@example.com", "first_name": "B2"})]
    )
    adapter.finish_writes()
    rows = rows_of(kind, path)
    assert [(row["email"], row.get("first_name")) for row in rows] == [
        ("a@example.com", "N0"),
        ("b@example.com", "B2"),
        ("c@example.com", "N2"),
        ("new@example.com", "" if kind == "csv" else None),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_updates_keep_their_rows_places_new_rows_follow_and_erased_rows_go(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com", "b@example.com", "c@example.com", "d@example.com"])
    adapter = make(kind, path)
    adapter.write_contacts([req("c@example.com", {"email": "c@example.com", "first_name": "C2"})])
    adapter.write_contacts([req("x@example.com", {"email": "x@example.com", "first_name": "X"})])
    adapter.erase_contact(remote_id=None, email="b@example.com")
    adapter.write_contacts([req("a@example.com", {"email": "a@example.com", "first_name": "A2"})])
    adapter.finish_writes()
    assert [(row["email"], row["first_name"]) for row in rows_of(kind, path)] == [
        ("a@example.com", "A2"), ("c@example.com", "C2"), ("d@example.com", "N3"), ("x@example.com", "X"),
    ]


def test_an_update_of_a_repeated_contact_takes_the_place_of_its_last_row(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["ann@example.com", "bob@example.com", "Ann@example.com", "cy@example.com"])
    adapter = make(kind, path)
    adapter.write_contacts([req("ann@example.com", {"email": "ann@example.com", "first_name": "A2"})])
    adapter.finish_writes()
    assert [(row["email"], row["first_name"]) for row in rows_of(kind, path)] == [
        ("bob@example.com", "N1"), ("ann@example.com", "A2"), ("cy@example.com", "N3"),
    ]


def test_a_renamed_contact_takes_its_old_rows_place_over_a_row_of_its_new_address(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["new@example.com", "x@example.com", "old@example.com", "y@example.com"])
    adapter = make(kind, path)
    adapter.write_contacts([req("new@example.com", {"email": "new@example.com"}, previous="old@example.com")])
    adapter.finish_writes()
    assert [(row["email"], row["first_name"]) for row in rows_of(kind, path)] == [
        ("x@example.com", "N1"), ("new@example.com", "N2"), ("y@example.com", "N3"),
    ]


def test_a_rename_staged_twice_keeps_the_old_row_and_its_unwritten_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    write_csv(path, ["email", "notes"], [["ann@example.com", "met at expo"], ["cy@example.com", ""]])
    crashed = make("csv", path)
    crashed.write_contacts([req("bob@example.com", previous="ann@example.com")])  # killed before the ack
    rerun = make("csv", path)
    rerun.write_contacts([req("bob@example.com", previous="ann@example.com")])  # so the rerun sends it again
    rerun.finish_writes()
    assert read_csv(path) == [{"email": "bob@example.com", "notes": "met at expo"}, {"email": "cy@example.com", "notes": ""}]


def test_a_contact_renamed_there_and_back_keeps_the_row_it_had(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    write_csv(path, ["email", "notes"], [["dee@example.com", "met at expo"], ["cy@example.com", ""]])
    adapter = make("csv", path)
    adapter.write_contacts([req("dee@example.com", previous="bob@example.com")])  # bob had no row here
    adapter.write_contacts([req("bob@example.com", previous="dee@example.com")])
    adapter.finish_writes()
    assert read_csv(path) == [{"email": "bob@example.com", "notes": "met at expo"}, {"email": "cy@example.com", "notes": ""}]


def test_an_erased_row_does_not_come_back_under_a_contact_renamed_onto_its_address(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    write_csv(path, ["email", "notes"], [["ann@example.com", "private note"], ["cy@example.com", ""]])
    adapter = make("csv", path)
    adapter.erase_contact(remote_id=None, email="ann@example.com")
    adapter.write_contacts([req("ann@example.com", {"email": "ann@example.com"}, previous="bob@example.com")])
    adapter.finish_writes()
    assert read_csv(path) == [
        {"email": "cy@example.com", "notes": ""}, {"email": "ann@example.com", "notes": ""},
    ]


def test_an_email_change_replaces_the_old_row_and_keeps_unwritten_columns(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    write_csv(
        path,
        ["id", "email", "first_name", "notes"],
        [["c-1", "old@example.com", "Ann", "met at expo"], ["c-2", "bob@example.com", "Bob", ""]],
    )
    adapter = make("csv", path)
    [result] = adapter.write_contacts(
        [
            WriteRequest(
                ref="1",
                remote_id="c-1",
                email="new@example.com",
                previous_email="old@example.com",
                fields={"email": "new@example.com", "first_name": "Ann", "city": "Leeds"},
            )
        ]
    )
    assert result.remote_id == "c-1"
    adapter.finish_writes()
    assert read_csv(path) == [  # in the old row's place
        {"id": "c-1", "email": "new@example.com", "first_name": "Ann", "notes": "met at expo", "city": "Leeds"},
        {"id": "c-2", "email": "bob@example.com", "first_name": "Bob", "notes": "", "city": ""},
    ]
    assert ids(read_all(adapter)) == ["c-1", "c-2"]


def test_a_jsonl_update_lays_fields_over_the_old_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    write_jsonl(path, [{"email": "a@example.com", "first_name": "Ann", "note": "keep", "city": "York"}])
    adapter = make("jsonl", path)
    adapter.write_contacts([req("a@example.com", {"email": "a@example.com", "city": None, "tags": ["x"]})])
    adapter.finish_writes()
    assert read_jsonl(path) == [
        {"email": "a@example.com", "first_name": "Ann", "note": "keep", "city": None, "tags": ["x"]}
    ]


def test_csv_header_grows_in_first_seen_order_and_values_are_text(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    write_csv(path, ["Email", "first_name"], [["a@example.com", "Ann"]])
    adapter = make("csv", path)
    adapter.write_contacts(
        [
            req("b@example.com", {"email": "b@example.com", "tags": ["vip", "a"], "custom.score": 12, "ok": True}),
            req("c@example.com", {"email": "c@example.com", "consent": "subscribed", "custom.score": None}),
        ]
    )
    adapter.finish_writes()
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["Email", "first_name", "tags", "custom.score", "ok", "consent"],
        ["a@example.com", "Ann", "", "", "", ""],
        ["b@example.com", "", "a;vip", "12", "true", ""],
        ["c@example.com", "", "", "", "", "subscribed"],
    ]


def test_erase_removes_the_row_at_finish(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["ann@example.com", "bob@example.com"])
    adapter = make(kind, path)
    adapter.erase_contact(remote_id=None, email="ANN@example.com")
    assert len(rows_of(kind, path)) == 2
    adapter.finish_writes()
    assert [row["email"] for row in rows_of(kind, path)] == ["bob@example.com"]


def test_erase_then_create_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    write_jsonl(path, [{"email": "ann@example.com", "secret_note": "gone"}])
    adapter = make("jsonl", path)
    adapter.erase_contact(remote_id="ann@example.com", email="ann@example.com")
    adapter.write_contacts([req("ann@example.com")])
    adapter.finish_writes()
    assert read_jsonl(path) == [{"email": "ann@example.com"}]


def test_bad_rows_in_a_target_survive_a_merge(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"email,name\r\nbad@example.com,B\xe9a\r\n,nobody\r\na@example.com,A\r\n")
    adapter = make("csv", path)
    adapter.write_contacts([req("a@example.com", {"email": "a@example.com", "name": "A2"})])
    adapter.finish_writes()
    assert path.read_bytes() == b"email,name\r\nbad@example.com,B\xe9a\r\n,nobody\r\na@example.com,A2\r\n"


def test_a_target_with_a_repeated_contact_keeps_one_row_the_last(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["ann@example.com", "bob@example.com", "Ann@example.com"])
    adapter = make(kind, path)
    adapter.write_contacts([req("new@example.com")])
    adapter.finish_writes()
    assert [(row["email"], row.get("first_name")) for row in rows_of(kind, path)] == [
        ("bob@example.com", "N1"),
        ("Ann@example.com", "N2"),
        ("new@example.com", "" if kind == "csv" else None),
    ]


def test_a_leftover_staging_file_is_merged_by_the_next_run(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com"])
    crashed = make(kind, path)
    crashed.write_contacts([req("b@example.com")])  # then SIGKILL: no finish_writes, no close
    with staging_of(path).open("ab") as handle:
        handle.write(b'["u", "torn@example.com", null]\t{"email": "to')  # a half-written batch
    rerun = make(kind, path)
    rerun.write_contacts([req("c@example.com")])
    rerun.finish_writes()
    assert [row["email"] for row in rows_of(kind, path)] == ["a@example.com", "b@example.com", "c@example.com"]


def test_a_crash_between_replace_and_cleanup_merges_to_the_same_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com", "b@example.com"])
    adapter = make(kind, path)
    adapter.write_contacts([req("c@example.com"), req("new@example.com", previous="a@example.com")])
    adapter.erase_contact(remote_id=None, email="b@example.com")
    adapter.close()
    saved = tmp_path / "saved"
    shutil.copy(staging_of(path), saved)
    adapter.finish_writes()
    merged = path.read_bytes()
    shutil.copy(saved, staging_of(path))  # as if killed before the staging file was deleted
    make(kind, path).finish_writes()
    assert path.read_bytes() == merged
    assert [row["email"] for row in rows_of(kind, path)] == ["new@example.com", "c@example.com"]  # a's place


def test_a_failed_merge_leaves_the_target_and_the_staging_file(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"c.{kind}"
    seed(kind, path, ["a@example.com"])
    before = path.read_bytes()
    adapter = make(kind, path)
    adapter.write_contacts([req("b@example.com")])

    def boom(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        adapter.finish_writes()
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, staging_of(path).name])
    adapter.finish_writes()
    assert [row["email"] for row in rows_of(kind, path)] == ["a@example.com", "b@example.com"]


def test_jsonl_output_has_no_unicode_line_breaks_in_it(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    note = "a\x85b\u2028c\u2029d\re\x0bf é"
    adapter = make("jsonl", path)
    adapter.write_contacts([req("a@example.com", {"email": "a@example.com", "note": note})])
    adapter.finish_writes()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    assert read_jsonl(path)[0]["note"] == note
    assert "é" in path.read_text(encoding="utf-8")


def test_a_written_file_reads_back_as_written(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"c.{kind}"
    adapter = make(kind, path, page_size=2)
    adapter.write_contacts(
        [req(f"w{i}@example.com", {"email": f"w{i}@example.com", "first_name": f"W{i}"}) for i in range(5)]
    )
    adapter.finish_writes()
    records = [r for page in read_all(adapter) for r in page.records]
    assert [(r.remote_id, r.data["first_name"]) for r in records] == [(f"w{i}@example.com", f"W{i}") for i in range(5)]


# -- properties --------------------------------------------------------------------------------------

emails = st.sampled_from(["ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com"])
cased = emails.flatmap(lambda e: st.sampled_from([e, e.upper(), f" {e.title()} "]))
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)

operation = st.one_of(
    st.tuples(st.just("upsert"), cased, texts),
    st.tuples(st.just("rename"), emails, emails, texts),
    st.tuples(st.just("erase"), cased),
    st.tuples(st.just("finish")),
    st.tuples(st.just("crash")),
)


class OrderModel:
    """What the file should hold, in order: rows as merged by the last finish, updated in place (a renamed
    contact in its old address's place), and the rows new since, in the order of their last write.
    """

    def __init__(self) -> None:
        self.merged: dict[str, str] = {}
        self.new: dict[str, str] = {}

    def upsert(self, key: str, note: str) -> None:
        if key in self.merged:
            self.merged[key] = note
        else:
            self.new.pop(key, None)
            self.new[key] = note

    def rename(self, old: str, key: str, note: str) -> None:
        self.new.pop(old, None)
        if old == key or old not in self.merged:
            self.upsert(key, note)
            return
        self.new.pop(key, None)
        self.merged = {(key if k == old else k): (note if k == old else v) for k, v in self.merged.items()
                       if k != key}

    def erase(self, key: str) -> None:
        self.merged.pop(key, None)
        self.new.pop(key, None)

    def finish(self) -> None:
        self.merged.update(self.new)
        self.new = {}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, max_size=25), kind=st.sampled_from(["csv", "jsonl"]))
def test_the_file_always_matches_a_dict_of_last_writes(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]], kind: str
) -> None:
    """Every write carries the same fields, so the file must equal a plain dict replayed in order, its
    rows in order too: an update keeps a row's place, a new row goes at the end.
    """
    path = tmp_path_factory.mktemp("prop") / f"c.{kind}"
    model = OrderModel()
    adapter = make(kind, path)
    for op in ops:
        if op[0] == "upsert":
            key = op[1].strip().lower()
            adapter.write_contacts([req(op[1], {"email": key, "note": op[2]})])
            model.upsert(key, op[2])
        elif op[0] == "rename":
            old, new, note = op[1], op[2], op[3]
            adapter.write_contacts([req(new, {"email": new, "note": note}, previous=old)])
            model.rename(old, new, note)
        elif op[0] == "erase":
            key = op[1].strip().lower()
            adapter.erase_contact(remote_id=None, email=op[1])
            model.erase(key)
        elif op[0] == "crash":
            adapter = make(kind, path)  # the old one is dropped unfinished; its staging file stays
        else:
            adapter.finish_writes()
            model.finish()
    adapter.finish_writes()
    model.finish()
    rows = rows_of(kind, path) if path.exists() else []
    assert len(rows) == len({row["email"] for row in rows}), "one record per contact"
    assert [(row["email"], row["note"]) for row in rows] == list(model.merged.items())


rows_strategy = st.lists(
    st.one_of(
        st.tuples(cased, texts),  # a contact
        st.just(("", "no email")),
        st.just(None),  # a blank line
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, page_size=st.integers(1, 6), kind=st.sampled_from(["csv", "jsonl"]))
def test_resuming_from_any_page_yields_exactly_the_rest(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str] | None], page_size: int, kind: str
) -> None:
    path = tmp_path_factory.mktemp("read") / f"c.{kind}"
    out = io.StringIO(newline="")
    if kind == "csv":
        writer = csv.writer(out)
        writer.writerow(["email", "note"])
        for row in rows:
            writer.writerow(list(row) if row else [])
    else:
        for row in rows:
            out.write(json.dumps({"email": row[0], "note": row[1]}) + "\n" if row else "\n")
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    adapter = make(kind, path, page_size=page_size)
    pages = read_all(adapter)
    assert pages[-1].next_cursor.page_token is None
    assert all(page.next_cursor.page_token for page in pages[:-1])
    contacts = [row for row in rows if row and row[0]]
    assert {r.remote_id for page in pages for r in page.records} == {row[0].strip().lower() for row in contacts}
    assert sum(len(page.rejected) for page in pages) == len([row for row in rows if row and not row[0]])
    for i, page in enumerate(pages[:-1]):
        rest = read_all(adapter, Cursor.from_json(page.next_cursor.to_json()))
        assert [(r.remote_id, r.data) for p in rest for r in p.records] == [
            (r.remote_id, r.data) for p in pages[i + 1 :] for r in p.records
        ]
        assert [r.where for p in rest for r in p.rejected] == [r.where for p in pages[i + 1 :] for r in p.rejected]


# -- crmsync's own writes are not read back --------------------------------------------------------


def test_after_writing_on_what_it_read_the_cursor_skips_only_its_own_rows(kind, tmp_path):
    path = tmp_path / f"f.{kind}"
    adapter = make(kind, path)
    adapter.write_contacts([req("a@example.com")])
    adapter.finish_writes()
    pages = read_all(adapter)
    adapter.write_contacts([req("b@example.com")])
    adapter.finish_writes()
    cursor = adapter.cursor_after_writes()
    assert cursor is not None and adapter.cursor_after_writes() is None  # given once
    assert read_all(make(kind, path), cursor) == []  # nothing but crmsync's own rows to read
    assert ids(read_all(make(kind, path), pages[-1].next_cursor)) == ["a@example.com", "b@example.com"]


def test_a_file_someone_changed_after_the_read_gets_no_cursor_past_it(kind, tmp_path):
    path = tmp_path / f"f.{kind}"
    adapter = make(kind, path)
    adapter.write_contacts([req("a@example.com")])
    adapter.finish_writes()
    read_all(adapter)
    other = make(kind, path)  # someone else's write between crmsync's read and its own
    other.write_contacts([req("human@example.com")])
    other.finish_writes()
    adapter.write_contacts([req("b@example.com")])
    adapter.finish_writes()
    assert adapter.cursor_after_writes() is None
    assert "human@example.com" in ids(read_all(make(kind, path)))


def test_a_first_write_gets_a_cursor_only_when_the_file_was_read_as_absent(kind, tmp_path):
    path = tmp_path / f"f.{kind}"
    unread = make(kind, path)
    unread.write_contacts([req("a@example.com")])
    unread.finish_writes()
    assert unread.cursor_after_writes() is None  # never read: a migration's target
    path.unlink()
    adapter = make(kind, path)
    assert read_all(adapter) == []
    adapter.write_contacts([req("a@example.com")])
    adapter.finish_writes()
    assert read_all(make(kind, path), adapter.cursor_after_writes()) == []


def test_jsonl_values_read_exactly_as_the_standard_library_reads_them(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"email": "a@example.com", "custom.big": 123456789012345678901234567890}\n'
                     b'{"email": "b@example.com", "custom.score": NaN, "first_name": "Zo\\u00eb"}\n')
    records = {r.remote_id: r.data for r in read_all(make("jsonl", path))[0].records}
    assert records["a@example.com"]["custom.big"] == 123456789012345678901234567890  # not a float
    assert records["b@example.com"]["first_name"] == "Zoë"
    adapter = make("jsonl", path)
    adapter.write_contacts([req("a@example.com", {"email": "a@example.com", "first_name": "A"})])
    adapter.finish_writes()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8-sig").splitlines()]
    assert sorted(r["email"] for r in rows) == ["a@example.com", "b@example.com"]  # the BOM row replaced, once


def test_writes_one_after_another_each_move_the_cursor_past_their_own_rows(kind, tmp_path):
    path = tmp_path / f"f.{kind}"
    adapter = make(kind, path)  # a daemon's adapter: one poll's read, then several webhook cycles' writes
    assert read_all(adapter) == []
    for email in ("a@example.com", "b@example.com"):
        adapter.write_contacts([req(email)])
        adapter.finish_writes()
        cursor = adapter.cursor_after_writes()
        assert cursor is not None and read_all(make(kind, path), cursor) == []
