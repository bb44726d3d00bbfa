"""The planner: pure decisions of one cycle, no I/O.

``merge_contact`` is the field-level three-way merge of every side that reported a change against
the hub, with sticky consent; ``project`` and ``plan_write`` decide what one provider should be sent.
The engine feeds them rows and applies what they return, so the promises (sticky consent, no echo,
blank is not a value, visible conflicts) are tested here without HTTP or a database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from mappings.contact import META_KEYS, OPT_IN_AT, OPT_OUT_AT, OWN_OPT_IN_AT, Consent
from state.codec import json_text

OPTED_OUT: Final = frozenset({Consent.UNSUBSCRIBED, Consent.CLEANED})
_NOT_SCALAR: Final = frozenset({"consent", "tags", *META_KEYS})  # merged by their own rules, or evidence only
HUB: Final = "hub"  # the candidate that stands for the hub's current value in a conflict
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Fields = dict[str, Any]


class ConflictPolicy(StrEnum):
    NEWEST = "newest"
    PRIORITY = "priority"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    """What one provider reports now, against the base it last agreed with the hub."""

    provider: str
    observed: Mapping[str, Any]  # canonical partial (only the fields the provider carries)
    base: Mapping[str, Any] | None  # None: never agreed (a new link)
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Hub:
    """The hub's view of one contact before the merge."""

    fields: Mapping[str, Any]  # canonical fields, consent excluded
    consent: Consent = Consent.UNKNOWN
    consent_at: dt.datetime | None = None
    sources: Mapping[str, tuple[str, dt.datetime | None]] = field(default_factory=dict)  # field -> who set it, when
    frozen: frozenset[str] = frozenset()  # fields with an open manual conflict
    suppressed_at: dt.datetime | None = None  # on the suppression list since (crmsync unsubscribe)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    source: str
    value: Any
    at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictFound:
    field: str
    candidates: tuple[Candidate, ...]
    winner: str | None  # None: manual, nothing overwritten


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentEvent:
    provider: str
    status: Consent
    at: dt.datetime | None
    explicit_opt_in: bool = False
    # the side's status is the one it last agreed with the hub, but it carries an explicit opt-in: weighed only to
    # lift an opt-out it is newer than (an opt-in crmsync's last write there may have hidden: the person opted out
    # and back in between two reads, or a write of the opt-out was lost with its answer), never recorded otherwise
    renewed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Merged:
    fields: Fields
    consent: Consent
    consent_at: dt.datetime | None
    sources: dict[str, tuple[str, dt.datetime | None]]
    conflicts: tuple[ConflictFound, ...]
    consent_events: tuple[ConsentEvent, ...]
    changed: bool


def is_blank(value: Any) -> bool:
    return value is None or value in ("", frozenset())


def _norm(value: Any) -> Any:
    return None if is_blank(value) else value


def _rank(candidate: Candidate, priority: Sequence[str]) -> tuple[int, str]:
    order = priority.index(candidate.source) if candidate.source in priority else len(priority)
    return (order, candidate.source)


def choose(candidates: Sequence[Candidate], *, policy: ConflictPolicy, priority: Sequence[str]) -> Candidate | None:
    """The winner under a policy; None for manual. Deterministic whatever the candidates' order."""
    if policy is ConflictPolicy.MANUAL:
        return None
    if policy is ConflictPolicy.NEWEST:
        newest = max((c.at or _EPOCH) for c in candidates)
        candidates = [c for c in candidates if (c.at or _EPOCH) == newest]
    return min(candidates, key=lambda c: _rank(c, priority))


def _merge_tags(hub: frozenset[str], sides: Sequence[Side]) -> frozenset[str]:
    added: set[str] = set()
    removed: set[str] = set()
    for side in sides:
        if "tags" not in side.observed:
            continue
        seen = frozenset(side.observed.get("tags") or ())
        base = frozenset((side.base or {}).get("tags") or ())
        added |= seen - base
        removed |= base - seen
    return frozenset((hub - removed) | added)  # an add and a remove of one tag in one cycle: the add wins


def _merge_field(
    name: str, hub: Hub, sides: Sequence[Side], *, policy: ConflictPolicy, priority: Sequence[str]
) -> tuple[Any, Candidate | None, ConflictFound | None]:
    """(new value, the candidate that set it, a conflict) for one scalar field."""
    current = _norm(hub.fields.get(name))
    proposals: list[Candidate] = []
    hub_moved = False
    for side in sides:
        if name not in side.observed:
            continue
        seen = _norm(side.observed[name])
        before = _norm(side.base.get(name)) if side.base is not None else None
        if seen == before:
            continue  # this side did not change it (and a blank on a new link is not a value)
        proposals.append(Candidate(source=side.provider, value=seen, at=side.updated_at))
        hub_moved = hub_moved or (current is not None and before != current)
    if not proposals:
        return current, None, None
    values = {p.value for p in proposals}
    if hub_moved and current not in values:
        who, when = hub.sources.get(name, (HUB, None))
        proposals.append(Candidate(source=who, value=current, at=when))
        values.add(current)
    if len(values) == 1:
        winner = min(proposals, key=lambda c: _rank(c, priority))
        return winner.value, winner, None
    candidates = tuple(sorted(proposals, key=lambda c: (c.source, repr(c.value))))
    if name in hub.frozen or policy is ConflictPolicy.MANUAL:
        return current, None, ConflictFound(field=name, candidates=candidates, winner=None)
    chosen = choose(candidates, policy=policy, priority=priority)
    if chosen is None:  # pragma: no cover - MANUAL returned above
        return current, None, ConflictFound(field=name, candidates=candidates, winner=None)
    return chosen.value, chosen, ConflictFound(field=name, candidates=candidates, winner=chosen.source)


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def _explicit_opt_in_at(side: Side) -> dt.datetime | None:
    """When a subscribed side's person confirmed the opt-in, if its provider records it.

    Not the stamp a provider set on crmsync's own create (its base keeps that one): nobody confirmed anything then.
    """
    if side.observed.get("consent") != Consent.SUBSCRIBED:
        return None  # an unsubscribed member keeps the time of the opt-in it withdrew: no evidence of when it did
    at = _parse_time(side.observed.get(OPT_IN_AT))
    if at is not None and side.base is not None and at == _parse_time(side.base.get(OWN_OPT_IN_AT)):
        return None
    return at


def consent_events(sides: Sequence[Side]) -> tuple[ConsentEvent, ...]:
    """Each side's consent change against its base, timed by the explicit opt-in a subscribed side carries or the
    opt-out time an opted-out one does (else by the record's last change); a side still at its base status with an
    explicit opt-in gives a ``renewed`` one.
    """
    events = []
    for side in sides:
        seen = side.observed.get("consent")
        if seen is None or seen == Consent.UNKNOWN:
            continue
        opt_in_at = _explicit_opt_in_at(side)
        opt_out_at = _parse_time(side.observed.get(OPT_OUT_AT)) if seen in OPTED_OUT else None
        renewed = side.base is not None and seen == side.base.get("consent")
        if renewed and opt_in_at is None:
            continue
        events.append(
            ConsentEvent(
                provider=side.provider, status=Consent(seen), at=opt_in_at or opt_out_at or side.updated_at,
                explicit_opt_in=opt_in_at is not None, renewed=renewed,
            )
        )
    return tuple(sorted(events, key=lambda e: (e.provider, e.status, e.renewed)))


def next_base(
    agreed: Mapping[str, Any], previous: Mapping[str, Any] | None, *, opt_in_stamp: str | None = None
) -> Mapping[str, Any]:
    """The merge base a link keeps after agreeing on ``agreed``: it remembers the opt-in stamp crmsync's own create
    set there (``opt_in_stamp`` of this write, else the one the previous base kept), which ``consent_events`` never
    takes for an opt-in, however often the base is replaced.
    """
    stamp = opt_in_stamp or (previous or {}).get(OWN_OPT_IN_AT)
    return {**agreed, OWN_OPT_IN_AT: stamp} if stamp else agreed


def as_created(projection: Mapping[str, Any], held: Mapping[str, Any]) -> Fields:
    """What a provider holds after crmsync created a record there: the projection, plus what the provider filled in
    of its own (Mailchimp's ``pending`` for an unknown consent, empty tags), never in place of what crmsync wrote:
    a value the provider changed (trimmed, cut short) is then still read back as its change, once.
    """
    return {**{k: v for k, v in held.items() if k not in projection}, **projection}


def as_updated(projection: Mapping[str, Any], previous: Mapping[str, Any] | None) -> Fields:
    """What a provider holds after crmsync updated a record there: the projection, with the consent evidence the
    record held before (its opt-in and opt-out times, as the previous base kept them). A write of fields, tags and
    an opt-out moves neither, so reading the update back is no change; a time that did move is read as news.
    """
    kept = {k: v for k, v in (previous or {}).items() if k in META_KEYS and k not in projection}
    return {**kept, **projection}


def untimed_opt_outs(sides: Sequence[Side]) -> tuple[str, ...]:
    """The providers whose new opt-out only its record's last change times, while an explicit opt-in of the same
    person is not newer than that change: only the opt-out's own time can say which came last.

    An edit after an opt-out moves the record's time, so an older opt-out would look newer than the opt-in and
    win. Elsewhere the record's time decides rightly: an opt-out is never later than its record's last change.
    The engine asks the providers that can tell (HubSpot: ``hs_email_optout``'s history) for these alone.
    """
    opt_ins = [at for s in sides if (at := _explicit_opt_in_at(s))]
    if not opt_ins:
        return ()
    newest_in = max(opt_ins)
    return tuple(sorted(
        s.provider for s in sides
        if s.observed.get("consent") in OPTED_OUT and OPT_OUT_AT not in s.observed
        and (s.base is None or s.base.get("consent") != s.observed.get("consent"))
        and (s.updated_at is None or s.updated_at >= newest_in)
    ))


def merge_consent(hub: Hub, events: Sequence[ConsentEvent]) -> tuple[Consent, dt.datetime | None]:
    """Sticky consent: an opt-out anywhere wins; only an explicit opt-in newer than it lifts it.

    Newer than every opt-out: the hub's and each one reported in this cycle (a person may opt out in a CRM and
    confirm a double opt-in at Mailchimp later, both before one sync). An opt-out of unknown time is never lifted
    here, nor one at the same moment as the opt-in.
    """
    consent, since = hub.consent, hub.consent_at
    if hub.suppressed_at is not None and consent not in OPTED_OUT:
        consent, since = Consent.UNSUBSCRIBED, hub.suppressed_at
    opt_ins = [e for e in events if e.explicit_opt_in and e.status == Consent.SUBSCRIBED and e.at is not None]
    newest_in = max(opt_ins, key=lambda e: (e.at or _EPOCH, e.provider), default=None)
    events = [e for e in events if not e.renewed]
    outs = [e for e in events if e.status in OPTED_OUT]
    if outs:
        latest = max(outs, key=lambda e: ((e.at or _EPOCH), e.status == Consent.CLEANED))
        out_at = latest.at or since
        if consent not in OPTED_OUT or (out_at and since and out_at > since):
            consent, since = latest.status, out_at
        if (newest_in is not None and newest_in.at is not None and since is not None
                and all(e.at is not None for e in outs) and newest_in.at > since):
            return Consent.SUBSCRIBED, newest_in.at
        return consent, since
    if consent in OPTED_OUT and newest_in is not None and newest_in.at is not None:
        lifted = since is None or newest_in.at > since
        return (Consent.SUBSCRIBED, newest_in.at) if lifted else (consent, since)
    # "pending" is a provider's own double opt-in in progress (Mailchimp puts new members there): it is
    # evidence of nothing yet, and spreading it would echo crmsync's own create back to every provider.
    ins = [e for e in events if e.status not in OPTED_OUT and e.status != Consent.PENDING]
    if not ins:
        return consent, since
    newest = max(ins, key=lambda e: ((e.at or _EPOCH), e.status == Consent.SUBSCRIBED, e.provider))
    if consent in OPTED_OUT:
        return consent, since  # no explicit opt-in: a plain "subscribed" never lifts an opt-out
    return newest.status, newest.at or since


def merge_contact(
    hub: Hub,
    sides: Sequence[Side],
    *,
    policy: ConflictPolicy,
    priority: Sequence[str],
    classify: Callable[[Mapping[str, Any]], Fields] | None = None,
) -> Merged:
    """Merge every side's change into the hub contact. The sides' order never changes the result."""
    sides = sorted(sides, key=lambda s: s.provider)
    fields: Fields = {k: v for k, v in hub.fields.items() if not is_blank(v)}
    sources = dict(hub.sources)
    conflicts: list[ConflictFound] = []
    names = {n for s in sides for n in s.observed if n not in _NOT_SCALAR}
    for name in sorted(names):
        value, winner, conflict = _merge_field(name, hub, sides, policy=policy, priority=priority)
        if conflict is not None:
            conflicts.append(conflict)
        if winner is not None and winner.value != _norm(hub.fields.get(name)):
            sources[name] = (winner.source, winner.at)
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    tags = _merge_tags(frozenset(hub.fields.get("tags") or ()), sides)
    if tags:
        fields["tags"] = tags
    else:
        fields.pop("tags", None)
    if classify is not None:
        fields = {k: v for k, v in classify(fields).items() if not is_blank(v)}
    events = consent_events(sides)
    consent, consent_at = merge_consent(hub, events)
    if not (consent == Consent.SUBSCRIBED and consent != hub.consent):  # a renewed opt-in is news when it lifted
        events = tuple(e for e in events if not e.renewed)
    before = {k: v for k, v in hub.fields.items() if not is_blank(v)}
    changed = fields != before or consent != hub.consent or consent_at != hub.consent_at
    return Merged(
        fields=fields,
        consent=consent,
        consent_at=consent_at,
        sources=sources,
        conflicts=tuple(conflicts),
        consent_events=events,
        changed=changed,
    )


_EMPTY_HUB: Final = Hub(fields={})


def merge_new(
    side: Side,
    *,
    suppressed_at: dt.datetime | None = None,
    classify: Callable[[Mapping[str, Any]], Fields] | None = None,
) -> Merged:
    """``merge_contact`` of a person only one side knows, against an empty hub: the same result.

    A migration settles every person new to the hub this way, so it skips the conflict machinery, which has
    nothing to weigh here: each filled field is taken from the side, blanks are not values, tags are the
    side's, and consent goes through the same sticky rules (the suppression list included).
    """
    fields: Fields = {}
    sources: dict[str, tuple[str, dt.datetime | None]] = {}
    origin = (side.provider, side.updated_at)
    for name, value in side.observed.items():
        if name in _NOT_SCALAR or is_blank(value):
            continue
        fields[name] = value
        sources[name] = origin
    tags = frozenset(side.observed.get("tags") or ())
    if tags:
        fields["tags"] = tags
    if classify is not None:
        fields = {k: v for k, v in classify(fields).items() if not is_blank(v)}
    hub = _EMPTY_HUB if suppressed_at is None else Hub(fields={}, suppressed_at=suppressed_at)
    events = consent_events((side,))
    consent, consent_at = merge_consent(hub, events)
    return Merged(
        fields=fields,
        consent=consent,
        consent_at=consent_at,
        sources=sources,
        conflicts=(),
        consent_events=events,
        changed=bool(fields) or consent != Consent.UNKNOWN or consent_at is not None,
    )


def project(
    fields: Mapping[str, Any],
    consent: Consent,
    *,
    carried: frozenset[str],
    base: Mapping[str, Any] | None,
    frozen: frozenset[str] = frozenset(),
    keeps_opt_outs: bool = False,
) -> Fields:
    """The hub contact as one provider should hold it.

    Blank values are left out, except where the provider holds a value the hub cleared (a user
    cleared it where it had been set); fields with an open conflict keep the provider's own value. A provider
    that keeps its own opt-outs (``keeps_opt_outs``: crmsync never resubscribes there) keeps one after an
    explicit opt-in lifted the hub's: projected as it will hold it, its read-back is no new opt-out.
    """
    base = base or {}
    out: Fields = {}
    for name in carried:
        if name.startswith("_"):
            continue  # meta keys (an opt-in time) are evidence read from a provider, never written back
        if name == "consent":
            kept = base.get(name) if keeps_opt_outs else None
            if kept in OPTED_OUT and consent not in OPTED_OUT:
                out[name] = kept
            elif consent != Consent.UNKNOWN:
                out[name] = consent
            elif base.get(name) is not None:
                out[name] = base[name]
            continue
        value = base.get(name) if name in frozen else fields.get(name)
        if not is_blank(value):
            out[name] = value
        elif not is_blank(base.get(name)):
            out[name] = None
    return out


def stable_hash(values: Mapping[str, Any]) -> str:
    """A hash of a projection that ignores blanks and the order of tags."""
    clean = {
        k: sorted(v) if isinstance(v, frozenset | set) else v
        for k, v in values.items()
        if not is_blank(v) and not k.startswith("_")
    }
    text = json_text(clean, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class WriteKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedWrite:
    contact_id: int
    kind: WriteKind
    projection: Fields
    unsubscribes: bool  # this write moves the provider's consent to unsubscribed


def plan_write(
    contact_id: int, projection: Mapping[str, Any], *, base: Mapping[str, Any] | None, linked: bool
) -> PlannedWrite | None:
    """None when the provider already holds the projection: no echo, no write."""
    if linked and base is not None and stable_hash(projection) == stable_hash(base):
        return None
    was_out = (base or {}).get("consent") in OPTED_OUT
    return PlannedWrite(
        contact_id=contact_id,
        kind=WriteKind.UPDATE if linked else WriteKind.CREATE,
        projection=dict(projection),
        unsubscribes=projection.get("consent") in OPTED_OUT and not was_out,
    )
