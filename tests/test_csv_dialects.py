"""CSV files split by something other than a comma: ``;`` (Excel in many European locales), tab and ``|``."""

from __future__ import annotations

from pathlib import Path

import pytest
from filesync import read_jsonl, run, write_config, write_jsonl

from adapters.base import Cursor, Page
from adapters.errors import FatalProviderError
from adapters.files import create_adapter

COLUMNS = ["Email", "First_Name", "last_name", "phone", "company", "job_title", "country", "region", "city",
           "industry", "lifecycle", "tags", "consent", "custom.plan"]
ANN = ["Ann@Example.com", "Ann", "Lee", "+44 20 7946 0001", "Acme; Ltd", "CTO", "GB", "London", "London",
       "Software", "customer", "vip;trial", "subscribed", "gold"]
BOB = ["bob@example.com", "Bob", "", "", "", "", "", "", "", "", "", "", "unsubscribed", ""]


def _cell(value: str, delimiter: str) -> str:
    return f'"{value}"' if delimiter in value or '"' in value else value


def _file(path: Path, delimiter: str, rows: list[list[str]], *, bom: bool = False, newline: str = "\n") -> None:
    lines = [delimiter.join(_cell(value, delimiter) for value in row) for row in rows]
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "".join(line + newline for line in lines).encode())


def _pages(path: Path, cursor: Cursor | None = None, page_size: int = 1000) -> list[Page]:
    adapter = create_adapter("in", {"type": "csv", "path": str(path), "page_size": page_size})
    return list(adapter.read_contacts(cursor or Cursor()))


@pytest.mark.parametrize(("delimiter", "bom", "newline"), [(";", True, "\r\n"), ("\t", False, "\n"),
                                                           ("|", False, "\r\n")])
def test_a_file_split_by_another_delimiter_migrates_with_every_field(
    tmp_path: Path, state_url: str, delimiter: str, bom: bool, newline: str,  # noqa: FBT001
) -> None:
    _file(tmp_path / "in.csv", delimiter, [COLUMNS, ANN, BOB], bom=bom, newline=newline)
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    assert out["notes"] == []  # every column was read
    got = read_jsonl(tmp_path / "out.jsonl")
    assert set(got) == {"ann@example.com", "bob@example.com"}
    ann = got["ann@example.com"]
    assert {k: ann[k] for k in ("first_name", "last_name", "phone", "company", "job_title", "country", "region",
                                "city", "industry", "lifecycle", "consent", "custom.plan")} == {
        "first_name": "Ann", "last_name": "Lee", "phone": "+442079460001", "company": "Acme; Ltd",
        "job_title": "CTO", "country": "GB", "region": "London", "city": "London", "industry": "Software",
        "lifecycle": "customer", "consent": "subscribed", "custom.plan": "gold"}
    assert sorted(ann["tags"]) == ["trial", "vip"]
    assert got["bob@example.com"]["consent"] == "unsubscribed"


def test_a_semicolon_target_keeps_its_delimiter_and_header_after_an_update(tmp_path: Path, state_url: str) -> None:
    _file(tmp_path / "crm.csv", ";", [["Email", "First_Name", "Notes"], ["ann@example.com", "Ann", "a; b"]])
    write_jsonl(tmp_path / "list.jsonl", [{"email": "ann@example.com", "first_name": "Ann"}])
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "list": ("jsonl", "list.jsonl")},
                          extra='[mapping.crm.fields]\n"custom.notes" = "Notes"\n')
    assert run(config, "sync")[0] == 0
    write_jsonl(tmp_path / "list.jsonl", [{"email": "ann@example.com", "first_name": "Annie", "tags": ["b", "a"]},
                                          {"email": "cy@example.com", "first_name": "Cy"}])
    code, out = run(config, "sync")
    assert code == 0, out
    assert out["providers"]["crm"]["updated"] == 1 and out["providers"]["crm"]["created"] == 1
    lines = (tmp_path / "crm.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Email;First_Name;Notes;tags"  # the file's own header, grown by the written column
    assert lines[1] == 'ann@example.com;Annie;"a; b";"a;b"'  # tags stay ";"-separated in one quoted cell
    assert lines[2].startswith("cy@example.com;Cy;")
    assert run(config, "sync")[1]["providers"]["crm"]["updated"] == 0  # it reads back as it was written


def test_tags_in_a_semicolon_file_round_trip(tmp_path: Path, state_url: str) -> None:
    _file(tmp_path / "a.csv", ";", [["email", "tags"], ["ann@example.com", "vip;trial"], ["bob@example.com", ""]])
    _file(tmp_path / "b.csv", ";", [["email", "tags"]])
    config = write_config(tmp_path, state_url, {"a": ("csv", "a.csv"), "b": ("csv", "b.csv")})
    assert run(config, "migrate", "--from", "a", "--to", "b")[0] == 0
    assert (tmp_path / "b.csv").read_text(encoding="utf-8").splitlines() == [
        "email;tags", 'ann@example.com;"trial;vip"', "bob@example.com;"]
    records = {r.remote_id: r.data for page in _pages(tmp_path / "b.csv") for r in page.records}
    assert records["ann@example.com"]["tags"] == "trial;vip"


def test_a_new_target_is_written_with_commas(tmp_path: Path, state_url: str) -> None:
    _file(tmp_path / "in.csv", ";", [["email", "first_name"], ["ann@example.com", "Ann"]])
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("csv", "out.csv")})
    assert run(config, "migrate", "--from", "src", "--to", "dst")[0] == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1] == "ann@example.com,Ann"


def test_a_semicolon_file_resumes_mid_read_from_a_stored_page_token(tmp_path: Path) -> None:
    rows = [["first_name", "email", "notes"]]
    rows += [[f"P{i}", f"p{i}@example.com", f"line one; of {i}\nline two"] for i in range(7)]
    _file(tmp_path / "in.csv", ";", rows, bom=True, newline="\r\n")
    pages = _pages(tmp_path / "in.csv", page_size=3)
    assert [len(page.records) for page in pages] == [3, 3, 1]
    everything = [(r.remote_id, r.data["notes"], r.where) for page in pages for r in page.records]
    assert everything[1] == ("p1@example.com", "line one; of 1\nline two", "in.csv:4")
    for done, page in enumerate(pages[:-1], start=1):
        cursor = Cursor.from_json(page.next_cursor.to_json())  # as stored before a crash
        rest = [(r.remote_id, r.data["notes"], r.where) for p in _pages(tmp_path / "in.csv", cursor, 3)
                for r in p.records]
        assert rest == everything[3 * done:]


def test_a_row_of_bad_utf8_in_a_semicolon_file_is_reported_by_its_line(tmp_path: Path) -> None:
    body = (b"email;first_name;notes\r\n"
            b'a@example.com;Ann;"two\nlines"\r\n'  # lines 2-3
            b"b@example.com;B\xe9a;latin-1\r\n"  # 4: not UTF-8
            b";NoEmail;x\r\n"  # 5
            b"c@example.com;Cy\r\n")  # 6: short row, padded
    (tmp_path / "in.csv").write_bytes(body)
    pages = _pages(tmp_path / "in.csv")
    records = [r for page in pages for r in page.records]
    assert [r.data for r in records] == [{"email": "a@example.com", "first_name": "Ann", "notes": "two\nlines"},
                                         {"email": "c@example.com", "first_name": "Cy", "notes": ""}]
    rejected = [(r.where, r.message) for page in pages for r in page.rejected]
    assert rejected == [("in.csv:4", "not valid UTF-8"), ("in.csv:5", "no email column/value")]


def test_a_stray_quote_in_a_semicolon_file_costs_only_its_own_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text('first_name;email\nA;a@example.com\n"broken;x\nB;b@example.com\n'
                                     'C;c@example.com\n', encoding="utf-8")
    pages = _pages(tmp_path / "in.csv")
    assert [r.remote_id for page in pages for r in page.records] == ["a@example.com", "b@example.com",
                                                                     "c@example.com"]
    assert [r.where for page in pages for r in page.rejected] == ["in.csv:3"]


def test_a_file_with_no_email_column_under_any_delimiter_is_one_line_naming_it(tmp_path: Path) -> None:
    _file(tmp_path / "people.csv", ";", [["name", "mail"], ["Ann", "a@example.com"]])
    adapter = create_adapter("in", {"type": "csv", "path": str(tmp_path / "people.csv")})
    one_line = r"^in: people\.csv has no 'email' column in its header \(split by , ; tab or \|\)$"
    with pytest.raises(FatalProviderError, match=one_line) as caught:
        adapter.check()
    assert len(str(caught.value).splitlines()) == 1


def test_an_email_column_under_a_comma_wins_over_other_delimiters(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text('email,note\nann@example.com,"a;b|c"\n', encoding="utf-8")
    [record] = [r for page in _pages(tmp_path / "in.csv") for r in page.records]
    assert record.data == {"email": "ann@example.com", "note": "a;b|c"}
