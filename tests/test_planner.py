"""The planner's promises, without HTTP or a database: sticky consent, no echo, blank, conflicts, order."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.planner import (
    ConflictPolicy,
    Hub,
    Side,
    as_created,
    as_updated,
    merge_contact,
    merge_new,
    next_base,
    plan_write,
    project,
    untimed_opt_outs,
)
from mappings.contact import OPT_IN_AT, OPT_OUT_AT, OWN_OPT_IN_AT, Consent

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PROVIDERS = ("crm", "mail", "zoho")
CARRIED = frozenset({"email", "first_name", "company", "tags", "consent"})

texts = st.one_of(st.none(), st.sampled_from(["", "Ann", "Anne", "Bob", "Acme", "Initech"]))
consents = st.sampled_from(list(Consent))
times = st.one_of(st.none(), st.integers(min_value=0, max_value=1000).map(lambda m: T0 + dt.timedelta(minutes=m)))


@st.composite
def fields(draw):
    out = {"email": "a@example.com"}
    for name in ("first_name", "company"):
        value = draw(texts)
        if value is not None or draw(st.booleans()):
            out[name] = value
    if draw(st.booleans()):
        out["tags"] = frozenset(draw(st.sets(st.sampled_from(["vip", "trial", "newsletter"]))))
    if draw(st.booleans()):
        out["consent"] = draw(consents)
    return out


@st.composite
def sides(draw):
    names = draw(st.lists(st.sampled_from(PROVIDERS), unique=True, min_size=1, max_size=3))
    return [
        Side(provider=n, observed=draw(fields()), base=draw(st.one_of(st.none(), fields())), updated_at=draw(times))
        for n in names
    ]


@st.composite
def hubs(draw):
    f = draw(fields())
    consent = f.pop("consent", Consent.UNKNOWN)
    return Hub(fields=f, consent=consent, consent_at=draw(times))


policies = st.sampled_from(list(ConflictPolicy))


@given(hub=hubs(), sides=sides(), policy=policies)
def test_consent_never_leaves_an_opt_out_without_an_explicit_newer_opt_in(hub, sides, policy):
    merged = merge_contact(hub, sides, policy=policy, priority=PROVIDERS)
    if hub.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED):
        assert merged.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED)  # no side carries an explicit opt-in here


@given(hub=hubs(), sides=sides(), policy=policies)
def test_an_opt_out_anywhere_wins(hub, sides, policy):
    merged = merge_contact(hub, sides, policy=policy, priority=PROVIDERS)
    reported_out = any(
        s.observed.get("consent") in (Consent.UNSUBSCRIBED, Consent.CLEANED)
        and (s.base is None or s.base.get("consent") != s.observed.get("consent"))
        for s in sides
    )
    if reported_out:
        assert merged.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED)


def test_an_explicit_opt_in_newer_than_the_opt_out_lifts_it():
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.UNSUBSCRIBED, consent_at=T0)
    later = (T0 + dt.timedelta(days=1)).isoformat()
    side = Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, "_opt_in_at": later},
                base={"consent": Consent.UNSUBSCRIBED}, updated_at=T0 + dt.timedelta(days=1))
    assert merge_contact(hub, [side], policy=ConflictPolicy.NEWEST, priority=()).consent == Consent.SUBSCRIBED
    older = Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, "_opt_in_at": (T0 - dt.timedelta(days=1)).isoformat()},
                 base={"consent": Consent.UNSUBSCRIBED})
    assert merge_contact(hub, [older], policy=ConflictPolicy.NEWEST, priority=()).consent == Consent.UNSUBSCRIBED
    implicit = Side(provider="crm", observed={"consent": Consent.SUBSCRIBED}, base={"consent": Consent.UNSUBSCRIBED},
                    updated_at=T0 + dt.timedelta(days=9))
    assert merge_contact(hub, [implicit], policy=ConflictPolicy.NEWEST, priority=()).consent == Consent.UNSUBSCRIBED


def test_an_explicit_opt_in_newer_than_an_opt_out_of_the_same_cycle_lifts_it():
    # an opt-out in a CRM, then a confirmed double opt-in at Mailchimp, both before one sync
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.SUBSCRIBED, consent_at=T0)
    crm = Side(provider="crm", observed={"consent": Consent.UNSUBSCRIBED}, base={"consent": Consent.SUBSCRIBED},
               updated_at=T0 + dt.timedelta(minutes=1))

    def mail(opted_in_after: int) -> Side:
        at = T0 + dt.timedelta(minutes=1, seconds=opted_in_after)
        return Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, OPT_IN_AT: at.isoformat()},
                    base={"consent": Consent.PENDING}, updated_at=at)

    merged = merge_contact(hub, [crm, mail(1)], policy=ConflictPolicy.NEWEST, priority=())
    assert (merged.consent, merged.consent_at) == (Consent.SUBSCRIBED, T0 + dt.timedelta(minutes=1, seconds=1))
    for not_newer in (0, -1):  # the same moment, or before the opt-out: the opt-out wins
        merged = merge_contact(hub, [crm, mail(not_newer)], policy=ConflictPolicy.NEWEST, priority=())
        assert merged.consent == Consent.UNSUBSCRIBED, not_newer
    unknown = Side(provider="zoho", observed={"consent": Consent.CLEANED}, base={"consent": Consent.SUBSCRIBED})
    merged = merge_contact(hub, [crm, mail(1), unknown], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED)  # an opt-out of unknown time: not older


def test_an_opted_out_member_keeps_an_old_opt_in_time_that_says_nothing_of_its_opt_out():
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.SUBSCRIBED, consent_at=T0)
    side = Side(provider="mail", observed={"consent": Consent.UNSUBSCRIBED, OPT_IN_AT: T0.isoformat()},
                base={"consent": Consent.SUBSCRIBED}, updated_at=T0 + dt.timedelta(days=1))
    merged = merge_contact(hub, [side], policy=ConflictPolicy.NEWEST, priority=())
    assert (merged.consent, merged.consent_at) == (Consent.UNSUBSCRIBED, T0 + dt.timedelta(days=1))
    assert [e.explicit_opt_in for e in merged.consent_events] == [False]


def test_a_renewed_opt_in_at_the_status_of_its_base_lifts_only_an_older_opt_out():
    # the side's base says subscribed (crmsync's write of the opt-out there lost its answer, or the person opted
    # out and back in between two reads) and it carries an opt-in confirmed after the hub's opt-out
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.UNSUBSCRIBED, consent_at=T0)

    def mail(opted_in: dt.datetime) -> Side:
        return Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, OPT_IN_AT: opted_in.isoformat()},
                    base={"consent": Consent.SUBSCRIBED}, updated_at=opted_in)

    merged = merge_contact(hub, [mail(T0 + dt.timedelta(hours=1))], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent == Consent.SUBSCRIBED and [e.explicit_opt_in for e in merged.consent_events] == [True]
    merged = merge_contact(hub, [mail(T0 - dt.timedelta(hours=1))], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent == Consent.UNSUBSCRIBED and merged.consent_events == () and not merged.changed
    subscribed = Hub(fields={"email": "a@example.com"}, consent=Consent.SUBSCRIBED, consent_at=T0)
    merged = merge_contact(subscribed, [mail(T0 + dt.timedelta(hours=1))], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent_events == () and not merged.changed  # nothing new to record: no ledger noise


def test_the_opt_in_stamp_of_crmsync_own_create_lifts_no_opt_out():
    # Mailchimp stamps timestamp_opt when crmsync creates a member subscribed: the person confirmed nothing then,
    # so an opt-out from before it, reaching crmsync later (a CRM connected since), still wins
    created = T0 + dt.timedelta(hours=1)
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.SUBSCRIBED, consent_at=T0)
    base = next_base({"consent": Consent.SUBSCRIBED}, None, opt_in_stamp=created.isoformat())
    mail = Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, OPT_IN_AT: created.isoformat()},
                base=base, updated_at=created + dt.timedelta(hours=1))
    crm = Side(provider="crm", observed={"consent": Consent.UNSUBSCRIBED, OPT_OUT_AT: T0.isoformat()}, base=None,
               updated_at=T0)
    merged = merge_contact(hub, [crm, mail], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent == Consent.UNSUBSCRIBED
    assert untimed_opt_outs([crm, mail]) == ()  # no opt-in competes: no opt-out time is worth asking for
    # the same stamp, had the person confirmed it, lifts the older opt-out
    confirmed = Side(provider="mail", observed=mail.observed, base={"consent": Consent.SUBSCRIBED},
                     updated_at=mail.updated_at)
    assert merge_contact(hub, [crm, confirmed], policy=ConflictPolicy.NEWEST, priority=()).consent \
        == Consent.SUBSCRIBED
    # a later real confirmation has its own time, and lifts it however old the kept stamp is
    again = Side(provider="mail", observed={"consent": Consent.SUBSCRIBED,
                                            OPT_IN_AT: (created + dt.timedelta(days=1)).isoformat()},
                 base=base, updated_at=created + dt.timedelta(days=1))
    assert merge_contact(hub, [crm, again], policy=ConflictPolicy.NEWEST, priority=()).consent == Consent.SUBSCRIBED


@st.composite
def own_creates_beside_others(draw):
    """A member crmsync created subscribed (its base keeps the create's stamp), read again beside other sides."""
    stamp = (T0 + dt.timedelta(minutes=draw(st.integers(0, 1000)))).isoformat()
    base = {**draw(fields()), "consent": Consent.SUBSCRIBED, OWN_OPT_IN_AT: stamp}
    own = Side(provider="mail", observed={**draw(fields()), "consent": Consent.SUBSCRIBED, OPT_IN_AT: stamp},
               base=base, updated_at=draw(times))
    return own, [s for s in draw(sides_with_opt_ins(opt_out_times=True)) if s.provider != "mail"]


@settings(max_examples=300)
@given(hub=hubs(), drawn=own_creates_beside_others(), policy=policies)
def test_the_stamp_of_an_own_create_is_evidence_of_nothing(hub, drawn, policy):
    own, others = drawn
    unstamped = Side(provider=own.provider, observed={k: v for k, v in own.observed.items() if k != OPT_IN_AT},
                     base=own.base, updated_at=own.updated_at)
    merged = merge_contact(hub, [own, *others], policy=policy, priority=PROVIDERS)
    assert merged == merge_contact(hub, [unstamped, *others], policy=policy, priority=PROVIDERS)
    assert untimed_opt_outs([own, *others]) == untimed_opt_outs([unstamped, *others])


def test_a_created_record_is_based_on_what_the_provider_filled_in_but_never_over_what_crmsync_wrote():
    projection = {"email": "a@example.com", "first_name": "Annabelle", "tags": frozenset({"vip"})}
    held = {"email": "a@example.com", "first_name": "Annab", "tags": frozenset({"vip"}), "consent": Consent.PENDING,
            "company": None, OPT_IN_AT: None}
    assert as_created(projection, held) == {**projection, "consent": Consent.PENDING, "company": None,
                                            OPT_IN_AT: None}
    # the provider cut the name short: the base keeps what crmsync wrote, so the read-back is that change, once


def test_a_link_keeps_the_stamp_of_its_own_create_across_every_new_base():
    first = next_base({"consent": Consent.SUBSCRIBED}, None, opt_in_stamp="2026-01-01T10:00:00+00:00")
    assert first == {"consent": Consent.SUBSCRIBED, OWN_OPT_IN_AT: "2026-01-01T10:00:00+00:00"}
    observed = {"consent": Consent.SUBSCRIBED, "first_name": "Ann", OPT_IN_AT: "2026-01-01T10:00:00+00:00"}
    assert next_base(observed, first) == {**observed, OWN_OPT_IN_AT: "2026-01-01T10:00:00+00:00"}
    assert next_base(observed, first, opt_in_stamp="2026-02-01T10:00:00+00:00")[OWN_OPT_IN_AT] \
        == "2026-02-01T10:00:00+00:00"  # created anew (deleted there, then written again)
    assert next_base(observed, {"consent": Consent.SUBSCRIBED}) == observed
    assert next_base(observed, None) == observed


def test_a_provider_that_keeps_its_opt_outs_is_projected_as_it_will_hold_them():
    fields = {"email": "a@example.com", "first_name": "Ann"}
    out = {"email": "a@example.com", "first_name": "Ann", "consent": Consent.UNSUBSCRIBED}
    # lifted by an explicit opt-in elsewhere: it keeps its own opt-out, so the read-back is no new one, no write
    projection = project(fields, Consent.SUBSCRIBED, carried=CARRIED, base=out, keeps_opt_outs=True)
    assert projection["consent"] == Consent.UNSUBSCRIBED and set(projection) <= CARRIED
    assert plan_write(1, projection, base=out, linked=True) is None
    assert project(fields, Consent.SUBSCRIBED, carried=CARRIED, base=out)["consent"] == Consent.SUBSCRIBED
    assert project(fields, Consent.SUBSCRIBED, carried=CARRIED, base=None, keeps_opt_outs=True)["consent"] \
        == Consent.SUBSCRIBED
    assert project(fields, Consent.CLEANED, carried=CARRIED, base=out, keeps_opt_outs=True)["consent"] \
        == Consent.CLEANED


@st.composite
def sides_with_opt_ins(draw, *, opt_out_times: bool = False):
    out = []
    for side in draw(sides()):
        opt_in = draw(times)
        if opt_in is not None:
            base = side.base
            if base is not None and draw(st.booleans()):  # the stamp of crmsync's own create there
                base = {**base, OWN_OPT_IN_AT: opt_in.isoformat()}
            side = Side(provider=side.provider, observed={**side.observed, OPT_IN_AT: opt_in.isoformat()},
                        base=base, updated_at=side.updated_at)
        if opt_out_times and side.updated_at is not None and draw(st.booleans()):
            side = _opted_out_before(side, draw(st.integers(0, 600)))
        out.append(side)
    return out


def _opted_out_before(side: Side, minutes: int) -> Side:
    """The side's opt-out time, ``minutes`` before its record's last change (an opt-out is never after it)."""
    assert side.updated_at is not None
    at = side.updated_at - dt.timedelta(minutes=minutes)
    return Side(provider=side.provider, observed={**side.observed, OPT_OUT_AT: at.isoformat()}, base=side.base,
                updated_at=side.updated_at)


def _opt_out_time(side: Side) -> dt.datetime | None:
    own = side.observed.get(OPT_OUT_AT)
    return dt.datetime.fromisoformat(own) if own else side.updated_at


def test_an_opt_out_is_timed_by_its_own_time_not_by_a_later_edit_of_its_record():
    hub = Hub(fields={"email": "a@example.com"}, consent=Consent.SUBSCRIBED, consent_at=T0)
    opted_in = T0 + dt.timedelta(minutes=2)
    mail = Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, OPT_IN_AT: opted_in.isoformat()},
                base={"consent": Consent.PENDING}, updated_at=opted_in)
    crm = Side(provider="crm", observed={"consent": Consent.UNSUBSCRIBED}, base={"consent": Consent.SUBSCRIBED},
               updated_at=T0 + dt.timedelta(minutes=3))  # renamed after the opt-in
    assert untimed_opt_outs([crm, mail]) == ("crm",)
    merged = merge_contact(hub, [crm, mail], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent == Consent.UNSUBSCRIBED  # untimed: the opt-out wins, erring towards it
    timed = _opted_out_before(crm, 2)  # it opted out at minute 1, before the opt-in
    assert untimed_opt_outs([timed, mail]) == ()
    merged = merge_contact(hub, [timed, mail], policy=ConflictPolicy.NEWEST, priority=())
    assert (merged.consent, merged.consent_at) == (Consent.SUBSCRIBED, opted_in)
    merged = merge_contact(hub, [_opted_out_before(crm, 0), mail], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.consent == Consent.UNSUBSCRIBED  # it did opt out after the opt-in
    # only a competing explicit opt-in, no newer than the record's change, makes the time worth asking
    assert untimed_opt_outs([crm]) == ()
    assert untimed_opt_outs([crm, Side(provider="mail", observed={"consent": Consent.SUBSCRIBED,
                                       OPT_IN_AT: (T0 + dt.timedelta(minutes=4)).isoformat()}, base=None)]) == ()
    assert untimed_opt_outs([Side(provider="crm", observed=crm.observed, base=crm.observed,
                                  updated_at=crm.updated_at), mail]) == ()  # no new opt-out


@st.composite
def opt_ins_against_opt_outs(draw):
    """An explicit opt-in at Mailchimp beside new opt-outs in the CRMs, each record changed about then."""
    opted_in = T0 + dt.timedelta(minutes=draw(st.integers(0, 1000)))
    out = [Side(provider="mail", observed={"consent": Consent.SUBSCRIBED, OPT_IN_AT: opted_in.isoformat()},
                base=draw(st.sampled_from([None, {"consent": Consent.PENDING}, {"consent": Consent.SUBSCRIBED}])),
                updated_at=opted_in)]
    for provider in draw(st.lists(st.sampled_from(["crm", "zoho"]), unique=True, min_size=1)):
        changed = opted_in + dt.timedelta(minutes=draw(st.integers(-300, 300)))
        out.append(Side(provider=provider, observed={"consent": draw(st.sampled_from([Consent.UNSUBSCRIBED,
                                                                                     Consent.CLEANED]))},
                        base=draw(st.sampled_from([None, {"consent": Consent.SUBSCRIBED}])), updated_at=changed))
    return out


@settings(max_examples=300)
@given(hub=hubs(), sides=st.one_of(opt_ins_against_opt_outs(), sides_with_opt_ins()),
       minutes=st.lists(st.integers(0, 600), min_size=3, max_size=3), policy=policies)
def test_the_opt_outs_left_untimed_are_those_whose_real_time_cannot_change_the_consent(hub, sides, minutes, policy):
    # the engine asks a provider for opt-out times only where untimed_opt_outs says so: any real time of the
    # others (never after their record's change) must give the consent their record's time gave
    asked = set(untimed_opt_outs(sides))
    timed = [_opted_out_before(s, m) if s.provider not in asked and s.updated_at is not None else s
             for s, m in zip(sides, minutes, strict=False)]
    untimed = merge_contact(hub, sides, policy=policy, priority=PROVIDERS)
    real = merge_contact(hub, timed, policy=policy, priority=PROVIDERS)
    assert (real.consent == Consent.SUBSCRIBED) == (untimed.consent == Consent.SUBSCRIBED)


@settings(max_examples=300)
@given(hub=hubs(), sides=sides_with_opt_ins(opt_out_times=True), policy=policies)
def test_an_opt_out_is_lifted_only_by_an_explicit_opt_in_newer_than_every_opt_out(hub, sides, policy):
    merged = merge_contact(hub, sides, policy=policy, priority=PROVIDERS)
    reported = [s for s in sides if s.observed.get("consent") in (Consent.UNSUBSCRIBED, Consent.CLEANED)
                and (s.base is None or s.base.get("consent") != s.observed.get("consent"))]
    if not (reported or hub.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED)):
        return
    if merged.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED):
        return
    assert merged.consent == Consent.SUBSCRIBED
    opt_ins = [dt.datetime.fromisoformat(s.observed[OPT_IN_AT]) for s in sides
               if s.observed.get("consent") == Consent.SUBSCRIBED and s.observed.get(OPT_IN_AT)
               and s.observed[OPT_IN_AT] != (s.base or {}).get(OWN_OPT_IN_AT)]
    assert merged.consent_at in opt_ins
    assert all((at := _opt_out_time(s)) is not None and merged.consent_at > at for s in reported)
    if hub.consent in (Consent.UNSUBSCRIBED, Consent.CLEANED) and hub.consent_at is not None:
        assert merged.consent_at > hub.consent_at


@settings(max_examples=200)
@given(hub=hubs(), sides=sides(), policy=policies)
def test_the_result_does_not_depend_on_the_order_providers_were_pulled(hub, sides, policy):
    results = [
        merge_contact(hub, list(order), policy=policy, priority=PROVIDERS)
        for order in itertools.permutations(sides)
    ]
    first = results[0]
    for other in results[1:]:
        assert (other.fields, other.consent, other.consent_at, other.conflicts) == (
            first.fields, first.consent, first.consent_at, first.conflicts)


@given(hub=hubs(), sides=sides(), policy=policies)
def test_a_cycle_after_a_cycle_plans_nothing(hub, sides, policy):
    merged = merge_contact(hub, sides, policy=policy, priority=PROVIDERS)
    frozen = frozenset(c.field for c in merged.conflicts if c.winner is None)
    # every provider that reported now holds what it was sent (its write succeeded) ...
    held = {}
    for side in sides:
        base = dict(side.observed)
        projection = project(merged.fields, merged.consent, carried=CARRIED, base=base, frozen=frozen)
        held[side.provider] = projection if plan_write(1, projection, base=base, linked=True) else base
    # ... so the next cycle, with nothing new, writes nothing
    again = Hub(fields=merged.fields, consent=merged.consent, consent_at=merged.consent_at, sources=merged.sources,
                frozen=frozen)
    quiet = [Side(provider=p, observed=h, base=h) for p, h in held.items()]
    merged2 = merge_contact(again, quiet, policy=policy, priority=PROVIDERS)
    assert not merged2.changed
    for provider, base in held.items():
        projection = project(merged2.fields, merged2.consent, carried=CARRIED, base=base, frozen=frozen)
        assert plan_write(1, projection, base=base, linked=True) is None, provider


def test_blank_never_beats_filled():
    hub = Hub(fields={"email": "a@example.com", "company": "Acme"})
    side = Side(provider="mail", observed={"email": "a@example.com", "company": None}, base=None)
    merged = merge_contact(hub, [side], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.fields["company"] == "Acme"
    # a projection never sends a blank where the provider holds nothing
    assert "company" not in project({"email": "a@example.com"}, Consent.UNKNOWN, carried=CARRIED, base={})


def test_a_user_clearing_a_field_clears_it_everywhere():
    hub = Hub(fields={"email": "a@example.com", "company": "Acme"})
    side = Side(provider="crm", observed={"email": "a@example.com", "company": None},
                base={"email": "a@example.com", "company": "Acme"})
    merged = merge_contact(hub, [side], policy=ConflictPolicy.NEWEST, priority=())
    assert "company" not in merged.fields
    other = project(merged.fields, merged.consent, carried=CARRIED, base={"email": "a@example.com", "company": "Acme"})
    assert other["company"] is None  # the other provider is told to clear it


def test_manual_conflict_overwrites_nothing():
    hub = Hub(fields={"email": "a@example.com", "company": "Acme"})
    a = Side(provider="crm", observed={"company": "Acme Corp"}, base={"company": "Acme"}, updated_at=T0)
    b = Side(provider="mail", observed={"company": "ACME Ltd"}, base={"company": "Acme"}, updated_at=T0)
    merged = merge_contact(hub, [a, b], policy=ConflictPolicy.MANUAL, priority=())
    assert merged.fields["company"] == "Acme"
    assert [c.field for c in merged.conflicts] == ["company"] and merged.conflicts[0].winner is None
    for side in (a, b):
        held = dict(side.observed)
        assert project(merged.fields, merged.consent, carried=CARRIED, base=held, frozen=frozenset({"company"}))[
            "company"] == held["company"]


def test_newest_and_priority_policies_pick_a_winner():
    hub = Hub(fields={"email": "a@example.com", "company": "Acme"})
    a = Side(provider="crm", observed={"company": "Acme Corp"}, base={"company": "Acme"}, updated_at=T0)
    b = Side(provider="mail", observed={"company": "ACME Ltd"}, base={"company": "Acme"},
             updated_at=T0 + dt.timedelta(hours=1))
    newest = merge_contact(hub, [a, b], policy=ConflictPolicy.NEWEST, priority=("crm", "mail"))
    assert newest.fields["company"] == "ACME Ltd"
    first = merge_contact(hub, [a, b], policy=ConflictPolicy.PRIORITY, priority=("crm", "mail"))
    assert first.fields["company"] == "Acme Corp"


def test_tags_merge_by_element():
    hub = Hub(fields={"email": "a@example.com", "tags": frozenset({"trial"})})
    a = Side(provider="crm", observed={"tags": frozenset({"trial", "vip"})}, base={"tags": frozenset({"trial"})})
    b = Side(provider="mail", observed={"tags": frozenset()}, base={"tags": frozenset({"trial"})})
    merged = merge_contact(hub, [a, b], policy=ConflictPolicy.NEWEST, priority=())
    assert merged.fields["tags"] == frozenset({"vip"})


def _vip_when_acme(fields):
    out = dict(fields)
    if out.get("company") == "Acme":
        out["tags"] = frozenset(out.get("tags") or ()) | {"vip"}
        out["lifecycle"] = "vip"
    return out


@settings(max_examples=300)
@given(observed=fields(), at=times, suppressed_at=times, opt_in=times, provider=st.sampled_from(PROVIDERS),
       classify=st.sampled_from([None, _vip_when_acme]))
def test_merge_new_is_merge_contact_against_an_empty_hub(observed, at, suppressed_at, opt_in, provider, classify):
    if opt_in is not None:
        observed = {**observed, OPT_IN_AT: opt_in.isoformat()}
    side = Side(provider=provider, observed=observed, base=None, updated_at=at)
    slow = merge_contact(Hub(fields={}, suppressed_at=suppressed_at), [side], policy=ConflictPolicy.MANUAL,
                         priority=PROVIDERS, classify=classify)
    assert merge_new(side, suppressed_at=suppressed_at, classify=classify) == slow


def test_an_update_keeps_the_consent_evidence_the_record_held():
    previous = {"email": "a@example.com", "first_name": "Old", "phone": None, OPT_IN_AT: "2026-01-02T03:04:05+00:00",
                OPT_OUT_AT: "2025-01-01T00:00:00+00:00", OWN_OPT_IN_AT: "2024-01-01T00:00:00+00:00"}
    projection = {"email": "a@example.com", "first_name": "New", "consent": "subscribed"}
    agreed = as_updated(projection, previous)
    # the write moved the fields it sent; the opt-in and opt-out times stay as the record held them
    assert agreed == {**projection, OPT_IN_AT: "2026-01-02T03:04:05+00:00", OPT_OUT_AT: "2025-01-01T00:00:00+00:00"}
    assert as_updated(projection, None) == projection
    assert as_updated({**projection, OPT_IN_AT: "x"}, previous)[OPT_IN_AT] == "x"
