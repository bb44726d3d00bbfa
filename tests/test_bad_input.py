"""Bad input never loses good rows, and bad config exits 2 with one line naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filesync import read_jsonl, run, write_config, write_csv


def test_invalid_rows_are_reported_and_valid_rows_all_arrive(tmp_path: Path, state_url: str):
    long_name = "Ä" * 100_000
    rows = [
        {"email": "good1@example.com", "first_name": "Zoë"},
        {"email": "", "first_name": "nobody"},
        {"email": "not-an-address"},
        {"email": "GOOD2@Example.COM", "first_name": "Two"},
        {"email": "good2@example.com", "last_name": "Again"},  # a duplicate differing only in case
        {"email": "long@example.com", "first_name": long_name},
        {"email": "josé@exämple.com", "first_name": "José"},
    ]
    write_csv(tmp_path / "in.csv", rows)
    with (tmp_path / "in.csv").open("ab") as handle:
        handle.write(b"\n,,,\n")  # an empty row
        handle.write(b"latin1@example.com,Fran\xe7ois,\n")  # not UTF-8
        handle.write(b"good3@example.com,Three,\n")
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 1, out
    messages = " | ".join(f"{e.get('where')} {e['message']}" for e in out["errors"])
    assert "UTF-8" in messages and "in.csv:" in messages, messages
    assert len(out["errors"]) == 3, messages  # empty email, invalid email, the non-UTF-8 line
    got = read_jsonl(tmp_path / "out.jsonl")
    assert set(got) == {"good1@example.com", "good2@example.com", "long@example.com",
                        "josé@xn--exmple-cua.com", "good3@example.com"}
    assert got["long@example.com"]["first_name"] == long_name
    assert got["good1@example.com"]["first_name"] == "Zoë"


def test_a_stray_quote_costs_only_its_own_line(tmp_path, state_url):
    (tmp_path / "in.csv").write_text('email,first_name\na@example.com,A\n"broken,x\nb@example.com,B\n'
                                     'c@example.com,"C\nwith a multi-line note"\nd@example.com,D\n')
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 1 and [e["where"] for e in out["errors"]] == ["in.csv:3"]
    got = read_jsonl(tmp_path / "out.jsonl")
    assert set(got) == {"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
    assert got["c@example.com"]["first_name"] == "C\nwith a multi-line note"  # a real multi-line field stays one


def test_a_second_run_of_a_migration_with_bad_rows_loses_nothing_and_adds_nothing(tmp_path, state_url):
    write_csv(tmp_path / "in.csv", [{"email": "a@example.com"}, {"email": "bad"}, {"email": "b@example.com"}])
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    assert run(config, "migrate", "--from", "src", "--to", "dst")[0] == 1
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert out["providers"]["dst"]["created"] == 0
    assert set(read_jsonl(tmp_path / "out.jsonl")) == {"a@example.com", "b@example.com"}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ('[providers.x]\ntype = "salesforce"\npath = "a.csv"\n', "providers.x.type"),
        ('[providers.x]\ntype = "csv"\npath = "a.csv"\ncolour = "red"\n', "providers.x.colour"),
        ('[providers.x]\ntype = "hubspot"\naccess_token = "${CRMSYNC_TEST_UNSET_VAR}"\n', "CRMSYNC_TEST_UNSET_VAR"),
        ('[sync]\nconflict_policy = "loudest"\n', "sync.conflict_policy"),
        ('[[rules]]\nwhen = "lifetime_value >> 3"\nadd_tags = ["vip"]\n', "rules"),
        ("this is not toml =", "crmsync.toml"),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_it(tmp_path, body, names, monkeypatch):
    monkeypatch.delenv("CRMSYNC_TEST_UNSET_VAR", raising=False)
    config = tmp_path / "crmsync.toml"
    config.write_text(body)
    code, out = run(config, "sync")
    assert code == 2
    stderr = out["stderr"].strip()
    assert len(stderr.splitlines()) == 1 and names in stderr, stderr


def test_missing_config_and_unknown_provider_flag_exit_2(tmp_path, state_url):
    code, out = run(tmp_path / "nope.toml", "status")
    assert code == 2 and "nope.toml" in out["stderr"]
    config = write_config(tmp_path, state_url, {"a": ("csv", "a.csv")})
    code, out = run(config, "sync", "--provider", "zzz")
    assert code == 2 and "zzz" in out["stderr"]
    code, out = run(config, "migrate", "--from", "a", "--to", "a")
    assert code == 2


def test_every_invalid_line_is_named_by_file_and_line_never_by_its_value(tmp_path, state_url):
    rows = [{"email": "secret-name"}, {"email": "a@example.com"}, {"email": "secret-name"}, {"email": "SECRET-NAME"},
            {"email": "b@example.com"}, {"email": "b@example.com", "first_name": "Last"}]
    write_csv(tmp_path / "in.csv", rows)
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 1, out
    assert sorted(e["where"] for e in out["errors"]) == ["in.csv:2", "in.csv:4", "in.csv:5"]
    assert "secret" not in json.dumps(out).lower()
    got = read_jsonl(tmp_path / "out.jsonl")
    assert set(got) == {"a@example.com", "b@example.com"}
    assert got["b@example.com"]["first_name"] == "Last"  # a valid duplicate: the last row wins, no error


def test_a_person_seen_again_in_a_later_page_of_a_migration_arrives_as_last_read(tmp_path, state_url):
    rows = [{"email": "a@example.com", "first_name": "First"}, {"email": "b@example.com"},
            {"email": "c@example.com"}, {"email": "A@Example.com", "first_name": "Later"},
            {"email": "d@example.com"}]
    write_csv(tmp_path / "in.csv", rows)
    config = write_config(tmp_path, state_url, {"src": ("csv", "in.csv"), "dst": ("jsonl", "out.jsonl")})
    config.write_text(config.read_text().replace('path = "in.csv"\n', 'path = "in.csv"\npage_size = 2\n'))
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code == 0, out
    got = read_jsonl(tmp_path / "out.jsonl")
    assert set(got) == {"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
    assert got["a@example.com"]["first_name"] == "Later"  # pages of 2: the later row changed the new person
