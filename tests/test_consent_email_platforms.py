"""Sticky consent across the email platforms: Mailchimp, ActiveCampaign and GetResponse in one sync."""

from __future__ import annotations

from pathlib import Path

from filesync import read_jsonl, run
from test_sandbox import _config_from

from connector.sandbox import announcement, running_emulators

PLATFORMS = ("mailchimp", "activecampaign", "getresponse")


def _opted_out(emulators: dict, email: str) -> dict[str, bool]:
    member = emulators["mailchimp"].member(email)
    ac = emulators["activecampaign"].find(email)
    gr = emulators["getresponse"].find(email)
    return {
        "mailchimp": member is not None and member["status"] in ("unsubscribed", "cleaned"),
        "activecampaign": ac is not None and str(ac["listStatus"]) == "2",
        "getresponse": gr is None or gr["state"] != "active",  # unsubscribed or never (re-)added
    }


def test_an_opt_out_in_one_platform_reaches_the_others_and_no_later_edit_lifts_it(tmp_path: Path, state_url: str):
    with running_emulators(seed=3, kinds=PLATFORMS) as emulators:
        config = _config_from(announcement(emulators), tmp_path, state_url)
        code, out = run(config, "sync")
        assert code == 0, out
        everyone = {f"{p}-{i}@example.com" for p in PLATFORMS for i in range(3)}
        assert everyone <= set(read_jsonl(tmp_path / "export.jsonl"))

        emulators["activecampaign"].unsubscribe("mailchimp-1@example.com")
        emulators["mailchimp"].unsubscribe("getresponse-2@example.com")
        code, out = run(config, "sync")
        assert code == 0, out
        for email in ("mailchimp-1@example.com", "getresponse-2@example.com"):
            assert all(_opted_out(emulators, email).values()), (email, _opted_out(emulators, email))
            assert read_jsonl(tmp_path / "export.jsonl")[email]["consent"] == "unsubscribed"

        # a later plain edit elsewhere (a new name, a CRM-style "subscribed") resubscribes no one
        emulators["mailchimp"].edit("mailchimp-1@example.com", FNAME="Renamed")
        ac = emulators["activecampaign"].find("getresponse-2@example.com")
        emulators["activecampaign"].edit(ac["id"], firstName="Also")
        rows = read_jsonl(tmp_path / "export.jsonl")
        rows["getresponse-2@example.com"]["consent"] = "subscribed"
        (tmp_path / "export.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows.values()))
        for _ in range(2):
            code, out = run(config, "sync")
            assert code == 0, (out["providers"], out["errors"])
        for email in ("mailchimp-1@example.com", "getresponse-2@example.com"):
            assert all(_opted_out(emulators, email).values()), (email, _opted_out(emulators, email))
            assert read_jsonl(tmp_path / "export.jsonl")[email]["consent"] == "unsubscribed"
        assert emulators["activecampaign"].find("mailchimp-1@example.com")["firstName"] == "Renamed"
