"""In-memory HubSpot portal for the emulator: contacts, merges, opt-outs, property rules.

Facts from /work/shared/providers/hubspot.md: property values are strings, ``lastmodifieddate`` is an
ISO string with milliseconds, merges mint a new survivor id (unless id preservation is on), old ids
answer with the survivor, gdpr-delete blocklists the address, ``hs_email_optout`` is read-only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

# https://knowledge.hubspot.com/properties/hubspots-default-contact-properties (names), plus crmsync's
# multi-checkbox `crmsync_tags` that a portal owner creates for segment tags.
WRITABLE: Final = frozenset(
    {
        "email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle", "country", "state",
        "city", "zip", "address", "industry", "lifecyclestage", "website", "hs_lead_status", "hs_language",
        "crmsync_tags", "crmsync_score",
    }
)  # fmt: skip
READ_ONLY: Final = frozenset(
    {"hs_object_id", "createdate", "lastmodifieddate", "hs_email_optout", "hs_merged_object_ids",
     "hs_additional_emails"}
)  # fmt: skip
DEFAULT_PROPERTIES: Final = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
# lifecyclestage only moves forward through these; clear it ("") to move back [GUIDE].
LIFECYCLE_ORDER: Final = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
    "evangelist", "other",
)  # fmt: skip
SUBSCRIPTIONS: Final = (("1001", "Marketing Information"), ("1002", "Newsletter"), ("1003", "One to One"))
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def iso_ms(ms: int) -> str:
    """HubSpot's timestamp text: ``2024-05-01T10:00:01.120Z``."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ms(value: str) -> int:
    """A filter value: epoch milliseconds, or an ISO date-time."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


class PropertyError(Exception):
    """One property value HubSpot would refuse; ``code`` is HubSpot's error name."""

    def __init__(self, code: str, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.code,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }

    def body_message(self) -> str:
        return "Property values were not valid: " + json.dumps([self.as_dict()])


class Conflict(Exception):
    """An email that belongs to another contact: HubSpot's 409 ``Contact already exists``."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(f"Contact already exists. Existing ID: {existing_id}")
        self.existing_id = existing_id


@dataclass(slots=True)
class StoredContact:
    id: str
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    merged_ids: list[str] = field(default_factory=list)
    # each property changed since creation: its versions oldest first (value, ms, sourceType). A property
    # untouched since creation has no entry and one version, the creation's: 100k fresh contacts cost nothing
    history: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)

    def set(self, name: str, value: str, at_ms: int, source: str | None) -> None:
        """A property's new value ("" clears it); a change is kept in its history, as HubSpot keeps every one.
        ``source`` None: a value the contact is created with, its first version.
        """
        old = self.props.get(name, "")
        if value != old and source is not None:
            versions = self.history.get(name)
            if versions is None:
                versions = self.history[name] = [(old, self.created_ms, "API")] if old else []
            versions.append((value, at_ms, source))
        if value:
            self.props[name] = value
        else:
            self.props.pop(name, None)

    def versions(self, name: str) -> list[dict[str, Any]]:
        """``propertiesWithHistory`` of one property: newest first, the current value at the head."""
        versions = self.history.get(name)
        if versions is None:
            value = self.computed(name)
            versions = [(value, self.created_ms, "API")] if value else []
        return [{"value": v, "timestamp": iso_ms(ms), "sourceType": src} for v, ms, src in reversed(versions)]

    def view(self, wanted: tuple[str, ...] | None, with_history: tuple[str, ...] = ()) -> dict[str, Any]:
        """The record JSON: requested properties (None for empty ones), or the defaults."""
        names = wanted or DEFAULT_PROPERTIES
        props: dict[str, str | None] = {}
        for name in names:
            value = self.computed(name)
            if value is not None or name in WRITABLE or name in READ_ONLY or name.startswith("hs_email_optout_"):
                props[name] = value if value != "" else None
        if wanted:
            for name in ("createdate", "hs_object_id", "lastmodifieddate"):
                props[name] = self.computed(name)
        out: dict[str, Any] = {
            "id": self.id,
            "properties": props,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.updated_ms),
            "archived": self.archived,
        }
        if self.archived_ms is not None:
            out["archivedAt"] = iso_ms(self.archived_ms)
        if with_history:
            out["propertiesWithHistory"] = {name: self.versions(name) for name in with_history}
        return out

    def computed(self, name: str) -> str | None:
        if name == "hs_object_id":
            return self.id
        if name == "createdate":
            return iso_ms(self.created_ms)
        if name == "lastmodifieddate":
            return iso_ms(self.updated_ms)
        if name == "hs_merged_object_ids":
            return ";".join(self.merged_ids) or None
        return self.props.get(name)


class Portal:
    """The emulator's data; every public method takes the lock, so HTTP threads may share it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        """Forget every contact, alias, opt-out and blocklisted address (a fresh portal, same server)."""
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self.contacts: dict[str, StoredContact] = {}
        self.by_email: dict[str, str] = {}  # primary and additional emails -> live id
        self.aliases: dict[str, str] = {}  # merged-away id -> survivor id
        self.blocklist: set[str] = set()  # gdpr-deleted addresses
        self.subscriptions: dict[str, dict[str, str]] = {}  # email -> subscription id -> status
        self.id_preservation = False  # the merge-id-preservation beta is off by default
        self.offset_ms = 0
        self._ids = itertools.count(1001)
        self.newest_id = ""

    # -- time and ids ------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def new_id(self) -> str:
        self.newest_id = str(next(self._ids))
        return self.newest_id

    # -- lookups -----------------------------------------------------------------------------
    def resolve(self, object_id: str, id_property: str | None = None) -> StoredContact | None:
        """A live contact by id (following merges) or by email; None if absent or archived."""
        with self.lock:
            if id_property == "email":
                found = self.by_email.get(object_id.strip().lower())
            elif id_property in (None, "", "hs_object_id"):
                found = object_id
                while found in self.aliases:
                    found = self.aliases[found]
            else:
                return None
            contact = self.contacts.get(found) if found else None
            return contact if contact is not None and not contact.archived else None

    def live(self) -> list[StoredContact]:
        with self.lock:
            return [c for c in self.contacts.values() if not c.archived]

    # -- validation --------------------------------------------------------------------------
    @staticmethod
    def check_names(props: dict[str, Any]) -> None:
        """Unknown or read-only names refuse the whole call (400) [SPEC batch/update description]."""
        for name in props:
            if name in READ_ONLY or name.startswith("hs_email_optout_"):
                raise PropertyError(
                    "READ_ONLY_VALUE", name, f'"{name}" is a read only property; its value cannot be set.'
                )
            if name not in WRITABLE:
                raise PropertyError("PROPERTY_DOESNT_EXIST", name, f'Property "{name}" does not exist')

    def check_values(self, props: dict[str, Any]) -> None:
        """Values HubSpot refuses record by record (a 207 error in batch calls)."""
        for name, value in props.items():
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise PropertyError("INVALID_VALUE", name, f"{name} must be a string")
            text = "" if value is None else str(value)
            if name == "email" and text and not _EMAIL.fullmatch(text):
                raise PropertyError("INVALID_EMAIL", name, f"Email address {text} is invalid")
            if name == "email" and text.lower() in self.blocklist:
                raise PropertyError("INVALID_EMAIL", name, f"Email address {text} was GDPR deleted")
            if name == "lifecyclestage" and text and text not in LIFECYCLE_ORDER:
                raise PropertyError(
                    "INVALID_OPTION",
                    name,
                    f"{text} was not one of the allowed options: [{', '.join(LIFECYCLE_ORDER)}]",
                )

    # -- writes ------------------------------------------------------------------------------
    def create(self, props: dict[str, Any]) -> StoredContact:
        with self.lock:
            self.check_values(props)
            email = str(props.get("email") or "").strip().lower()
            if email and email in self.by_email:
                raise Conflict(self.by_email[email])
            now = self.now_ms()
            contact = StoredContact(id=self.new_id(), props={}, created_ms=now, updated_ms=now)
            self.contacts[contact.id] = contact
            self._apply(contact, props, now, None)
            contact.props.setdefault("hs_email_optout", "false")
            return contact

    def update(
        self, contact: StoredContact, props: dict[str, Any], *, at_ms: int | None = None, source: str = "API"
    ) -> None:
        with self.lock:
            self.check_values(props)
            email = str(props.get("email") or "").strip().lower()
            owner = self.by_email.get(email) if email else None
            if owner is not None and owner != contact.id:
                raise Conflict(owner)
            self._apply(contact, props, self.now_ms() if at_ms is None else at_ms, source)

    def _apply(self, contact: StoredContact, props: dict[str, Any], now: int, source: str | None) -> None:
        for name, raw in props.items():
            value = "" if raw is None else str(raw)
            if isinstance(raw, bool):
                value = str(raw).lower()
            if name == "lifecyclestage" and value and not self._moves_forward(contact, value):
                continue  # HubSpot ignores a backward lifecycle move unless it is cleared first
            if name == "email":
                old = contact.props.get("email", "").lower()
                if old and self.by_email.get(old) == contact.id:
                    del self.by_email[old]
                value = value.strip().lower()
                if value:
                    self.by_email[value] = contact.id
            contact.set(name, value, now, source)
        contact.updated_ms = now

    @staticmethod
    def _moves_forward(contact: StoredContact, value: str) -> bool:
        old = contact.props.get("lifecyclestage")
        return not old or LIFECYCLE_ORDER.index(value) >= LIFECYCLE_ORDER.index(old)

    def archive(self, contact: StoredContact) -> None:
        with self.lock:
            contact.archived = True
            contact.archived_ms = self.now_ms()
            for email in [e for e, i in self.by_email.items() if i == contact.id]:
                del self.by_email[email]

    def erase(self, object_id: str, id_property: str | None) -> None:
        """GDPR delete: the record is gone for good and its address is blocklisted."""
        with self.lock:
            contact = self.resolve(object_id, id_property)
            if contact is None and id_property == "email":
                self.blocklist.add(object_id.strip().lower())  # unknown addresses are blocklisted too
                return
            if contact is None:
                raise KeyError(object_id)
            email = contact.props.get("email", "").lower()
            self.archive(contact)
            del self.contacts[contact.id]
            for alias in [a for a, s in self.aliases.items() if s == contact.id]:
                del self.aliases[alias]
            if email:
                self.blocklist.add(email)
                self.subscriptions.pop(email, None)

    def merge(self, primary_id: str, other_id: str) -> StoredContact:
        """The survivor keeps the primary's values; it gets a new id unless id preservation is on."""
        with self.lock:
            primary, other = self.resolve(primary_id), self.resolve(other_id)
            if primary is None or other is None:
                raise KeyError(primary_id if primary is None else other_id)
            if primary.id == other.id:
                raise ValueError("cannot merge an object with itself")
            now = self.now_ms()
            props = {**other.props, **primary.props}
            extra = [e for e in (other.props.get("email"), props.get("hs_additional_emails")) if e]
            if extra:
                props["hs_additional_emails"] = ";".join(dict.fromkeys(";".join(extra).split(";")))
            if self.optout(other.props.get("email", "")):
                props["hs_email_optout"] = "true"  # an opt-out survives the merge
            merged = [*primary.merged_ids, *other.merged_ids, other.id]
            for old in (primary, other):
                self.archive(old)
                del self.contacts[old.id]
            survivor_id = primary.id if self.id_preservation else self.new_id()
            if not self.id_preservation:
                merged.append(primary.id)
            survivor = StoredContact(
                id=survivor_id, props=props, created_ms=min(primary.created_ms, other.created_ms), updated_ms=now
            )
            survivor.merged_ids = sorted(set(merged), key=int)
            survivor.history = {**other.history, **primary.history}  # the versions of the values it kept
            if primary.props.get("hs_email_optout") != props.get("hs_email_optout"):  # the other's opt-out
                survivor.history.pop("hs_email_optout", None)
                if "hs_email_optout" in other.history:
                    survivor.history["hs_email_optout"] = other.history["hs_email_optout"]
            self.contacts[survivor.id] = survivor
            for old_id in survivor.merged_ids:
                if old_id != survivor.id:
                    self.aliases[old_id] = survivor.id
            for alias, target in list(self.aliases.items()):
                if target in (primary.id, other.id) and alias != survivor.id:
                    self.aliases[alias] = survivor.id
            for email in [props.get("email", ""), *props.get("hs_additional_emails", "").split(";")]:
                if email:
                    self.by_email[email.lower()] = survivor.id
            return survivor

    # -- communication preferences ---------------------------------------------------------------
    def optout(self, email: str) -> bool:
        contact = self.resolve(email, "email")
        return contact is not None and contact.props.get("hs_email_optout") == "true"

    def statuses(self, email: str) -> dict[str, str]:
        with self.lock:
            key = email.strip().lower()
            own = self.subscriptions.get(key, {})
            opted_out = self.optout(key)
            return {
                sub_id: "NOT_SUBSCRIBED" if opted_out else own.get(sub_id, "NOT_SPECIFIED")
                for sub_id, _ in SUBSCRIPTIONS
            }

    def set_subscription(self, email: str, sub_id: str, status: str) -> None:
        with self.lock:
            key = email.strip().lower()
            self.subscriptions.setdefault(key, {})[sub_id] = status
            contact = self.resolve(key, "email")
            if contact is not None:
                now = self.now_ms()
                value = "true" if status == "NOT_SUBSCRIBED" else "false"
                contact.set(f"hs_email_optout_{sub_id}", value, now, "API")
                contact.updated_ms = now

    def unsubscribe_all(self, email: str, *, source: str = "API") -> None:
        with self.lock:
            key = email.strip().lower()
            for sub_id, _ in SUBSCRIPTIONS:
                self.subscriptions.setdefault(key, {})[sub_id] = "NOT_SUBSCRIBED"
            contact = self.resolve(key, "email")
            if contact is not None:
                now = self.now_ms()
                contact.set("hs_email_optout", "true", now, source)
                contact.updated_ms = now
