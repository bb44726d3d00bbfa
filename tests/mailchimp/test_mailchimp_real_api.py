"""What the real Mailchimp Marketing API does that an adapter built against our own emulator could miss.

Each test names the source of the behaviour it holds the adapter (and the emulator) to.
"""

from __future__ import annotations

import requests

from adapters.base import Cursor
from adapters.mailchimp import MailchimpAdapter
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret
from mappings.providers.mailchimp import tags_in


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


# -- tags past the 50th -------------------------------------------------------------------------
# A member's "tags": "Returns up to 50 tags applied to this member. To retrieve all tags see Member Tags";
# "tags_count": "The number of tags applied to this member" (ListsMembersMembers in the API reference:
# https://github.com/mailchimp/fern-marketing-api-docs/blob/HEAD/fern/apis/mailchimp-openapi/openapi.json)
def test_a_member_with_more_than_50_tags_is_read_with_all_of_them(mailchimp_emulator):
    ids = mailchimp_emulator.seed(3)
    many = [f"tag{i:02d}" for i in range(60)]
    mailchimp_emulator.edit(ids[1], tags=many)
    shown = mailchimp_emulator.member(ids[1])
    assert len(shown["tags"]) == 50 and shown["tags_count"] == 60  # the API's own view
    adapter = make(mailchimp_emulator)
    records = [r for page in adapter.read_contacts(Cursor()) for r in page.records]
    by_email = {r.data["email_address"]: r for r in records}
    assert tags_in(by_email["contact1@example.com"].data["tags"]) == set(many)
    assert tags_in(by_email["contact0@example.com"].data["tags"]) == {"customer", "vip"}
    [fetched] = adapter.fetch_contacts([ids[1]])
    assert tags_in(fetched.data["tags"]) == set(many)
    # one tags call for the one member with more than 50, paged 1000 at a time
    assert mailchimp_emulator.call_count("GET", "tags") == 2
