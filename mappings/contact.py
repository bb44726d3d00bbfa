"""The canonical contact: the one shape every provider maps to and from.

Inside the engine a contact travels as a flat ``dict`` of canonical field name to value (``Fields``):
scalars are ``str | None``, ``tags`` is a ``frozenset[str]``, ``consent`` a ``Consent`` value, and custom
fields are ``custom.<name>`` keys. A key that is absent means "this source says nothing about it";
``None`` means "known to be blank".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class Consent(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"
    CLEANED = "cleaned"
    UNKNOWN = "unknown"


class Lifecycle(StrEnum):
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    VIP = "vip"
    OTHER = "other"


SCALAR_FIELDS: Final = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "country",
    "region",
    "city",
    "industry",
    "lifecycle",
)
CUSTOM_PREFIX: Final = "custom."
OPT_IN_AT: Final = "_opt_in_at"  # meta key: ISO time of an explicit (confirmed) opt-in, when a source records one
OPT_OUT_AT: Final = "_opt_out_at"  # meta key: ISO time of the opt-out itself, when a source records one
META_KEYS: Final = frozenset((OPT_IN_AT, OPT_OUT_AT))  # read-only evidence of consent, never a field to merge
# Kept in a link's merge base only, never read from a provider: the opt-in time a provider stamped because crmsync
# itself created the person there as subscribed (Mailchimp's ``timestamp_opt``). The person confirmed nothing then.
OWN_OPT_IN_AT: Final = "_own_opt_in_at"

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    email: str  # identity: trimmed, lower-cased, IDNA domain
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None  # E.164; None means unknown, never "blank it elsewhere"
    company: str | None = None
    job_title: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    industry: str | None = None
    lifecycle: Lifecycle | None = None
    tags: frozenset[str] = frozenset()
    consent: Consent = Consent.UNKNOWN
    custom: Mapping[str, str] = field(default_factory=dict)

    def to_fields(self) -> Fields:
        out: Fields = {name: getattr(self, name) for name in SCALAR_FIELDS}
        if self.lifecycle is not None:
            out["lifecycle"] = str(self.lifecycle)
        out["tags"] = frozenset(self.tags)
        out["consent"] = self.consent
        for name, value in self.custom.items():
            out[CUSTOM_PREFIX + name] = value
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Contact:
        lifecycle = fields.get("lifecycle")
        return cls(
            **{name: fields.get(name) for name in SCALAR_FIELDS if name not in ("email", "lifecycle")},
            email=str(fields["email"]),
            lifecycle=Lifecycle(lifecycle) if lifecycle else None,
            tags=frozenset(fields.get("tags") or ()),
            consent=Consent(fields.get("consent") or Consent.UNKNOWN),
            custom={k[len(CUSTOM_PREFIX) :]: v for k, v in fields.items() if k.startswith(CUSTOM_PREFIX)},
        )
