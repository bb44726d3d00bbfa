"""The GetResponse emulator's store: contacts of one account, their states, tags and custom fields.

A contact is one email in one campaign [providers/getresponse.md "Data model"]. States: ``queued``
(accepted by ``POST /contacts``, not visible yet), ``active`` (listed), ``unsubscribed`` and ``removed``
(both hidden from ``GET /contacts``; only Search Contacts finds unsubscribed ones).
"""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.getresponse._wire import format_time

ALPHABET: Final = string.ascii_letters + string.digits
# An account's custom fields at start: GetResponse's predefined ones (text) the crmsync table reads, plus
# job_title, industry and lifecycle, which an account creates itself (they are not predefined).
DEFAULT_FIELDS: Final = (
    "company",
    "phone",
    "city",
    "state",
    "country",
    "street",
    "postal_code",
    "job_title",
    "industry",
    "lifecycle",
)
FIRST: Final = ("Ana", "Bo", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
LAST: Final = ("Silva", "Berg", "Wu", "Okafor", "Novak", "Laine", "Moreau", "Sato")
COMPANIES: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli")
TAGS: Final = ("vip", "customer", "newsletter", "trial")


@dataclass
class Contact:
    contact_id: str
    email: str
    campaign_id: str
    created: dt.datetime
    changed: dt.datetime
    name: str | None = None
    origin: str = "api"
    state: str = "active"
    visible_at: dt.datetime | None = None  # queued contacts become active then
    tag_ids: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)  # customFieldId -> values
    day_of_cycle: str | None = None
    ip_address: str | None = None
    note: str | None = None

    def listed(self, campaign: dict[str, Any], base: str) -> dict[str, Any]:
        """The list view of ``GET /contacts`` (no tags or custom field values)."""
        return {
            "contactId": self.contact_id,
            "href": f"{base}/v3/contacts/{self.contact_id}",
            "name": self.name,
            "origin": self.origin,
            "timeZone": "Europe/Warsaw",
            "activities": f"{base}/v3/contacts/{self.contact_id}/activities",
            "changedOn": format_time(self.changed),
            "createdOn": format_time(self.created),
            "campaign": {"campaignId": campaign["campaignId"], "href": campaign["href"], "name": campaign["name"]},
            "email": self.email,
            "dayOfCycle": self.day_of_cycle,
            "scoring": None,
            "engagementScore": None,
        }

    def detail(
        self, campaign: dict[str, Any], base: str, tags: dict[str, str], fields: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The detail view of ``GET /contacts/{id}``: adds tags, custom field values, note, IP, geolocation."""
        out = self.listed(campaign, base)
        out.update(
            note=self.note,
            ipAddress=self.ip_address,
            geolocation=None,
            tags=[
                {"tagId": t, "href": f"{base}/v3/tags/{t}", "name": tags[t], "color": ""}
                for t in self.tag_ids
                if t in tags
            ],
            customFieldValues=[
                {
                    "customFieldId": f,
                    "href": f"{base}/v3/custom-fields/{f}",
                    "name": fields[f]["name"],
                    "fieldType": fields[f]["fieldType"],
                    "format": fields[f]["format"],
                    "valueType": fields[f]["valueType"],
                    "type": fields[f]["type"],
                    "hidden": fields[f]["hidden"],
                    "value": list(v),
                    "values": list(v),
                }
                for f, v in self.values.items()
                if f in fields
            ],
        )
        return out


class Ids:
    """GetResponse-like short alphanumeric ids (``pV3r``), unique per kind, deterministic per emulator."""

    def __init__(self, seed: int = 8) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - ids, not secrets
        self._used: set[str] = set()

    def new(self, length: int = 5) -> str:
        while True:
            value = "".join(self._rng.choice(ALPHABET) for _ in range(length))
            if value not in self._used:
                self._used.add(value)
                return value


def seed_profile(i: int) -> dict[str, Any]:
    """A realistic mix for seeded contact ``i``: names, companies, a tag or two, a few unnamed.

    Every seeded contact is active (listed): in GetResponse a listed contact is a subscribed one;
    ``unsubscribe(email)`` makes the other kind.
    """
    name = None if i % 7 == 3 else f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}"
    tags = [TAGS[i % len(TAGS)]] + ([TAGS[(i + 1) % len(TAGS)]] if i % 3 == 0 else [])
    custom = {"company": COMPANIES[i % len(COMPANIES)]} if i % 4 != 1 else {}
    if i % 5 == 0:
        custom["city"] = "Gdansk"
    return {"name": name, "tags": tags, "custom": custom}
