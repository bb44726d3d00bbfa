"""Provider answers that are malformed, incomplete or of the wrong type: no crash, a clear error, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filesync import read_jsonl, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sandbox import _config_from

from adapters._emulator import Fault
from connector.sandbox import announcement, running_emulators

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=64).map(lambda raw: ("raw", raw)),
    st.sampled_from([b"{", b"<html>502 Bad Gateway</html>", b"", b"null", b'{"results": [{}]}']).map(
        lambda raw: ("raw", raw)),
    json_values.map(lambda value: ("json", value)),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # One state for every example: Zoho mints only ten access tokens per ten minutes, and a fresh state
    # (a fresh token store) per example would spend that budget, exactly as it would against Zoho.
    folder = tmp_path_factory.mktemp("fuzz")
    with running_emulators(seed=3, kinds=("hubspot", "mailchimp", "zoho")) as emulators:
        yield emulators, folder, _config_from(announcement(emulators), folder, f"sqlite:///{folder / 'state.db'}")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(provider=st.sampled_from(["hubspot", "mailchimp", "zoho"]), body=bodies, status=st.sampled_from([200, 201]))
def test_an_unreadable_answer_stops_one_provider_cleanly_and_the_next_run_recovers(world, provider, body, status):
    emulators, folder, config = world
    kind, value = body
    fault = Fault(status, raw=value) if kind == "raw" else Fault(status, body=value)
    fault.method = "GET"
    fault.path_pattern = r"contacts|members|Contacts"  # a read of contacts, not the token endpoint
    emulators[provider].inject(fault)
    code, out = run(config, "sync")  # must not raise: run() would show a traceback
    assert code in (0, 1, 3), out
    if code == 3:
        assert provider in out["provider_errors"] and "Traceback" not in json.dumps(out)
    server = getattr(emulators[provider], "server", emulators[provider])
    server.clear_faults()  # a fault the first run did not reach must not hit the recovery run
    code, out = run(config, "sync")
    assert code in (0, 1), out
    exported = read_jsonl(Path(folder) / "export.jsonl")
    assert {f"{p}-{i}@example.com" for p in ("hubspot", "mailchimp", "zoho") for i in range(3)} <= set(exported)
