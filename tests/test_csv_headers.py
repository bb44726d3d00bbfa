"""CSV headers as users write them: canonical names in any case, columns that go nowhere named, not dropped silently."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from filesync import read_jsonl, run, write_config
from rich.console import Console

from connector.render import print_report
from connector.report import RunReport


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_canonical_columns_are_read_in_any_case(tmp_path: Path, state_url: str):
    _csv(tmp_path / "in.csv", ["Email", "First_Name", "COMPANY", "Custom.Plan"],
         [["Ann@Example.com", "Ann", "Acme", "gold"], ["bob@example.com", "Bob", "", "free"]])
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    assert out["providers"]["dst"]["created"] == 2
    assert out["notes"] == []  # every column was read
    exported = read_jsonl(tmp_path / "out.jsonl")
    assert exported["ann@example.com"]["first_name"] == "Ann"
    assert exported["ann@example.com"]["company"] == "Acme"
    assert exported["ann@example.com"]["custom.Plan"] == "gold"  # a custom field keeps its name's case


def test_a_two_way_sync_writes_into_the_files_own_columns_and_reads_them_back(tmp_path: Path, state_url: str):
    _csv(tmp_path / "crm.csv", ["Email", "First_Name"], [["ann@example.com", "Ann"]])
    (tmp_path / "list.jsonl").write_text('{"email": "ann@example.com", "first_name": "Annie"}\n', encoding="utf-8")
    config = write_config(tmp_path, state_url, {"crm": ("csv", "crm.csv"), "list": ("jsonl", "list.jsonl")},
                          policy="priority")  # crm first: its name wins the first sync
    assert run(config, "sync")[0] == 0
    text = (tmp_path / "crm.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "Email,First_Name"  # no second first_name column
    _csv(tmp_path / "crm.csv", ["Email", "First_Name"], [["ann@example.com", "Anna"]])  # an edit in the CSV
    code, out = run(config, "sync")
    assert code == 0, out
    assert read_jsonl(tmp_path / "list.jsonl")["ann@example.com"]["first_name"] == "Anna"
    assert run(config, "sync")[1]["providers"]["crm"]["updated"] == 0


def test_columns_that_are_not_canonical_names_are_named_in_a_note(tmp_path: Path, state_url: str):
    _csv(tmp_path / "in.csv", ["Email", "First Name", "Surname", "id", "custom.score"],
         [["ann@example.com", "Ann", "Lee", "7", "3"]])
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    assert len(out["notes"]) == 1
    note = out["notes"][0]
    assert note.startswith("src: not read") and "First Name" in note and "Surname" in note  # as the header has it
    assert "first name" not in note and "surname" not in note
    assert "id" not in note.split(":", 2)[-1].split("(")[0].split(", ")  # the file's own id is read, by the adapter
    assert "ann@example.com" not in note  # column names only, never a value


def test_a_mapped_column_is_read_whatever_its_case(tmp_path: Path, state_url: str):
    _csv(tmp_path / "in.csv", ["EMAIL", "First Name"], [["ann@example.com", "Ann"]])
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")},
                          extra='[mapping.src.fields]\nfirst_name = "first NAME"\n')
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    assert out["notes"] == []
    assert read_jsonl(tmp_path / "out.jsonl")["ann@example.com"]["first_name"] == "Ann"


def test_human_output_prints_outside_text_as_it_is_not_as_markup():
    report = RunReport(run_id="r", kind="sync", dry_run=False)
    report.notes.append("src: map them in [mapping.src.fields]")
    report.provider_errors["crm"] = "HTTP 400 [/bold] bad request"  # would be a rich MarkupError as markup
    report.record_error("crm", "field [red]x[/red] refused", where="in.csv:3")
    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=200))
    printed = buffer.getvalue()
    assert "[mapping.src.fields]" in printed
    assert "HTTP 400 [/bold] bad request" in printed
    assert "field [red]x[/red] refused" in printed
