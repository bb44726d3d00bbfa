"""Consent as a property, over real HTTP: whatever crmsync sends, no existing member's status is forced,
except an opt-out; an opted-out member is never resubscribed."""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters._emulator import Fault
from adapters.base import WriteRequest
from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret

STATUSES = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]
SENT = [None, "subscribed", "unsubscribed", "cleaned", "pending"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(
        st.tuples(st.sampled_from([None, *STATUSES]), st.sampled_from(SENT), st.booleans()), min_size=1, max_size=12
    )
)
def test_status_changes_only_toward_opt_out(people):
    with MailchimpEmulator() as emulator:
        before = {}
        for i, (existing, _, _) in enumerate(people):
            if existing is not None:
                emulator.audience.create(f"p{i}@example.com", status=existing)
                before[i] = existing
        adapter = MailchimpAdapter(
            api_key=Secret(emulator.api_key),
            list_id=emulator.list_id,
            base_url=emulator.api_url,
            sleep=lambda s: None,
            batch_poll_s=0.0,
        )
        requests = [
            WriteRequest(
                ref=str(i),
                remote_id=None if not linked else "x",
                email=f"p{i}@example.com",
                fields={"email_address": f"p{i}@example.com", "status": sent, "merge_fields": {"FNAME": "N"}},
            )
            for i, (_, sent, linked) in enumerate(people)
        ]
        results = adapter.write_contacts(requests)
        assert [r.ref for r in results] == [q.ref for q in requests]
        for i, (existing, sent, _) in enumerate(people):
            now = emulator.member(f"p{i}@example.com")["status"]
            if existing is None:
                assert now == (sent or "pending")
            elif sent in ("unsubscribed", "cleaned"):
                assert now == sent
            else:
                assert now == existing  # never forced: status_if_new semantics
            assert not (before.get(i) in ("unsubscribed", "cleaned") and now == "subscribed")
            assert results[i].ok


def test_a_throttled_batch_write_is_retried_and_logs_hold_no_key_or_address(mailchimp_emulator, caplog):
    adapter = MailchimpAdapter(
        api_key=Secret(mailchimp_emulator.api_key),
        list_id=mailchimp_emulator.list_id,
        base_url=mailchimp_emulator.api_url,
        sleep=lambda s: None,
    )
    mailchimp_emulator.inject(Fault(403, None, method="POST"), Fault(500, {"title": "Internal"}, method="POST"))
    caplog.set_level(logging.DEBUG)
    [result] = adapter.write_contacts(
        [
            WriteRequest(
                ref="1",
                remote_id=None,
                email="secretperson@example.com",
                fields={"email_address": "secretperson@example.com", "status": None},
            )
        ]
    )
    assert result.ok and mailchimp_emulator.member("secretperson@example.com") is not None
    assert "retrying" in caplog.text
    assert mailchimp_emulator.api_key not in caplog.text and "secretperson" not in caplog.text
