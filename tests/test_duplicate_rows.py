"""One person on several rows of one file: the later row's values win, its blanks never erase the earlier's."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from filesync import read_jsonl, run, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Cursor, Page, WriteRequest
from adapters.files import create_adapter

ABSENT: Any = object()  # a JSONL key left out of the line
FIELDS = ("first_name", "last_name", "phone")


def _write(path: Path, kind: str, rows: list[dict[str, Any]]) -> None:
    if kind == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(["email", *FIELDS])
        for row in rows:
            writer.writerow([row["email"], *(_text(row.get(name)) for name in FIELDS)])
        path.write_text(out.getvalue(), encoding="utf-8", newline="")
    else:
        path.write_text("".join(json.dumps({k: v for k, v in row.items() if v is not ABSENT}) + "\n" for row in rows),
                        encoding="utf-8")


def _text(cell: Any) -> str:
    return cell if isinstance(cell, str) else ""


def _read(path: Path, page_size: int = 1000, cursor: Cursor | None = None) -> list[Page]:
    adapter = create_adapter("in", {"type": path.suffix[1:], "path": str(path), "page_size": page_size})
    return list(adapter.read_contacts(cursor or Cursor()))


def _records(pages: list[Page], remote_id: str) -> list[dict[str, Any]]:
    return [dict(r.data) for page in pages for r in page.records if r.remote_id == remote_id]


ANN = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "phone": "+44 20 7946 0001"}
ANN_AGAIN = {"email": "ANN@example.com", "first_name": " ", "last_name": "Smith", "phone": ""}


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_within_a_page_a_later_row_keeps_the_earlier_values_under_its_blanks(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"in.{kind}"
    _write(path, kind, [ANN, {"email": "bob@example.com", "first_name": "Bob"}, ANN_AGAIN])
    pages = _read(path)
    [ann] = _records(pages, "ann@example.com")
    assert (ann["phone"], ann["first_name"], ann["last_name"]) == ("+44 20 7946 0001", "Ann", "Smith")
    assert [r.remote_id for page in pages for r in page.records] == ["bob@example.com", "ann@example.com"]
    [earlier] = [r for page in pages for r in page.superseded]  # read only to report its own errors
    assert earlier.where == f"in.{kind}:{2 if kind == 'csv' else 1}" and earlier.data["last_name"] == "Lee"


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("page_size", [1, 2])
def test_across_pages_a_later_row_keeps_the_earlier_values_under_its_blanks(
    tmp_path: Path, kind: str, page_size: int
) -> None:
    path = tmp_path / f"in.{kind}"
    others = [{"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(5)]
    _write(path, kind, [ANN, *others, ANN_AGAIN, {"email": "q@example.com"}])
    pages = _read(path, page_size)
    *_, last = _records(pages, "ann@example.com")
    assert (last["phone"], last["first_name"], last["last_name"]) == ("+44 20 7946 0001", "Ann", "Smith")
    for i, page in enumerate(pages[:-1]):  # a crash after any page: the rest reads the same
        rest = _read(path, page_size, Cursor.from_json(page.next_cursor.to_json()))
        assert [(r.remote_id, dict(r.data)) for p in rest for r in p.records] == [
            (r.remote_id, dict(r.data)) for p in pages[i + 1:] for r in p.records]


def test_a_jsonl_custom_object_and_a_left_out_key_keep_the_earlier_values(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    _write(path, "jsonl", [{"email": "ann@example.com", "phone": "+1 555 0100", "custom": {"plan": "gold", "n": 1}},
                           {"email": "bob@example.com"},
                           {"email": "ann@example.com", "tags": [], "custom": {"n": 2, "plan": None}}])
    for page_size in (1, 1000):
        *_, ann = _records(_read(path, page_size), "ann@example.com")
        assert ann == {"email": "ann@example.com", "phone": "+1 555 0100", "custom": {"plan": "gold", "n": 2},
                       "tags": []}


blank = st.sampled_from(["", " ", None, ABSENT])
value = st.sampled_from(["a", "b", "c"])
person = st.sampled_from(["ann@example.com", "ANN@example.com", "bob@example.com", "cy@example.com"])
file_rows = st.lists(st.builds(lambda email, cells: {"email": email, **dict(zip(FIELDS, cells, strict=True))},
                               person, st.tuples(*[st.one_of(blank, value)] * len(FIELDS))), max_size=14)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=file_rows, page_size=st.integers(1, 5), kind=st.sampled_from(["csv", "jsonl"]))
def test_the_last_record_of_each_person_holds_the_last_value_of_each_field(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], page_size: int, kind: str
) -> None:
    path = tmp_path_factory.mktemp("dups") / f"in.{kind}"
    _write(path, kind, rows)
    pages = _read(path, page_size)
    for key in {row["email"].lower() for row in rows}:
        *_, got = _records(pages, key)
        mine = [row for row in rows if row["email"].lower() == key]
        for name in FIELDS:
            values = [row[name] for row in mine if _text(row[name]).strip()]
            if values:
                assert got[name] == values[-1], (name, mine)
            else:
                assert not (got.get(name) or "").strip(), (name, mine)
    for i, page in enumerate(pages[:-1]):
        rest = _read(path, page_size, Cursor.from_json(page.next_cursor.to_json()))
        assert [(r.remote_id, dict(r.data)) for p in rest for r in p.records] == [
            (r.remote_id, dict(r.data)) for p in pages[i + 1:] for r in p.records]


# -- end to end ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1000, 2])
def test_a_migration_keeps_a_phone_that_a_later_duplicate_row_leaves_blank(
    tmp_path: Path, state_url: str, page_size: int
) -> None:
    rows = [ANN, *({"email": f"p{i}@example.com", "first_name": f"P{i}"} for i in range(4)), ANN_AGAIN]
    _write(tmp_path / "in.csv", "csv", rows)
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    config.write_text(config.read_text().replace('path = "in.csv"\n', f'path = "in.csv"\npage_size = {page_size}\n'))
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    assert out["errors"] == []
    got = read_jsonl(tmp_path / "out.jsonl")
    assert len(got) == 5
    ann = got["ann@example.com"]
    assert (ann["phone"], ann["first_name"], ann["last_name"]) == ("+442079460001", "Ann", "Smith")


def test_a_sync_keeps_a_phone_that_a_later_duplicate_row_in_a_later_page_leaves_blank(
    tmp_path: Path, state_url: str
) -> None:
    rows = [ANN, *({"email": f"p{i}@example.com"} for i in range(4)), ANN_AGAIN]
    _write(tmp_path / "crm.csv", "csv", rows)
    (tmp_path / "list.jsonl").write_text('{"email": "bob@example.com"}\n', encoding="utf-8")
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "list": ("jsonl", "list.jsonl")})
    config.write_text(config.read_text().replace('path = "crm.csv"\n', 'path = "crm.csv"\npage_size = 2\n'))
    code, out = run(config, "sync")
    assert code == 0, out
    ann = read_jsonl(tmp_path / "list.jsonl")["ann@example.com"]
    assert (ann["phone"], ann["first_name"], ann["last_name"]) == ("+442079460001", "Ann", "Smith")


# -- a target that holds a person twice: the merge keeps one row, and loses none of its values --------------


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@pytest.mark.parametrize("staged", [False, True])
def test_a_target_collapsing_a_repeated_person_keeps_the_earlier_values_under_the_last_rows_blanks(
    tmp_path: Path, kind: str, staged: bool,  # noqa: FBT001
) -> None:
    path = tmp_path / f"out.{kind}"
    _write(path, kind, [ANN, {"email": "bob@example.com", "first_name": "Bob"}, ANN_AGAIN])
    adapter = create_adapter("out", {"type": kind, "path": str(path)})
    update = WriteRequest(ref="1", remote_id=None, email="ann@example.com",
                          fields={"email": "ann@example.com", "last_name": "Jones"})
    adapter.write_contacts([update] if staged else [_create("new@example.com")])
    adapter.finish_writes()
    rows = [r for page in _read(path) for r in page.records]
    assert [r.remote_id for r in rows][:2] == ["bob@example.com", "ann@example.com"]
    ann = dict(rows[1].data)
    assert (ann["phone"], ann["first_name"], ann["last_name"]) == ("+44 20 7946 0001", "Ann",
                                                                    "Jones" if staged else "Smith")


def _create(email: str) -> WriteRequest:
    return WriteRequest(ref="n", remote_id=None, email=email, fields={"email": email})


def test_a_file_that_crmsync_collapsed_then_a_user_edited_clears_nothing(tmp_path: Path, state_url: str) -> None:
    _write(tmp_path / "crm.csv", "csv", [ANN, {"email": "p1@example.com"}, ANN_AGAIN])
    (tmp_path / "list.jsonl").write_text('{"email": "bob@example.com"}\n', encoding="utf-8")
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "list": ("jsonl", "list.jsonl")})
    assert run(config, "sync")[0] == 0  # bob is written into crm.csv: its merge holds ann once
    with (tmp_path / "crm.csv").open("a", encoding="utf-8") as handle:
        handle.write("carol@example.com,Carol,,\n")  # a user's edit: the file is read whole again
    code, out = run(config, "sync")
    assert code == 0, out
    ann = read_jsonl(tmp_path / "list.jsonl")["ann@example.com"]
    assert (ann["phone"], ann["first_name"], ann["last_name"]) == ("+442079460001", "Ann", "Smith")
