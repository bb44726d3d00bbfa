"""A Mailchimp member crmsync itself created as subscribed carries Mailchimp's ``timestamp_opt`` of that create:
the person confirmed nothing then, so the stamp must not lift an older opt-out that reaches crmsync later
(SPEC promise 2). Here Zoho, connected after the migration, holds the person opted out since before it."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from filesync import run, write_csv
from test_sandbox import _config_from

from adapters.base import Cursor
from connector.planner import next_base, stable_hash
from connector.sandbox import announcement, running_emulators
from mappings.contact import OPT_IN_AT, Consent
from state.store import Pulled, Store, WriteOk

EMAIL = "late.opt.out@example.com"


def _config(folder: Path, emulators: dict, *, with_zoho: bool) -> Path:
    shown = {kind: e for kind, e in emulators.items() if with_zoho or kind != "zoho"}
    config = _config_from(announcement(shown), folder, f"sqlite:///{folder / 'state.db'}")
    text = config.read_text().replace('[providers.export]\ntype = "jsonl"\npath = "export.jsonl"\n',
                                      '[providers.people]\ntype = "csv"\npath = "people.csv"\n')
    config.write_text(text)
    return config


def test_crmsync_own_subscribed_create_is_no_opt_in_that_lifts_an_older_opt_out(tmp_path: Path):
    with running_emulators(kinds=("mailchimp", "zoho")) as emulators:
        zoho, mailchimp = emulators["zoho"], emulators["mailchimp"]
        [record_id] = zoho.seed(1, prefix="late-")
        zoho.edit(record_id, Email=EMAIL, First_Name="Ada")
        zoho.unsubscribe(EMAIL)  # opted out in Zoho, which crmsync does not know yet
        time.sleep(1.1)  # the emulators stamp to the second
        write_csv(tmp_path / "people.csv", [{"email": EMAIL, "first_name": "Ada", "consent": "subscribed"}])
        code, out = run(_config(tmp_path, emulators, with_zoho=False), "sync")
        assert code == 0, out
        created = mailchimp.member(EMAIL)
        assert created is not None and created["status"] == "subscribed" and created["timestamp_opt"]
        time.sleep(1.1)
        mailchimp.edit(EMAIL, FNAME="Ada L.")  # any later change there makes the next poll read the member again
        config = _config(tmp_path, emulators, with_zoho=True)
        for _ in range(2):
            code, out = run(config, "sync")
            assert code == 0, out
        assert mailchimp.member(EMAIL)["status"] == "unsubscribed"
        assert zoho.find(EMAIL)["Email_Opt_Out"] is True
        code, status = run(config, "status")
        assert code == 0, status


def test_a_member_read_back_as_written_is_unchanged_whatever_stamp_its_base_keeps(state_url: str):
    store = Store(state_url)
    try:
        at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
        seen = {"email": EMAIL, "first_name": "Ada", "consent": Consent.SUBSCRIBED, OPT_IN_AT: at.isoformat()}
        first = store.store_page("mail", "members", [Pulled(remote_id="m1", email=EMAIL, fields=seen, updated_at=at)],
                                 Cursor())
        [contact_id] = first.contact_ids
        base = next_base(seen, None, opt_in_stamp=at.isoformat())
        store.record_writes("mail", [WriteOk(contact_id=contact_id, remote_id="m1", base=base,
                                             ack_hash=stable_hash(base), version=1)], [])
        again = store.store_page("mail", "members", [Pulled(remote_id="m1", email=EMAIL, fields=seen, updated_at=at)],
                                 Cursor())
        assert (again.stored, again.unchanged) == (0, 1)
        renamed = {**seen, "first_name": "Ada L."}
        moved = store.store_page("mail", "members",
                                 [Pulled(remote_id="m1", email=EMAIL, fields=renamed, updated_at=at)], Cursor())
        assert (moved.stored, moved.unchanged) == (1, 0)
    finally:
        store.close()


def test_an_observation_with_blanks_where_the_base_says_nothing_agrees_with_it():
    from state.store import _agrees

    base = '{"consent":"subscribed","email":"a@example.com","first_name":"Ann"}'
    assert _agrees('{"company":null,"consent":"subscribed","email":"a@example.com","first_name":"Ann","tags":[]}',
                   base)
    assert not _agrees('{"consent":"subscribed","email":"a@example.com","first_name":null}', base)  # cleared
    assert not _agrees('{"consent":"subscribed","email":"a@example.com","first_name":"Ann","tags":["x"]}', base)
