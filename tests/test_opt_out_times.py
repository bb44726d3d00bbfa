"""The engine asks for real opt-out times only where they decide, and a failed ask costs nothing but the time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

from adapters.errors import RetryableError
from connector.opt_out_times import link_sides, with_opt_out_times
from connector.runtime import ProviderRuntime
from mappings.contact import OPT_IN_AT, OPT_OUT_AT, Consent
from state.store import HubContact, LinkState

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Timer:
    def __init__(self, answer: Mapping[str, dt.datetime] | Exception) -> None:
        self.answer = answer
        self.asked: list[list[str]] = []

    def opt_out_times(self, remote_ids: Sequence[str]) -> Mapping[str, dt.datetime]:
        self.asked.append(list(remote_ids))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _runtime(adapter: Any) -> ProviderRuntime:
    return cast(ProviderRuntime, type("Runtime", (), {"adapter": adapter})())


def _contact(contact_id: int, *, crm_changed: dt.datetime, opted_in: dt.datetime | None) -> HubContact:
    mail_observed: dict[str, Any] = {"email": "a@example.com", "consent": Consent.SUBSCRIBED}
    if opted_in is not None:
        mail_observed[OPT_IN_AT] = opted_in.isoformat()
    links = (
        LinkState(link_id=1, provider="crm", remote_id=f"c{contact_id}", base={"consent": Consent.SUBSCRIBED},
                  observed={"email": "a@example.com", "consent": Consent.UNSUBSCRIBED}, observed_at=crm_changed),
        LinkState(link_id=2, provider="mail", remote_id=f"m{contact_id}", base={"consent": Consent.PENDING},
                  observed=mail_observed, observed_at=opted_in),
        LinkState(link_id=3, provider="file", remote_id=None, base=None, observed=None, observed_at=None),
    )
    return HubContact(id=contact_id, email="a@example.com", fields={}, sources={}, consent="subscribed",
                      consent_at=None, version=1, links=links, frozen=frozenset(), suppressed_at=None)


def test_only_the_opt_outs_an_opt_in_competes_with_are_asked_and_timed():
    contacts = [
        _contact(1, crm_changed=T0 + dt.timedelta(minutes=5), opted_in=T0),  # edited after the opt-in: ask
        _contact(2, crm_changed=T0 - dt.timedelta(minutes=5), opted_in=T0),  # changed before it: no need
        _contact(3, crm_changed=T0, opted_in=None),  # no explicit opt-in: the opt-out wins anyway
    ]
    crm = Timer({"c1": T0 - dt.timedelta(minutes=1), "c9": T0})  # c9: never asked, ignored
    sides = with_opt_out_times(contacts, [link_sides(c) for c in contacts], {"crm": _runtime(crm)})
    assert crm.asked == [["c1"]]
    first = {s.provider: s for s in sides[0]}
    assert first["crm"].observed[OPT_OUT_AT] == (T0 - dt.timedelta(minutes=1)).isoformat()
    assert OPT_OUT_AT not in first["mail"].observed
    assert [len(s) for s in sides] == [2, 2, 2]  # the link that never observed anything is no side
    assert all(OPT_OUT_AT not in side.observed for own in sides[1:] for side in own)


def test_a_provider_that_cannot_tell_or_fails_leaves_the_record_time():
    contacts = [_contact(1, crm_changed=T0 + dt.timedelta(minutes=5), opted_in=T0)]
    before = [link_sides(c) for c in contacts]
    failing = Timer(RetryableError("POST /crm/v3/objects/contacts/batch/read: 503", status=503))
    assert with_opt_out_times(contacts, before, {"crm": _runtime(failing)}) == before
    assert failing.asked == [["c1"]]
    unreadable = Timer(ValueError("Expecting value: line 1 column 1 (char 0)"))  # malformed JSON
    assert with_opt_out_times(contacts, before, {"crm": _runtime(unreadable)}) == before
    assert with_opt_out_times(contacts, before, {"crm": _runtime(object())}) == before  # no such ability
    assert with_opt_out_times(contacts, before, {}) == before  # not configured in this run
