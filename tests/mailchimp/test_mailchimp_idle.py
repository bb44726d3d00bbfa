"""An idle list is not read again: after a read to the end, the cursor moves to Mailchimp's own clock."""

from __future__ import annotations

from test_mailchimp_adapter import make

from adapters.base import Cursor


def _read(adapter, cursor):
    records, last = [], cursor
    for page in adapter.read_contacts(cursor):
        records.extend(page.records)
        last = page.next_cursor
    return records, last


def test_an_idle_cycle_reads_nothing_after_a_mass_import(mailchimp_emulator, clock):
    mailchimp_emulator.seed(2500)  # a mass import: every member changed in the same second
    adapter = make(mailchimp_emulator)
    clock.advance(600)  # the first sync runs ten minutes later
    records, cursor = _read(adapter, Cursor())
    assert len(records) == 2500
    clock.advance(300)
    mailchimp_emulator.reset_counters()
    again, cursor = _read(adapter, cursor)
    assert again == [] and mailchimp_emulator.call_count("GET", "members") <= 2  # one empty page (+ archived pass)
    clock.advance(5)
    mailchimp_emulator.edit("contact7@example.com", FNAME="Changed")
    changed, _ = _read(adapter, cursor)
    assert [r.data["email_address"] for r in changed] == ["contact7@example.com"]


def test_a_second_edit_within_the_second_of_a_read_is_not_lost(mailchimp_emulator, clock):
    mailchimp_emulator.seed(3)
    adapter = make(mailchimp_emulator)
    clock.advance(600)
    mailchimp_emulator.edit("contact1@example.com", FNAME="First")
    records, cursor = _read(adapter, Cursor(phase="incremental", updated_after=clock.now))  # same second
    assert [r.data["merge_fields"]["FNAME"] for r in records] == ["First"]
    mailchimp_emulator.edit("contact1@example.com", FNAME="Second")  # still the same whole second
    clock.advance(60)
    records, _ = _read(adapter, cursor)
    assert [r.data["merge_fields"]["FNAME"] for r in records] == ["Second"]
