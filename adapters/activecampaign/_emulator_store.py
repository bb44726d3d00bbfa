"""The ActiveCampaign emulator's account: contacts, list memberships, tags, field values (thread-safe).

Shapes follow /work/shared/providers/activecampaign.md: ids are digit strings, ``cdate``/``udate`` are
ISO 8601 with the account's offset (``-05:00``), list status 1 subscribed / 2 unsubscribed, tags by name
with join rows (``contactTag``), custom field values by field id.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

SUBSCRIBED: Final = "1"
UNSUBSCRIBED: Final = "2"
DEFAULT_FIELDS: Final = (
    ("1", "Company", "COMPANY", "text"),
    ("2", "Job Title", "JOB_TITLE", "text"),
    ("3", "Tier", "TIER", "dropdown"),
)


@dataclass(slots=True)
class Membership:
    list_id: str
    status: str
    sdate: str
    udate: str
    unsubreason: str = ""
    id: str = ""


@dataclass(slots=True)
class Contact:
    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    cdate: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    udate: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    lists: dict[str, Membership] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # tag id -> contactTag row id
    values: dict[str, str] = field(default_factory=dict)  # field id -> value


class Account:
    """One ActiveCampaign account; every mutation holds ``lock``."""

    def __init__(self, *, clock: Callable[[], dt.datetime], offset: dt.timedelta, list_ids: Iterable[str]) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.zone = dt.timezone(offset)
        self.list_ids = set(list_ids)
        self.contacts: dict[str, Contact] = {}
        self.by_email: dict[str, str] = {}
        self.tags: dict[str, str] = {}  # tag id -> name
        self.fields = {fid: {"id": fid, "title": t, "perstag": p, "type": k} for fid, t, p, k in DEFAULT_FIELDS}
        self._ids = itertools.count(1)
        self._tag_ids = itertools.count(1)
        self._row_ids = itertools.count(1)

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC).replace(microsecond=0)

    def iso(self, when: dt.datetime) -> str:
        """AC shows times in the account's zone with its offset: ``2024-05-01T10:00:00-05:00``."""
        return when.astimezone(self.zone).isoformat()

    # -- contacts ------------------------------------------------------------------------------
    def find(self, email: str) -> Contact | None:
        cid = self.by_email.get(email.strip().lower())
        return self.contacts.get(cid) if cid else None

    def create(self, email: str) -> Contact:
        with self.lock:
            now = self.now()
            contact = Contact(id=str(next(self._ids)), email=email.strip(), cdate=now, udate=now)
            self.contacts[contact.id] = contact
            self.by_email[contact.email.lower()] = contact.id
            return contact

    def update(self, contact: Contact, values: Mapping[str, Any], *, touch: bool = True) -> None:
        """Apply a ``contact`` envelope's known keys; blank strings clear, missing keys keep."""
        with self.lock:
            if values.get("email"):
                new = str(values["email"]).strip()
                if new.lower() != contact.email.lower():
                    self.by_email.pop(contact.email.lower(), None)
                    self.by_email[new.lower()] = contact.id
                contact.email = new
            for key, attr in (("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone")):
                if key in values and values[key] is not None:
                    setattr(contact, attr, str(values[key]))
            if touch:
                contact.udate = self.now()

    def delete(self, contact: Contact) -> None:
        with self.lock:
            self.contacts.pop(contact.id, None)
            self.by_email.pop(contact.email.lower(), None)

    def set_value(self, contact: Contact, field_id: str, value: str) -> None:
        with self.lock:
            contact.values[field_id] = value

    def set_status(self, contact: Contact, list_id: str, status: str, *, reason: str = "") -> Membership:
        """Set a list status; like AC, an unsubscribed contact is not re-subscribed (the caller checks sourceid)."""
        with self.lock:
            now = self.iso(self.now())
            current = contact.lists.get(list_id)
            if current is None:
                current = contact.lists[list_id] = Membership(
                    list_id=list_id, status=status, sdate=now, udate=now, id=str(next(self._row_ids))
                )
            else:
                current.status = status
                current.udate = now
            if status == UNSUBSCRIBED:
                current.unsubreason = reason
            return current

    # -- tags --------------------------------------------------------------------------------
    def tag_id(self, name: str, *, create: bool) -> str | None:
        with self.lock:
            for tid, known in self.tags.items():
                if known.lower() == name.lower():
                    return tid
            if not create:
                return None
            tid = str(next(self._tag_ids))
            self.tags[tid] = name
            return tid

    def add_tag(self, contact: Contact, tag_id: str) -> str:
        with self.lock:
            row = contact.tags.get(tag_id)
            if row is None:
                row = contact.tags[tag_id] = str(next(self._row_ids))
            return row

    def remove_row(self, row_id: str) -> bool:
        with self.lock:
            for contact in self.contacts.values():
                for tid, row in list(contact.tags.items()):
                    if row == row_id:
                        del contact.tags[tid]
                        return True
            return False

    # -- JSON --------------------------------------------------------------------------------
    def contact_json(self, contact: Contact, base: str) -> dict[str, Any]:
        """A contact object as the API shows it; every id and number is a string [SPEC examples]."""
        return {
            "id": contact.id,
            "email": contact.email,
            "firstName": contact.first_name,
            "lastName": contact.last_name,
            "phone": contact.phone,
            "orgid": "0",
            "cdate": self.iso(contact.cdate),
            "udate": self.iso(contact.udate),
            "created_utc_timestamp": contact.cdate.strftime("%Y-%m-%d %H:%M:%S"),
            "updated_utc_timestamp": contact.udate.strftime("%Y-%m-%d %H:%M:%S"),
            "deleted": "0",
            "links": {
                "contactLists": f"{base}/contacts/{contact.id}/contactLists",
                "contactTags": f"{base}/contacts/{contact.id}/contactTags",
                "fieldValues": f"{base}/contacts/{contact.id}/fieldValues",
            },
        }

    def lists_json(self, contact: Contact) -> list[dict[str, Any]]:
        return [
            {
                "id": m.id,
                "contact": contact.id,
                "list": m.list_id,
                "status": m.status,
                "sdate": m.sdate,
                "udate": m.udate,
                "unsubreason": m.unsubreason,
                "sourceid": "0",
            }
            for m in contact.lists.values()
        ]

    def tags_json(self, contact: Contact) -> list[dict[str, Any]]:
        return [{"id": row, "contact": contact.id, "tag": tid} for tid, row in contact.tags.items()]

    def values_json(self, contact: Contact) -> list[dict[str, Any]]:
        return [
            {"id": f"{contact.id}-{fid}", "contact": contact.id, "field": fid, "value": value}
            for fid, value in contact.values.items()
        ]
