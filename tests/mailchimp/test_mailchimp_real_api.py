"""What the real Mailchimp Marketing API does that an adapter built against our own emulator could miss.

Each test names the source of the behaviour it holds the adapter (and the emulator) to.
"""

from __future__ import annotations

import requests

from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret


def make(emulator: MailchimpEmulator, **options) -> MailchimpAdapter:
    return MailchimpAdapter(
        api_key=Secret(emulator.api_key),
        list_id=emulator.list_id,
        base_url=emulator.api_url,
        sleep=lambda s: None,
        batch_poll_s=0.0,
        **options,
    )


def get(emulator: MailchimpEmulator, path: str, **params) -> requests.Response:
    return requests.get(f"{emulator.api_url}{path}", params=params, auth=("x", emulator.api_key), timeout=5)


# -- partial responses -------------------------------------------------------------------------
# "The fields and exclude_fields parameters ... will throw an error if a field isn't valid in your request"
# https://mailchimp.com/developer/marketing/docs/methods-parameters/#partial-responses
def test_a_field_the_resource_does_not_have_is_refused(mailchimp_emulator):
    [cid] = mailchimp_emulator.seed(1)
    lid = mailchimp_emulator.list_id
    assert get(mailchimp_emulator, f"/lists/{lid}/members/{cid}", fields="id,total_items").status_code == 400
    assert get(mailchimp_emulator, f"/lists/{lid}/members", fields="members.nope").status_code == 400
    listing = get(mailchimp_emulator, f"/lists/{lid}/members", fields="members.id,members.tags_count,total_items")
    assert listing.status_code == 200 and set(listing.json()["members"][0]) == {"id", "tags_count"}


def test_a_webhook_hint_fetches_the_member_with_fields_a_member_has(mailchimp_emulator):
    ids = mailchimp_emulator.seed(2)
    [record] = make(mailchimp_emulator).fetch_contacts([ids[1]])
    assert not record.deleted and record.data["email_address"] == "contact1@example.com"
