"""Chaos across HubSpot, Zoho CRM and Mailchimp: generated edits and faults, then the providers agree.

Hypothesis draws a sequence of user edits (names, opt-outs, new people) in the three emulators, with
faults (429 with Retry-After, 5xx, dropped connections) injected between syncs. After the faults stop and a
few quiet cycles, the invariants must hold: every provider holds the same people, once; anyone who opted out
anywhere is opted out everywhere; the names agree; a last cycle writes nothing.
`benchmarks/chaos.py` runs many more examples than CI does.
"""

from __future__ import annotations

import os
from pathlib import Path

from filesync import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sandbox import _config_from

from adapters._emulator import DROP, Fault
from connector.sandbox import announcement, running_emulators

PROVIDERS = ("hubspot", "mailchimp", "zoho")
NAMES = ("Ada", "Grace", "Linus", "Radia")
EXAMPLES = int(os.environ.get("CRMSYNC_CHAOS_EXAMPLES", "6"))

actions = st.one_of(
    st.tuples(st.just("rename"), st.sampled_from(PROVIDERS), st.integers(0, 2), st.sampled_from(NAMES)),
    st.tuples(st.just("optout"), st.sampled_from(PROVIDERS), st.integers(0, 2)),
    st.tuples(st.just("create"), st.sampled_from(PROVIDERS), st.integers(0, 3)),
    st.tuples(st.just("fault"), st.sampled_from(PROVIDERS), st.sampled_from(["429", "500", "drop"])),
    st.tuples(st.just("sync")),
)


def _email(provider: str, i: int) -> str:
    return f"{provider}-{i}@example.com"


def _apply(emulators: dict, action: tuple) -> None:
    kind, *args = action
    if kind == "rename":
        provider, i, name = args
        email = _email(provider, i)
        if provider == "hubspot":
            emulators["hubspot"].edit(emulators["hubspot"].find(email)["id"], firstname=name)
        elif provider == "zoho":
            emulators["zoho"].edit(emulators["zoho"].find(email)["id"], First_Name=name)
        else:
            emulators["mailchimp"].edit(email, FNAME=name)
    elif kind == "optout":
        provider, i = args
        emulators[provider].unsubscribe(_email(provider, i))
    elif kind == "create":
        provider, i = args
        email = f"new-{provider}-{i}@example.com"
        if provider == "hubspot" and emulators["hubspot"].find(email) is None:
            emulators["hubspot"].create(email=email, firstname="New")
        elif provider == "mailchimp" and emulators["mailchimp"].member(email) is None:
            emulators["mailchimp"].subscribe(email, FNAME="New")
        elif provider == "zoho" and emulators["zoho"].find(email) is None:
            emulators["zoho"].seed(1, prefix=f"new-zoho-{i}-")
    elif kind == "fault":
        provider, what = args
        fault = {"429": Fault(429, body={"status": "error", "message": "slow down"}, headers={"Retry-After": "0"}),
                 "500": Fault(500, body={"status": "error"}), "drop": Fault(DROP)}[what]
        emulators[provider].inject(fault)


def _state(emulators: dict) -> dict[str, dict[str, tuple[str | None, bool]]]:
    """email -> (first name, opted out), per provider."""
    hubspot = {
        c["properties"]["email"]: (c["properties"].get("firstname"),
                                   str(c["properties"].get("hs_email_optout")).lower() == "true")
        for c in (emulators["hubspot"].get(s.id) for s in emulators["hubspot"].portal.live())
    }
    mailchimp = {m["email_address"]: (m["merge_fields"].get("FNAME") or None, m["status"] in ("unsubscribed", "cleaned"))
                 for m in emulators["mailchimp"].members() if m["status"] != "archived"}
    zoho = {c["Email"]: (c.get("First_Name"), bool(c.get("Email_Opt_Out"))) for c in emulators["zoho"].all_contacts()}
    return {"hubspot": hubspot, "mailchimp": mailchimp, "zoho": zoho}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=st.lists(actions, min_size=3, max_size=10))
def test_after_chaos_every_provider_agrees(tmp_path_factory, script):
    folder = Path(tmp_path_factory.mktemp("chaos"))
    with running_emulators(seed=3, kinds=("hubspot", "mailchimp", "zoho")) as emulators:
        config = _config_from(announcement(emulators), folder, f"sqlite:///{folder / 'state.db'}")
        assert run(config, "sync")[0] == 0
        opted_out: set[str] = set()
        for action in script:
            if action[0] == "sync":
                code, out = run(config, "sync")
                assert code in (0, 1, 3), out
            else:
                if action[0] == "optout":
                    opted_out.add(_email(action[1], action[2]))
                _apply(emulators, action)
        for emulator in emulators.values():
            getattr(emulator, "server", emulator).clear_faults()
        for _ in range(3):
            code, out = run(config, "sync")
        assert code == 0, out
        assert all(f["created"] + f["updated"] == 0 for f in out["providers"].values()), out  # quiet
        state = _state(emulators)
        people = set(state["hubspot"])
        assert people == set(state["mailchimp"]) == set(state["zoho"]), "the same people everywhere"
        for email in people:
            names = {state[p][email][0] for p in PROVIDERS}
            outs = {state[p][email][1] for p in PROVIDERS}
            assert len(names) == 1, (email, names)
            assert len(outs) == 1, (email, outs)
        for email in opted_out:
            assert all(state[p][email][1] for p in PROVIDERS), email  # never resubscribed
