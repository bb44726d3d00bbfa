"""Arbitrary junk between good rows of a CSV or JSONL source: no crash, and every good row arrives."""

from __future__ import annotations

import json

from filesync import read_jsonl, run, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

junk_lines = st.lists(st.binary(min_size=0, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
                      max_size=6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=junk_lines, kind=st.sampled_from(["csv", "jsonl"]))
def test_junk_rows_never_cost_good_rows(tmp_path_factory, junk, kind):
    folder = tmp_path_factory.mktemp("files")
    good = [f"good{i}@example.com" for i in range(5)]
    lines: list[bytes] = [b"email,first_name"] if kind == "csv" else []
    for i, email in enumerate(good):
        lines.append(f"{email},Name{i}".encode() if kind == "csv" else json.dumps({"email": email}).encode())
        lines.extend(junk[i::5])
    (folder / f"in.{kind}").write_bytes(b"\n".join(lines) + b"\n")
    config = write_config(folder, f"sqlite:///{folder / 'state.db'}", {"src": (kind, f"in.{kind}"),
                                                                        "dst": ("jsonl", "out.jsonl")})
    code, out = run(config, "migrate", "--from", "src", "--to", "dst")
    assert code in (0, 1), out
    assert set(good) <= set(read_jsonl(folder / "out.jsonl"))
