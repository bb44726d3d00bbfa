"""The Zoho emulator's in-memory org: contacts, deletions, tags and the clock, thread-safe."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Standard Contacts fields the emulator knows (custom fields end in "__c" and are added per org).
# https://github.com/zoho/zohocrm-python-sdk-8.0 (record/field.py)
STANDARD_FIELDS: Final = frozenset(
    {
        "Email",
        "Secondary_Email",
        "First_Name",
        "Last_Name",
        "Full_Name",
        "Phone",
        "Mobile",
        "Title",
        "Department",
        "Account_Name",
        "Mailing_Street",
        "Mailing_City",
        "Mailing_State",
        "Mailing_Zip",
        "Mailing_Country",
        "Email_Opt_Out",
        "Unsubscribed_Mode",
        "Unsubscribed_Time",
        "Tag",
        "Owner",
        "Created_Time",
        "Modified_Time",
        "Created_By",
        "Modified_By",
        "Lead_Source",
        "Description",
        "Data_Processing_Basis",
    }
)
SYSTEM_FIELDS: Final = frozenset(
    {"id", "Full_Name", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Owner", "Tag"}
)
USER: Final = {"name": "Emulator Admin", "id": "5550000000000001", "email": "admin@example.com"}

_FIRST = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena")
_LAST = ("Silva", "Berg", "Okafor", "Novak", "Tanaka", "Moreau", "Quinn", "Rossi", "Sato", "Weber")
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", None)
_TITLES = ("Engineer", "Buyer", "CTO", "Office Manager", None)
_COUNTRIES = (("Portugal", "Lisboa", "Lisbon"), ("Germany", "Berlin", "Berlin"), ("Japan", "Tokyo", "Tokyo"))
_TAGS = ("vip", "newsletter", "partner", "trade-show")


@dataclass(slots=True)
class Deleted:
    id: str
    display_name: str
    deleted_time: dt.datetime
    kind: str = "recycle"  # "recycle" (in the recycle bin) or "permanent"


@dataclass(slots=True)
class Org:
    """Contacts of one Zoho org. Times are aware UTC, second precision, like Zoho's."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[Deleted] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # tag name -> tag id
    accounts: dict[str, str] = field(default_factory=dict)  # account name -> account id
    custom_fields: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock_offset: dt.timedelta = dt.timedelta(0)
    frozen: dt.datetime | None = None  # tests: every change in the same second
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5_550_000_000_123_000, 17))

    def now(self) -> dt.datetime:
        if self.frozen is not None:
            return self.frozen
        return (dt.datetime.now(dt.UTC) + self.clock_offset).replace(microsecond=0)

    def new_id(self) -> str:
        return str(next(self._ids))

    def known_field(self, name: str) -> bool:
        return name in STANDARD_FIELDS or name in self.custom_fields or name == "id"

    def tag_id(self, name: str) -> str:
        if name not in self.tags:
            self.tags[name] = self.new_id()
        return self.tags[name]

    def account(self, name: str) -> dict[str, str]:
        if name not in self.accounts:
            self.accounts[name] = self.new_id()
        return {"name": name, "id": self.accounts[name]}

    def by_email(self, email: str) -> list[dict[str, Any]]:
        key = email.strip().lower()
        return [c for c in self.contacts.values() if str(c.get("Email") or "").lower() == key]

    def by_any_email(self, email: str) -> list[dict[str, Any]]:
        """Search Records' ``email`` parameter: a match in any email field of the module, not only Email."""
        key = email.strip().lower()
        return [
            c
            for c in self.contacts.values()
            if key in (str(c.get("Email") or "").lower(), str(c.get("Secondary_Email") or "").lower())
        ]

    def insert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        now = self.now()
        record: dict[str, Any] = {"id": self.new_id(), "Email_Opt_Out": False, "Tag": []}
        record.update(_writable(values))
        record["Created_Time"] = now
        record["Created_By"] = dict(USER)
        self._touch(record, now)
        self.contacts[record["id"]] = record
        return record

    def update(self, record: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        opting_out = values.get("Email_Opt_Out") is True and record.get("Email_Opt_Out") is not True
        record.update(_writable(values))
        now = self.now()
        if opting_out:  # Zoho records when an opt-out happened, whoever set it; the mode's values are unconfirmed
            record["Unsubscribed_Time"] = values.get("Unsubscribed_Time") or now
            record["Unsubscribed_Mode"] = values.get("Unsubscribed_Mode") or "Manual"
        self._touch(record, now)
        return record

    def set_tags(self, record: dict[str, Any], names: Iterable[str], *, add: bool) -> None:
        current = {t["name"] for t in record.get("Tag") or ()}
        wanted = current | set(names) if add else current - set(names)
        record["Tag"] = [{"name": n, "id": self.tag_id(n)} for n in sorted(wanted)]
        self._touch(record, self.now())

    def delete(self, record_id: str) -> bool:
        record = self.contacts.pop(record_id, None)
        if record is None:
            return False
        name = " ".join(str(record.get(k) or "") for k in ("First_Name", "Last_Name")).strip()
        self.deleted.append(Deleted(id=record_id, display_name=name, deleted_time=self.now()))
        return True

    def _touch(self, record: dict[str, Any], now: dt.datetime) -> None:
        record["Modified_Time"] = now
        record["Modified_By"] = dict(USER)
        name = " ".join(str(record.get(k) or "") for k in ("First_Name", "Last_Name")).strip()
        record["Full_Name"] = name or None

    def seed_values(self, i: int, prefix: str, rng: random.Random) -> dict[str, Any]:
        country, state, city = rng.choice(_COUNTRIES)
        company = rng.choice(_COMPANIES)
        opted_out = rng.random() < 0.1
        values: dict[str, Any] = {
            "Email": f"{prefix}{i}@example.com",
            "First_Name": rng.choice(_FIRST),
            "Last_Name": rng.choice(_LAST),
            "Phone": f"+35121{rng.randrange(10**6, 10**7)}" if rng.random() < 0.7 else None,
            "Title": rng.choice(_TITLES),
            "Account_Name": self.account(company) if company else None,
            "Mailing_Country": country,
            "Mailing_State": state,
            "Mailing_City": city,
            "Email_Opt_Out": opted_out,
        }
        if opted_out:
            values["Unsubscribed_Mode"] = "Manual"
            values["Unsubscribed_Time"] = self.now()
        return values


def _writable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in SYSTEM_FIELDS}


def format_time(value: dt.datetime, tz: dt.tzinfo) -> str:
    """Zoho's wire format: ISO 8601, seconds, with the org's offset (``2024-05-01T15:26:49+05:30``)."""
    return value.astimezone(tz).replace(microsecond=0).isoformat()


def render(record: Mapping[str, Any], fields: Iterable[str] | None, tz: dt.tzinfo) -> dict[str, Any]:
    names = list(record) if fields is None else ["id", *fields]
    out: dict[str, Any] = {}
    for name in names:
        value = record.get(name)
        if name not in record and name != "id" and fields is not None:
            value = [] if name == "Tag" else None
        out[name] = format_time(value, tz) if isinstance(value, dt.datetime) else value
    return out
