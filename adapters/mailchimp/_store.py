"""The Mailchimp emulator's audience: members keyed by subscriber hash, with Mailchimp's consent rules.

Facts: /work/shared/providers/mailchimp.md. Errors are raised as ``Problem`` (RFC 7807 titles Mailchimp
uses); the HTTP layer in ``emulator.py`` turns them into ``application/problem+json`` answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

STATUSES: Final = frozenset({"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"})
WRITABLE_STATUSES: Final = STATUSES - {"archived"}  # writes accept all but archived [SPEC]
OPTED_OUT: Final = frozenset({"unsubscribed", "cleaned"})
DEFAULT_MERGE_FIELDS: Final = ("FNAME", "LNAME", "ADDRESS", "PHONE", "COMPANY")
ADDRESS_KEYS: Final = ("addr1", "addr2", "city", "state", "zip", "country")

# A member's keys in the API reference (ListsMembersMembers), including those this emulator never fills:
# ``fields`` may name any of them, and nothing else.
MEMBER_KEYS: Final = frozenset(
    {
        "_links",
        "consents_to_one_to_one_messaging",
        "contact_id",
        "email_address",
        "email_client",
        "email_type",
        "full_name",
        "id",
        "interests",
        "ip_opt",
        "ip_signup",
        "language",
        "last_changed",
        "last_note",
        "list_id",
        "location",
        "marketing_permissions",
        "member_rating",
        "merge_fields",
        "sms_phone_number",
        "sms_subscription_last_updated",
        "sms_subscription_status",
        "source",
        "stats",
        "status",
        "tags",
        "tags_count",
        "timestamp_opt",
        "timestamp_signup",
        "unique_email_id",
        "unsubscribe_reason",
        "vip",
        "web_id",
    }
)
MEMBER_TAGS_SHOWN: Final = 50  # a member's ``tags`` lists at most 50; ``tags_count`` counts them all [SPEC]

COMPLIANCE_TITLE: Final = "Member In Compliance State"
FORGOTTEN_TITLE: Final = "Forgotten Email Not Subscribed"


_SUBSCRIBER_HASH: Final = re.compile(r"[0-9a-f]{32}")


def subscriber_hash(email: str) -> str:
    """MD5 of the trimmed, lower-cased address: Mailchimp's member id."""
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def iso(moment: dt.datetime) -> str:
    """Mailchimp's member timestamps: second precision with an explicit offset."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


class Problem(Exception):
    """A Mailchimp error answer: status, title and detail of the problem+json body."""

    def __init__(self, status: int, title: str, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors

    def body(self, instance: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def invalid(detail: str, *, field_name: str = "", message: str = "") -> Problem:
    errors = [{"field": field_name, "message": message}] if field_name else None
    return Problem(400, "Invalid Resource", detail, errors=errors)


def not_found() -> Problem:
    return Problem(404, "Resource Not Found", "The requested resource could not be found.")


def compliance(email: str) -> Problem:
    return Problem(
        400,
        COMPLIANCE_TITLE,
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
    )


def forgotten(email: str) -> Problem:
    return Problem(
        400,
        FORGOTTEN_TITLE,
        f"{email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list.",
    )


def check_email(email: Any) -> str:
    """Mailchimp refuses addresses that look invalid with 400 Invalid Resource."""
    if not isinstance(email, str) or not email.strip():
        raise invalid(
            "The resource submitted could not be validated.",
            field_name="email_address",
            message="This value should not be blank.",
        )
    text = email.strip()
    local, _, domain = text.rpartition("@")
    if not local or "." not in domain or " " in text or domain.startswith(".") or domain.endswith("."):
        raise invalid(f"{text} looks fake or invalid, please enter a real email address.")
    return text


@dataclass(slots=True)
class Member:
    """One audience member as the emulator stores it."""

    email: str
    status: str
    merge_fields: dict[str, Any]
    tags: list[str]
    last_changed: dt.datetime
    web_id: int
    unique_email_id: str
    contact_id: str
    timestamp_opt: str = ""
    timestamp_signup: str = ""
    ip_signup: str = ""
    interests: dict[str, bool] = field(default_factory=dict)
    compliance_review: bool = False  # flagged by Mailchimp: no API route can subscribe it
    vip: bool = False
    language: str = ""
    archived_from: str = ""  # the status before archiving: Mailchimp remembers an unsubscribe

    @property
    def hash(self) -> str:
        return subscriber_hash(self.email)


@dataclass(slots=True)
class Webhook:
    id: str
    url: str
    events: dict[str, bool]
    sources: dict[str, bool]
    signing_secret: str


class Audience:
    """One list's members, tags and webhooks; every method is thread-safe."""

    def __init__(self, *, list_id: str, clock: Callable[[], dt.datetime], merge_fields: Iterable[str] = ()) -> None:
        self.list_id = list_id
        self.name = "crmsync emulator audience"
        self.double_optin = True
        self.strict_merge_fields = False  # refuse merge tags the audience does not have
        self.clock = clock
        self.merge_tags = tuple(dict.fromkeys((*DEFAULT_MERGE_FIELDS, *merge_fields)))
        self.lock = threading.RLock()
        self.members: dict[str, Member] = {}  # hash -> member, insertion order = creation order
        self.forgotten: set[str] = set()  # hashes of permanently deleted addresses
        self.tag_ids: dict[str, int] = {}
        self.webhooks: dict[str, Webhook] = {}
        self._ids = itertools.count(1)

    # -- lookups ------------------------------------------------------------------------------
    def find(self, key: str) -> Member | None:
        """By subscriber hash, raw address or contact_id (member routes accept all three)."""
        with self.lock:
            if key in self.members:
                return self.members[key]
            if "@" in key:
                # The raw address is accepted as given: the API lower-cases it itself.
                return self.members.get(subscriber_hash(key))
            if _SUBSCRIBER_HASH.fullmatch(key):
                return None  # a hash of nobody here (not a contact_id): no scan of the whole audience
            return next((m for m in self.members.values() if m.contact_id == key), None)

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC).replace(microsecond=0)

    # -- writes -------------------------------------------------------------------------------
    def create(
        self,
        email: str,
        *,
        status: str,
        merge_fields: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        interests: Mapping[str, bool] | None = None,
    ) -> Member:
        with self.lock:
            h = subscriber_hash(email)
            if h in self.forgotten:
                raise forgotten(email)
            n = next(self._ids)
            now = self.now()
            member = Member(
                email=email.strip(),
                status=status,
                merge_fields=self._clean_merge_fields(merge_fields or {}, base=None),
                tags=[],
                last_changed=now,
                web_id=100_000 + n,
                unique_email_id=hashlib.sha1(f"u{n}{h}".encode(), usedforsecurity=False).hexdigest()[:10],
                contact_id=hashlib.sha1(f"c{n}{h}".encode(), usedforsecurity=False).hexdigest(),
                timestamp_signup=iso(now),
                timestamp_opt=iso(now) if status == "subscribed" else "",
                interests=dict(interests or {}),
            )
            self._add_tags(member, tags)
            self.members[h] = member
            return member

    def update(
        self,
        member: Member,
        *,
        email: str | None = None,
        status: str | None = None,
        merge_fields: Mapping[str, Any] | None = None,
        tags_add: Iterable[str] = (),
        tags_remove: Iterable[str] = (),
        replace_tags: Iterable[str] | None = None,
        interests: Mapping[str, bool] | None = None,
    ) -> bool:
        """Apply a change; bump last_changed only when something changed. Returns whether it did."""
        with self.lock:
            before = (member.email, member.status, dict(member.merge_fields), list(member.tags), dict(member.interests))
            if status is not None and status != member.status:
                self._check_transition(member, status)
                member.status = status
                if status == "subscribed":
                    member.timestamp_opt = iso(self.now())
            if merge_fields is not None:
                member.merge_fields = self._clean_merge_fields(merge_fields, base=member.merge_fields)
            if replace_tags is not None:
                member.tags = []
                self._add_tags(member, replace_tags)
            self._add_tags(member, tags_add)
            drop = set(tags_remove)
            member.tags = [t for t in member.tags if t not in drop]
            if interests:
                member.interests.update(interests)
            if email is not None and subscriber_hash(email) != member.hash:
                self._rekey(member, email)
            after = (member.email, member.status, member.merge_fields, member.tags, member.interests)
            changed = before != after
            if changed:
                member.last_changed = self.now()
            return changed

    def _check_transition(self, member: Member, status: str) -> None:
        """Unsubscribed, cleaned or flagged addresses cannot be (re)subscribed through the API."""
        if status == "subscribed" and (member.status in OPTED_OUT or member.compliance_review):
            raise compliance(member.email)
        if member.compliance_review and status in {"pending", "transactional"}:
            raise compliance(member.email)

    def _rekey(self, member: Member, email: str) -> None:
        new_hash = subscriber_hash(email)
        if new_hash in self.members and self.members[new_hash].status != "archived":
            raise invalid(f"{email} is already a list member.")
        del self.members[member.hash]
        member.email = email.strip()
        self.members[new_hash] = member

    def _add_tags(self, member: Member, names: Iterable[str]) -> None:
        for name in names:
            clean = str(name).strip()
            if not clean:
                continue
            self.tag_ids.setdefault(clean, 1000 + len(self.tag_ids))
            if clean not in member.tags:
                member.tags.append(clean)

    def _clean_merge_fields(self, values: Mapping[str, Any], *, base: Mapping[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = dict(base) if base is not None else dict.fromkeys(self.merge_tags, "")
        for tag, value in values.items():
            if tag not in self.merge_tags:
                if self.strict_merge_fields:
                    raise invalid("Your merge fields were invalid.", field_name=tag, message="Unknown merge field")
                continue  # ignored by default; whether Mailchimp refuses them is unconfirmed
            out[tag] = self._merge_value(tag, value)
        return out

    @staticmethod
    def _merge_value(tag: str, value: Any) -> Any:
        if value is None:
            return ""
        if tag == "ADDRESS":
            if value == "":
                return ""
            if not isinstance(value, Mapping):
                raise invalid(
                    "Your merge fields were invalid.", field_name="ADDRESS", message="Please enter a complete address"
                )
            return {key: str(value.get(key) or "") for key in ADDRESS_KEYS}
        if isinstance(value, Mapping | list):
            raise invalid("Your merge fields were invalid.", field_name=tag, message="Please enter a value")
        return str(value)

    def archive(self, member: Member) -> None:
        with self.lock:
            if member.status != "archived":
                member.archived_from = member.status
                member.status = "archived"
                member.last_changed = self.now()

    def delete_permanent(self, member: Member) -> None:
        with self.lock:
            self.members.pop(member.hash, None)
            self.forgotten.add(member.hash)

    def tag_id(self, name: str) -> int:
        with self.lock:
            return self.tag_ids.setdefault(name, 1000 + len(self.tag_ids))

    def member_json(self, member: Member) -> dict[str, Any]:
        with self.lock:
            names = [f"{member.merge_fields.get('FNAME', '')} {member.merge_fields.get('LNAME', '')}".strip()]
            return {
                "id": member.hash,
                "email_address": member.email,
                "unique_email_id": member.unique_email_id,
                "contact_id": member.contact_id,
                "full_name": names[0],
                "web_id": member.web_id,
                "email_type": "html",
                "status": member.status,
                "consents_to_one_to_one_messaging": True,
                "merge_fields": {k: (dict(v) if isinstance(v, dict) else v) for k, v in member.merge_fields.items()},
                "interests": dict(member.interests),
                "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
                "ip_signup": member.ip_signup,
                "timestamp_signup": member.timestamp_signup,
                "ip_opt": "",
                "timestamp_opt": member.timestamp_opt,
                "member_rating": 2,
                "last_changed": iso(member.last_changed),
                "language": member.language,
                "vip": member.vip,
                "email_client": "",
                "location": {
                    "latitude": 0,
                    "longitude": 0,
                    "gmtoff": 0,
                    "dstoff": 0,
                    "country_code": "",
                    "timezone": "",
                },
                "source": "API - Generic",
                "tags_count": len(member.tags),
                # "Returns up to 50 tags applied to this member. To retrieve all tags see Member Tags" [SPEC]
                "tags": [{"id": self.tag_id(t), "name": t} for t in member.tags[:MEMBER_TAGS_SHOWN]],
                "list_id": self.list_id,
            }
