"""The state store: the one place that opens database transactions.

Every operation here is a short, bulk, Core-level statement set so that a 100,000-contact run stays
fast and flat in memory; callers stream contacts in keyset-paged batches. A cursor is saved in the
same transaction as the records it covers (STYLE rule 8).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.base import Cursor
from mappings.contact import OWN_OPT_IN_AT
from state.bulk import insert_rows, inserted_ids
from state.codec import dump_fields, dump_sources, load_fields, load_sources, now, utc
from state.db import StateError, open_engine, upgrade
from state.models import (
    ConflictRow,
    ConsentEventRow,
    ContactRow,
    CursorRow,
    InboxRow,
    LinkRow,
    MetaRow,
    PendingWriteRow,
    RunRow,
    SuppressionRow,
)
from state.runs import RUN_BEAT, RunBeats, close_stale_runs, process_id, stale

C = ContactRow.__table__  # type: ignore[attr-defined]
L = LinkRow.__table__  # type: ignore[attr-defined]
CUR = CursorRow.__table__  # type: ignore[attr-defined]
CONF = ConflictRow.__table__  # type: ignore[attr-defined]
LEDGER = ConsentEventRow.__table__  # type: ignore[attr-defined]
SUP = SuppressionRow.__table__  # type: ignore[attr-defined]
RUN = RunRow.__table__  # type: ignore[attr-defined]
PEND = PendingWriteRow.__table__  # type: ignore[attr-defined]
INBOX = InboxRow.__table__  # type: ignore[attr-defined]
META = MetaRow.__table__  # type: ignore[attr-defined]

EXCLUDED = "excluded"  # a pending_write status: never push this contact to this provider (deleted/merged there)
PUSH_SCANNED = "push_scanned:"  # meta key prefix: this provider's pushes ask dirty contacts only (see settle_pushes)
_IN_CHUNK = 500  # keep IN (...) lists well below every driver's parameter limit


def _agrees(observed: str, base: str | None) -> bool:
    """An observation (as JSON text) says what its link's base says: the same text, or the same values once
    blanks are left out (the reconciliation reads a blank and an absent field alike, and a provider answers with
    blanks where crmsync wrote nothing) and the own-create stamp the base may keep is set aside.
    """
    if base is None:
        return False
    if observed == base:
        return True
    return _filled(load_fields(observed)) == _filled(load_fields(base))


def _filled(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items()
            if k != OWN_OPT_IN_AT and not (v is None or v == "" or (isinstance(v, frozenset | list) and not v))}


def _touch() -> dict[str, Any]:
    """The values that mark a contact as one a provider may be behind on (``ContactRow.dirty``)."""
    return {"dirty": True, "touched": C.c.touched + 1}


def _joined(provider: str, link: Any, pend: Any) -> Any:
    """Contacts outer-joined to ``provider``'s link and pending write (``link``, ``pend``: aliases of theirs)."""
    return C.outerjoin(link, sa.and_(link.c.contact_id == C.c.id, link.c.provider == provider)).outerjoin(
        pend, sa.and_(pend.c.contact_id == C.c.id, pend.c.provider == provider))


def _needs_push(link: Any, pend: Any) -> sa.ColumnElement[bool]:
    """A contact the provider of ``link`` and ``pend`` (joined by ``_joined``) has not acknowledged at its
    current version, with nothing that stops a push there.
    """
    return sa.and_(
        C.c.version > 0,
        sa.or_(link.c.id.is_(None), link.c.acked_version < C.c.version),
        sa.or_(pend.c.id.is_(None),
               sa.and_(pend.c.status != EXCLUDED, sa.or_(pend.c.status == "retry", pend.c.version < C.c.version))),
    )


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pulled:
    """One mapped record of a pulled page."""

    remote_id: str
    email: str | None  # normalised; None for a deleted record
    fields: Mapping[str, Any]
    updated_at: dt.datetime | None
    merged_ids: tuple[str, ...] = ()
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """A person new to the hub, merged by the planner before it is stored."""

    fields: Mapping[str, Any]
    sources: Mapping[str, tuple[str, dt.datetime | None]]
    consent: str
    consent_at: dt.datetime | None
    consent_events: Sequence[tuple[str, dt.datetime | None, str]] = ()  # status, at, evidence


Settle = Callable[[Pulled, dt.datetime | None], Settled]  # (record, on the suppression list since) -> merged


@dataclass(slots=True)
class PullOutcome:
    stored: int = 0  # observations that differ from the base (real changes)
    unchanged: int = 0
    forgotten: int = 0  # records of erased people, dropped
    deleted: int = 0
    contact_ids: set[int] = field(default_factory=set)  # contacts with a stored change
    seen_ids: set[int] = field(default_factory=set)  # every live record's contact
    # people settled new into the hub by this page, as ``push_candidates`` would read them back for a provider
    # that is not their source (version 1, no link there, nothing pending): a migration pushes them as they are
    created: dict[int, PushCandidate] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkState:
    link_id: int
    provider: str
    remote_id: str | None
    base: dict[str, Any] | None
    observed: dict[str, Any] | None
    observed_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HubContact:
    id: int
    email: str
    fields: dict[str, Any]
    sources: dict[str, tuple[str, dt.datetime | None]]
    consent: str
    consent_at: dt.datetime | None
    version: int
    links: tuple[LinkState, ...]
    frozen: frozenset[str]  # fields with an open conflict
    suppressed_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PushCandidate:
    contact_id: int
    email: str
    fields: dict[str, Any]
    consent: str
    version: int
    remote_id: str | None
    linked: bool
    base: dict[str, Any] | None
    frozen: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOk:
    contact_id: int
    remote_id: str | None
    base: Mapping[str, Any]
    ack_hash: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteFailed:
    contact_id: int
    version: int
    status: str  # retry | rejected | suppressed
    error: str


class Store:
    """Transactions over the state database. ``dry_run`` keeps one transaction and rolls it back."""

    def __init__(
        self, url: str, *, hash_key: str | None = None, dry_run: bool = False, run_beat: dt.timedelta = RUN_BEAT
    ) -> None:
        self.engine = open_engine(url)
        try:
            upgrade(self.engine)
        except sa.exc.OperationalError as exc:
            raise StateError(f"state.url: cannot open the state database ({type(exc.orig).__name__})") from None
        self.dry_run = dry_run
        self._dry_conn: Connection | None = None
        if dry_run:
            self._dry_conn = self.engine.connect()
            self._dry_conn.begin()
        self._hash_key = (hash_key or self._install_key()).encode()
        self._keyed = hmac.new(self._hash_key, digestmod=hashlib.sha256)
        self._thread_locks: dict[str, threading.Lock] = {}
        # Who runs this store's runs (state/runs.py): this process, or the daemon replica and its lease.
        self.run_owner = process_id()
        self.run_lease: str | None = None
        self._run_beats = RunBeats(url, run_beat)

    def run_as(self, owner: str, *, lease: str) -> None:
        """Runs started from now on are a daemon replica's cycles, run under ``lease`` held as ``owner``."""
        self.run_owner, self.run_lease = owner, lease

    def close(self) -> None:
        self._run_beats.close()
        if self._dry_conn is not None:
            self._dry_conn.rollback()
            self._dry_conn.close()
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        if self._dry_conn is not None:
            yield self._dry_conn
            return
        with self.engine.begin() as conn:
            yield conn

    # -- keyed hash ------------------------------------------------------------------------------
    def _install_key(self) -> str:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(META.c.value).where(META.c.key == "hash_key")).first()
            if row is not None:
                return str(row[0])
            key = secrets.token_hex(32)
            with contextlib.suppress(sa.exc.IntegrityError):  # a concurrent first start won
                conn.execute(sa.insert(META).values(key="hash_key", value=key))
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(META.c.value).where(META.c.key == "hash_key")).scalar_one())

    # -- small shared values (tokens) and cross-process locks ------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.transaction() as conn:
            row = conn.execute(sa.select(META.c.value).where(META.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            if not conn.execute(sa.update(META).where(META.c.key == key).values(value=value)).rowcount:
                conn.execute(sa.insert(META).values(key=key, value=value))

    @contextlib.contextmanager
    def named_lock(self, name: str) -> Iterator[None]:
        """Held by one thread of one process at a time, across every process sharing this database."""
        with self._thread_locks.setdefault(name, threading.Lock()):
            if self.engine.dialect.name == "postgresql":
                lock_id = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
                with self.engine.connect() as conn:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
                    try:
                        yield
                    finally:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                        conn.commit()
                return
            path = self.engine.url.database
            if not path or path == ":memory:":
                yield
                return
            safe = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
            with open(f"{path}.{safe}.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def email_key(self, email: str) -> str:
        """A keyed hash of an address: what stays of a forgotten person, and what logs may show."""
        keyed = self._keyed.copy()  # the key's pads are computed once, in __init__
        keyed.update(email.encode())
        return keyed.hexdigest()[:32]

    # -- cursors ---------------------------------------------------------------------------------
    def load_cursor(self, provider: str, stream: str) -> tuple[Cursor, bool] | None:
        with self.transaction() as conn:
            row = conn.execute(
                sa.select(CUR.c.value, CUR.c.done).where(CUR.c.provider == provider, CUR.c.stream == stream)
            ).first()
        if row is None:
            return None
        return Cursor.from_json(row[0]), bool(row[1])

    def _save_cursor(self, conn: Connection, provider: str, stream: str, cursor: Cursor, *, done: bool) -> None:
        values = {"value": cursor.to_json(), "done": done, "updated_at": now()}
        updated = conn.execute(
            sa.update(CUR).where(CUR.c.provider == provider, CUR.c.stream == stream).values(**values)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(CUR).values(provider=provider, stream=stream, **values))

    def save_cursor(self, provider: str, stream: str, cursor: Cursor, *, done: bool = False) -> None:
        with self.transaction() as conn:
            self._save_cursor(conn, provider, stream, cursor, done=done)

    def drop_cursor(self, provider: str, stream: str) -> None:
        with self.transaction() as conn:
            conn.execute(sa.delete(CUR).where(CUR.c.provider == provider, CUR.c.stream == stream))

    # -- pull ------------------------------------------------------------------------------------
    def _forgotten_keys(self, conn: Connection, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(keys):
            rows = conn.execute(
                sa.select(SUP.c.email_key).where(SUP.c.email_key.in_(chunk), SUP.c.reason == "forgotten")
            )
            found.update(r[0] for r in rows)
        return found

    def store_page(
        self, provider: str, stream: str | None, records: Sequence[Pulled], cursor: Cursor | None, *,
        done: bool = False, settle: Settle | None = None,
    ) -> PullOutcome:
        """Store a page's changes as observations and move its cursor, in one transaction.

        A targeted fetch (webhook hints) passes no stream and no cursor: it stores records, moves nothing.
        With ``settle`` (a migration's single source), a person new to the hub is settled at once: the
        contact is stored merged, its link agreed, and nothing waits for reconciliation.
        """
        outcome = PullOutcome()
        with self.transaction() as conn:
            live = [r for r in records if not r.deleted and r.email]
            keys = {r.remote_id: self.email_key(r.email) for r in live if r.email}
            forgotten = self._forgotten_keys(conn, list(set(keys.values())))
            if forgotten:
                outcome.forgotten = sum(1 for r in live if keys[r.remote_id] in forgotten)
                live = [r for r in live if keys[r.remote_id] not in forgotten]
            self._store_deletions(conn, provider, [r for r in records if r.deleted], outcome)
            self._store_live(conn, provider, live, outcome, settle)
            if stream is not None and cursor is not None:
                self._save_cursor(conn, provider, stream, cursor, done=done)
        return outcome

    def _links_by(
        self, conn: Connection, provider: str, column: sa.Column[Any], values: Sequence[Any]
    ) -> dict[Any, sa.Row[Any]]:
        """Links of one provider whose ``column`` is one of ``values``, keyed by that value."""
        found: dict[Any, sa.Row[Any]] = {}
        for chunk in _chunks(values):
            rows = conn.execute(
                sa.select(L.c.id, L.c.remote_id, L.c.contact_id, L.c.base).where(
                    L.c.provider == provider, column.in_(chunk)
                )
            )
            found.update({getattr(r, column.name): r for r in rows})
        return found

    def _links_by_remote(self, conn: Connection, provider: str, ids: Sequence[str]) -> dict[str, sa.Row[Any]]:
        return self._links_by(conn, provider, L.c.remote_id, ids)

    def _contacts_by_email(self, conn: Connection, emails: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in _chunks(emails):
            rows = conn.execute(sa.select(C.c.id, C.c.email).where(C.c.email.in_(chunk)))
            found.update({r.email: r.id for r in rows})
        return found

    def _links_by_contact(self, conn: Connection, provider: str, contact_ids: Sequence[int]) -> dict[int, sa.Row[Any]]:
        return self._links_by(conn, provider, L.c.contact_id, contact_ids)

    def _store_live(
        self, conn: Connection, provider: str, records: Sequence[Pulled], outcome: PullOutcome,
        settle: Settle | None = None,
    ) -> None:
        if not records:
            return
        by_remote = self._links_by_remote(conn, provider, [r.remote_id for r in records])
        self._follow_merges(conn, provider, records, by_remote)
        unlinked = [r for r in records if r.remote_id not in by_remote]
        by_email = self._contacts_by_email(conn, sorted({str(r.email) for r in unlinked}))
        # new people in the order the source gave them: their ids keep it, so every push (a resumed one too)
        # writes a migrated file in its source's order
        new_emails = [e for e in dict.fromkeys(str(r.email) for r in unlinked) if e not in by_email]
        settled: dict[str, Settled] = {}
        if new_emails:
            if settle is not None:
                settled = self._settle_new(conn, unlinked, new_emails, settle)
            by_email.update(self._insert_contacts(conn, provider, new_emails, settled))
            outcome.created.update(
                (by_email[email], PushCandidate(
                    contact_id=by_email[email], email=email, fields=dict(result.fields), consent=result.consent,
                    version=1, remote_id=None, linked=False, base=None, frozen=frozenset()))
                for email, result in settled.items()
            )
        # a contact created just now has no link anywhere yet: only the others are looked up
        fresh = set(new_emails)
        unlinked_ids = sorted({by_email[str(r.email)] for r in unlinked if r.email not in fresh})
        existing_for_contact = self._links_by_contact(conn, provider, unlinked_ids)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        seen_contacts: set[int] = set()
        for record in records:
            link = by_remote.get(record.remote_id)
            if link is None:
                contact_id = by_email[str(record.email)]
                link = existing_for_contact.get(contact_id)  # the provider re-created it under a new id
            else:
                contact_id = link.contact_id
            outcome.seen_ids.add(contact_id)
            if contact_id in seen_contacts:
                continue  # a duplicate of one person within a page: the first record is taken
            seen_contacts.add(contact_id)
            observed = dump_fields(record.fields)
            if link is None and str(record.email) in settled:  # new, already merged: the link agrees at once
                outcome.stored += 1
                inserts.append({"provider": provider, "contact_id": contact_id, "base": observed, "ack_hash": None,
                                "acked_version": 0, "remote_id": record.remote_id, "observed": None,
                                "observed_at": None, "has_observation": False})
                continue
            if link is not None and _agrees(observed, link.base):
                outcome.unchanged += 1
                if link.remote_id != record.remote_id:
                    updates.append({"_id": link.id, "remote_id": record.remote_id, "observed": None,
                                    "observed_at": None, "has_observation": False})
                continue
            outcome.stored += 1
            outcome.contact_ids.add(contact_id)
            values = {"remote_id": record.remote_id, "observed": observed, "observed_at": record.updated_at,
                      "has_observation": True}
            if link is None:
                inserts.append({"provider": provider, "contact_id": contact_id, "base": None, "ack_hash": None,
                                "acked_version": 0, **values})
            else:
                updates.append({"_id": link.id, **values})
        if updates:
            conn.execute(
                sa.update(L).where(L.c.id == sa.bindparam("_id")).values(
                    remote_id=sa.bindparam("remote_id"), observed=sa.bindparam("observed"),
                    observed_at=sa.bindparam("observed_at"), has_observation=sa.bindparam("has_observation"),
                ),
                updates,
            )
        if inserts:
            insert_rows(conn, L, inserts)

    def _settle_new(
        self, conn: Connection, unlinked: Sequence[Pulled], new_emails: Sequence[str], settle: Settle
    ) -> dict[str, Settled]:
        first: dict[str, Pulled] = {}
        for record in unlinked:
            first.setdefault(str(record.email), record)
        keys = {email: self.email_key(email) for email in new_emails}
        since: dict[str, dt.datetime | None] = {}
        for chunk in _chunks(list(keys.values())):
            rows = conn.execute(sa.select(SUP.c.email_key, SUP.c.created_at).where(
                SUP.c.email_key.in_(chunk), SUP.c.reason == "unsubscribed"))
            since.update({r.email_key: utc(r.created_at) for r in rows})
        return {email: settle(first[email], since.get(keys[email])) for email in new_emails}

    def _insert_contacts(
        self, conn: Connection, provider: str, emails: Sequence[str], settled: Mapping[str, Settled]
    ) -> dict[str, int]:
        """Insert new hub contacts (settled ones with their consent events); their ids by email."""
        stamp = now()
        rows = []
        for email in emails:
            result = settled.get(email)
            if result is None:  # merged later, with everything else that observed it
                rows.append({"email": email, "fields": "{}", "sources": "{}", "consent": "unknown",
                             "consent_at": None, "version": 0, "updated_at": stamp, "dirty": True, "touched": 0})
            else:
                rows.append({"email": email, "fields": dump_fields(result.fields),
                             "sources": dump_sources(result.sources), "consent": result.consent,
                             "consent_at": result.consent_at, "version": 1, "updated_at": stamp, "dirty": True,
                             "touched": 0})
        insert_rows(conn, C, rows)
        ids = inserted_ids(conn, C, "email", emails) or self._contacts_by_email(conn, emails)
        with_events = [email for email, result in settled.items() if result.consent_events]
        if with_events:
            insert_rows(conn, LEDGER, [
                {"contact_id": ids[email], "email_key": self.email_key(email), "provider": provider,
                 "status": status, "occurred_at": at, "recorded_at": stamp, "evidence": evidence}
                for email in with_events for status, at, evidence in settled[email].consent_events
            ])
        return ids

    def _follow_merges(
        self, conn: Connection, provider: str, records: Sequence[Pulled], by_remote: dict[str, sa.Row[Any]]
    ) -> None:
        """A survivor record names the ids it absorbed: its link takes over, the others stop being pushed there."""
        for record in records:
            if not record.merged_ids:
                continue
            absorbed = self._links_by_remote(conn, provider, [i for i in record.merged_ids if i != record.remote_id])
            if not absorbed:
                continue
            survivor = by_remote.get(record.remote_id)
            if survivor is None:
                chosen = next((row for row in absorbed.values()), None)
                email_owner = self._contacts_by_email(conn, [str(record.email)]).get(str(record.email))
                for row in absorbed.values():
                    if row.contact_id == email_owner:
                        chosen = row
                if chosen is not None:
                    conn.execute(sa.update(L).where(L.c.id == chosen.id).values(remote_id=record.remote_id))
                    by_remote[record.remote_id] = conn.execute(
                        sa.select(L.c.id, L.c.remote_id, L.c.contact_id, L.c.base).where(L.c.id == chosen.id)
                    ).one()
            keep = by_remote.get(record.remote_id)
            for row in absorbed.values():
                if keep is not None and row.id == keep.id:
                    continue
                conn.execute(sa.delete(L).where(L.c.id == row.id))
                self._exclude(conn, provider, row.contact_id, "merged at the provider")

    def _exclude(self, conn: Connection, provider: str, contact_id: int, reason: str) -> None:
        conn.execute(sa.delete(PEND).where(PEND.c.provider == provider, PEND.c.contact_id == contact_id))
        conn.execute(sa.insert(PEND).values(provider=provider, contact_id=contact_id, version=0, status=EXCLUDED,
                                            attempts=0, last_error=reason, updated_at=now()))

    def _store_deletions(
        self, conn: Connection, provider: str, records: Sequence[Pulled], outcome: PullOutcome
    ) -> None:
        if not records:
            return
        links = self._links_by_remote(conn, provider, [r.remote_id for r in records])
        for link in links.values():
            conn.execute(sa.delete(L).where(L.c.id == link.id))
            self._exclude(conn, provider, link.contact_id, "deleted at the provider")
            outcome.deleted += 1

    # -- reconcile -------------------------------------------------------------------------------
    def observed_contact_ids(self, *, after: int = 0, limit: int = 1000) -> list[int]:
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(L.c.contact_id).where(L.c.has_observation == sa.true(), L.c.contact_id > after)
                .group_by(L.c.contact_id).order_by(L.c.contact_id).limit(limit)
            )
            return [r[0] for r in rows]

    def load_contacts(self, contact_ids: Sequence[int]) -> list[HubContact]:
        with self.transaction() as conn:
            return self._load_contacts(conn, contact_ids)

    def _load_contacts(self, conn: Connection, contact_ids: Sequence[int]) -> list[HubContact]:
        if not contact_ids:
            return []
        contacts = {r.id: r for r in conn.execute(sa.select(C).where(C.c.id.in_(contact_ids)))}
        links: dict[int, list[LinkState]] = {}
        for r in conn.execute(sa.select(L).where(L.c.contact_id.in_(contact_ids)).order_by(L.c.provider)):
            links.setdefault(r.contact_id, []).append(
                LinkState(link_id=r.id, provider=r.provider, remote_id=r.remote_id,
                          base=load_fields(r.base) if r.base is not None else None,
                          observed=load_fields(r.observed) if r.has_observation else None,
                          observed_at=utc(r.observed_at))
            )
        frozen: dict[int, set[str]] = {}
        for r in conn.execute(sa.select(CONF.c.contact_id, CONF.c.field).where(
                CONF.c.contact_id.in_(contact_ids), CONF.c.status == "open")):
            frozen.setdefault(r.contact_id, set()).add(r.field)
        keys = {cid: self.email_key(row.email) for cid, row in contacts.items()}
        suppressed = {
            r.email_key: utc(r.created_at)
            for r in conn.execute(sa.select(SUP.c.email_key, SUP.c.created_at).where(
                SUP.c.email_key.in_(list(keys.values())), SUP.c.reason == "unsubscribed"))
        }
        return [
            HubContact(id=cid, email=row.email, fields=load_fields(row.fields), sources=load_sources(row.sources),
                       consent=row.consent, consent_at=utc(row.consent_at), version=row.version,
                       links=tuple(links.get(cid, ())), frozen=frozenset(frozen.get(cid, ())),
                       suppressed_at=suppressed.get(keys[cid]))
            for cid, row in ((cid, contacts[cid]) for cid in contact_ids if cid in contacts)
        ]

    def email_owner(self, email: str) -> int | None:
        with self.transaction() as conn:
            return self._contacts_by_email(conn, [email]).get(email)

    def save_merges(self, merges: Sequence[MergeWrite]) -> None:
        """Apply reconciled contacts: hub fields, consumed observations, conflicts and consent events."""
        stamp = now()
        contacts = [
            {"_id": m.contact_id, "_email": m.email, "_fields": dump_fields(m.fields),
             "_sources": dump_sources(m.sources), "_consent": m.consent, "_consent_at": m.consent_at}
            for m in merges if m.changed
        ]
        links = [{"_id": link_id, "_base": dump_fields(base)} for m in merges for link_id, base in m.bases.items()]
        events = [
            {"contact_id": m.contact_id, "email_key": self.email_key(m.email), "provider": provider, "status": status,
             "occurred_at": at, "recorded_at": stamp, "evidence": evidence}
            for m in merges for provider, status, at, evidence in m.consent_events
        ]
        with self.transaction() as conn:
            if contacts:
                conn.execute(
                    sa.update(C).where(C.c.id == sa.bindparam("_id")).values(
                        email=sa.bindparam("_email"), fields=sa.bindparam("_fields"), sources=sa.bindparam("_sources"),
                        consent=sa.bindparam("_consent"), consent_at=sa.bindparam("_consent_at"),
                        version=C.c.version + 1, updated_at=stamp, **_touch()),
                    contacts,
                )
            if links:
                conn.execute(
                    sa.update(L).where(L.c.id == sa.bindparam("_id")).values(
                        base=sa.bindparam("_base"), observed=None, observed_at=None, has_observation=False),
                    links,
                )
            if events:
                insert_rows(conn, LEDGER, events)
            for m in merges:
                for conflict in m.conflicts:
                    self._record_conflict(conn, m.contact_id, conflict, stamp)

    def _record_conflict(self, conn: Connection, contact_id: int, conflict: ConflictWrite, stamp: dt.datetime) -> None:
        existing = conn.execute(sa.select(CONF.c.id).where(
            CONF.c.contact_id == contact_id, CONF.c.field == conflict.field, CONF.c.status == "open")).first()
        if existing is not None:
            conn.execute(sa.update(CONF).where(CONF.c.id == existing[0]).values(candidates=conflict.candidates))
            return
        conn.execute(sa.insert(CONF).values(
            contact_id=contact_id, field=conflict.field, candidates=conflict.candidates,
            status="open" if conflict.winner is None else "settled", resolution=conflict.winner, created_at=stamp,
            resolved_at=None if conflict.winner is None else stamp))

    # -- push ------------------------------------------------------------------------------------
    def push_candidates(
        self, provider: str, *, after: int = 0, limit: int = 500, only: Sequence[int] | None = None,
        linked_to: str | None = None, dirty_only: bool = False,
    ) -> list[PushCandidate]:
        """Contacts this provider has not acknowledged at their current version, by contact id.

        ``dirty_only``: among dirty contacts only, which is all of them once ``settle_pushes`` has counted this
        provider as scanned (``push_scanned``).
        """
        link, pend = L.alias("target"), PEND.alias("pend")
        query = (
            sa.select(C.c.id, C.c.email, C.c.fields, C.c.consent, C.c.version, link.c.remote_id, link.c.base,
                      link.c.id.label("link_id"))
            .select_from(_joined(provider, link, pend))
            .where(C.c.id > after, _needs_push(link, pend))
            .order_by(C.c.id).limit(limit)
        )
        if dirty_only:
            query = query.where(C.c.dirty == sa.true())
        if only is not None:
            query = query.where(C.c.id.in_(list(only)))
        if linked_to is not None:
            source = L.alias("source")
            query = query.where(sa.exists().where(source.c.contact_id == C.c.id, source.c.provider == linked_to))
        with self.transaction() as conn:
            rows = conn.execute(query).all()
            ids = [r.id for r in rows]
            frozen: dict[int, set[str]] = {}
            for chunk in _chunks(ids):
                for r in conn.execute(sa.select(CONF.c.contact_id, CONF.c.field).where(
                        CONF.c.contact_id.in_(chunk), CONF.c.status == "open")):
                    frozen.setdefault(r.contact_id, set()).add(r.field)
        return [
            PushCandidate(contact_id=r.id, email=r.email, fields=load_fields(r.fields), consent=r.consent,
                          version=r.version, remote_id=r.remote_id, linked=r.link_id is not None,
                          base=load_fields(r.base) if r.base is not None else None,
                          frozen=frozenset(frozen.get(r.id, ())))
            for r in rows
        ]

    def push_scanned(self, provider: str) -> bool:
        """Whether every contact ``provider`` may be behind on is dirty, so its pushes ask dirty ones only."""
        return self.get_meta(PUSH_SCANNED + provider) is not None

    def settle_pushes(self, providers: Sequence[str], *, scanned: Sequence[str] = ()) -> int:
        """After a cycle: clear ``dirty`` where none of ``providers`` (every provider of the config) is behind.

        ``scanned``: providers whose full push (every contact) just ended without a provider error; from now on
        their pushes ask dirty contacts only. A provider not in ``providers`` loses that mark: contacts it falls
        behind on while it is out of the config are cleared here, so when it comes back it asks every contact
        once again. A clear applies only where ``touched`` did not move since the contact was checked (another
        writer's change keeps it dirty). Returns how many were cleared.
        """
        keep = set(providers)
        cleared = 0
        with self.transaction() as conn:
            for name in scanned:
                if name in keep and not conn.execute(sa.update(META).where(META.c.key == PUSH_SCANNED + name)
                                                     .values(value="1")).rowcount:
                    conn.execute(sa.insert(META).values(key=PUSH_SCANNED + name, value="1"))
            marks = conn.execute(sa.select(META.c.key).where(META.c.key.startswith(PUSH_SCANNED))).scalars().all()
            gone = [k for k in marks if k.removeprefix(PUSH_SCANNED) not in keep]
            if gone:
                conn.execute(sa.delete(META).where(META.c.key.in_(gone)))
        after = 0
        while True:
            with self.transaction() as conn:
                dirty = conn.execute(
                    sa.select(C.c.id, C.c.touched).where(C.c.dirty == sa.true(), C.c.id > after)
                    .order_by(C.c.id).limit(_IN_CHUNK)
                ).all()
                if not dirty:
                    return cleared
                after = dirty[-1].id
                ids = [r.id for r in dirty]
                behind: set[int] = set()
                for name in keep:
                    link, pend = L.alias("target"), PEND.alias("pend")
                    behind.update(conn.execute(
                        sa.select(C.c.id).select_from(_joined(name, link, pend))
                        .where(C.c.id.in_(ids), _needs_push(link, pend))
                    ).scalars())
                settled = [{"_id": r.id, "_touched": r.touched} for r in dirty if r.id not in behind]
                if settled:
                    cleared += conn.execute(
                        sa.update(C).where(C.c.id == sa.bindparam("_id"), C.c.touched == sa.bindparam("_touched"))
                        .values(dirty=False),
                        settled,
                    ).rowcount

    def ack_unchanged(self, provider: str, acks: Sequence[tuple[int, int]]) -> None:
        """The provider already holds these contacts' projections: move their acknowledged version."""
        if not acks:
            return
        with self.transaction() as conn:
            conn.execute(
                sa.update(L).where(L.c.provider == provider, L.c.contact_id == sa.bindparam("_cid"))
                .values(acked_version=sa.bindparam("_ver")),
                [{"_cid": cid, "_ver": ver} for cid, ver in acks],
            )

    def record_writes(self, provider: str, oks: Sequence[WriteOk], failures: Sequence[WriteFailed]) -> None:
        with self.transaction() as conn:
            stamp = now()
            existing = self._links_by_contact(conn, provider, [o.contact_id for o in oks])
            taken = self._links_by_remote(conn, provider, [o.remote_id for o in oks if o.remote_id])
            updates: list[dict[str, Any]] = []
            inserts: list[dict[str, Any]] = []
            for ok in oks:
                holder = taken.get(ok.remote_id) if ok.remote_id else None
                if holder is not None and holder.contact_id != ok.contact_id:
                    # the provider answered with a record another hub contact holds (e.g. a 409 on an address
                    # that contact used to have): the link moves, the old holder is linked anew next cycle
                    conn.execute(sa.delete(L).where(L.c.id == holder.id))
                    conn.execute(sa.update(C).where(C.c.id == holder.contact_id).values(**_touch()))
                values = {"remote_id": ok.remote_id, "base": dump_fields(ok.base), "ack_hash": ok.ack_hash,
                          "acked_version": ok.version}
                link = existing.get(ok.contact_id)
                if link is None:
                    inserts.append({"provider": provider, "contact_id": ok.contact_id, "has_observation": False,
                                    **values})
                else:
                    updates.append({"_id": link.id, **{f"_{k}": v for k, v in values.items()}})
            if updates:
                conn.execute(
                    sa.update(L).where(L.c.id == sa.bindparam("_id")).values(
                        remote_id=sa.bindparam("_remote_id"), base=sa.bindparam("_base"),
                        ack_hash=sa.bindparam("_ack_hash"), acked_version=sa.bindparam("_acked_version")),
                    updates,
                )
            if inserts:
                insert_rows(conn, L, inserts)
            for chunk in _chunks([o.contact_id for o in oks]):
                conn.execute(sa.delete(PEND).where(PEND.c.provider == provider, PEND.c.contact_id.in_(chunk),
                                                   PEND.c.status != EXCLUDED))
            retried = [f.contact_id for f in failures if f.status == "retry"]
            for chunk in _chunks(retried):  # pushed again next cycle: a dirty contact is asked
                conn.execute(sa.update(C).where(C.c.id.in_(chunk)).values(**_touch()))
            for f in failures:
                updated = conn.execute(
                    sa.update(PEND).where(PEND.c.provider == provider, PEND.c.contact_id == f.contact_id)
                    .values(version=f.version, status=f.status, attempts=PEND.c.attempts + 1,
                            last_error=f.error[:300], updated_at=stamp)
                ).rowcount
                if not updated:
                    conn.execute(sa.insert(PEND).values(provider=provider, contact_id=f.contact_id, version=f.version,
                                                        status=f.status, attempts=1, last_error=f.error[:300],
                                                        updated_at=stamp))

    def record_suppressed(self, provider: str, contact_ids: Iterable[int], evidence: str) -> None:
        """A provider refused because the person is suppressed there: the hub takes it as an opt-out."""
        with self.transaction() as conn:
            stamp = now()
            for cid in contact_ids:
                row = conn.execute(sa.select(C.c.email, C.c.consent).where(C.c.id == cid)).first()
                if row is None:
                    continue
                conn.execute(sa.insert(LEDGER).values(contact_id=cid, email_key=self.email_key(row.email),
                                                      provider=provider, status="unsubscribed", occurred_at=stamp,
                                                      recorded_at=stamp, evidence=evidence[:200]))
                if row.consent not in ("unsubscribed", "cleaned"):
                    conn.execute(sa.update(C).where(C.c.id == cid).values(
                        consent="unsubscribed", consent_at=stamp, version=C.c.version + 1, updated_at=stamp,
                        **_touch()))

    # -- runs ------------------------------------------------------------------------------------
    def start_run(self, run_id: str, kind: str) -> None:
        """A run row owned by this process, its heartbeat renewed until ``finish_run``; runs whose process
        stopped beating are closed on the way (a SIGKILLed run would otherwise stay "running").
        """
        with self.transaction() as conn:
            close_stale_runs(conn)
            stamp = now()
            conn.execute(sa.insert(RUN).values(id=run_id, kind=kind, started_at=stamp, status="running",
                                               dry_run=self.dry_run, figures="{}", owner=self.run_owner,
                                               lease=self.run_lease, heartbeat_at=stamp))
        if not self.dry_run:  # a dry run's row is never committed: nothing to keep alive
            self._run_beats.add(run_id)

    def finish_run(self, run_id: str, status: str, figures: Mapping[str, Any]) -> None:
        self._run_beats.discard(run_id)
        with self.transaction() as conn:
            conn.execute(sa.update(RUN).where(RUN.c.id == run_id).values(
                finished_at=now(), status=status, figures=json.dumps(figures, default=str)))

    # -- commands --------------------------------------------------------------------------------
    def unsubscribe(self, email: str, *, evidence: str) -> int | None:
        """Put an address on the suppression list; an existing hub contact becomes unsubscribed."""
        key = self.email_key(email)
        with self.transaction() as conn:
            stamp = now()
            if conn.execute(sa.select(SUP.c.email_key).where(SUP.c.email_key == key)).first() is None:
                conn.execute(sa.insert(SUP).values(email_key=key, reason="unsubscribed", created_at=stamp))
            contact_id = self._contacts_by_email(conn, [email]).get(email)
            conn.execute(sa.insert(LEDGER).values(contact_id=contact_id, email_key=key, provider="crmsync",
                                                  status="unsubscribed", occurred_at=stamp, recorded_at=stamp,
                                                  evidence=evidence))
            if contact_id is not None:
                conn.execute(sa.update(C).where(C.c.id == contact_id).values(
                    consent="unsubscribed", consent_at=stamp, version=C.c.version + 1, updated_at=stamp, **_touch()))
            return contact_id

    def links_of(self, email: str) -> tuple[int | None, list[tuple[str, str | None]]]:
        with self.transaction() as conn:
            contact_id = self._contacts_by_email(conn, [email]).get(email)
            if contact_id is None:
                return None, []
            rows = conn.execute(sa.select(L.c.provider, L.c.remote_id).where(L.c.contact_id == contact_id))
            return contact_id, [(r.provider, r.remote_id) for r in rows]

    def forget(self, email: str) -> None:
        """Erase a person from the hub; only the keyed hash stays, so no later import brings them back."""
        key = self.email_key(email)
        with self.transaction() as conn:
            stamp = now()
            contact_id = self._contacts_by_email(conn, [email]).get(email)
            if contact_id is not None:
                for table in (L, CONF, PEND):
                    conn.execute(sa.delete(table).where(table.c.contact_id == contact_id))
                conn.execute(sa.update(LEDGER).where(LEDGER.c.contact_id == contact_id).values(contact_id=None))
                conn.execute(sa.delete(C).where(C.c.id == contact_id))
            conn.execute(sa.delete(SUP).where(SUP.c.email_key == key))
            conn.execute(sa.insert(SUP).values(email_key=key, reason="forgotten", created_at=stamp))
            conn.execute(sa.insert(LEDGER).values(contact_id=None, email_key=key, provider="crmsync",
                                                  status="forgotten", occurred_at=stamp, recorded_at=stamp,
                                                  evidence="crmsync forget"))
        if self.engine.dialect.name == "sqlite" and not self.dry_run:
            with self.engine.connect() as conn:  # old copies of the pages leave the write-ahead log too
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def open_conflicts(self) -> list[dict[str, Any]]:
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(CONF.c.id, CONF.c.field, CONF.c.candidates, CONF.c.created_at, C.c.email)
                .join(C, C.c.id == CONF.c.contact_id).where(CONF.c.status == "open").order_by(CONF.c.id)
            )
            return [{"id": r.id, "email": r.email, "field": r.field, "candidates": json.loads(r.candidates),
                     "created_at": utc(r.created_at)} for r in rows]

    def resolve_conflict(self, conflict_id: int, *, value: Any, resolution: str) -> None:
        with self.transaction() as conn:
            row = conn.execute(sa.select(CONF.c.contact_id, CONF.c.field, CONF.c.status).where(
                CONF.c.id == conflict_id)).first()
            if row is None or row.status != "open":
                raise StateError(f"conflict {conflict_id} is not open")
            contact = conn.execute(sa.select(C.c.fields, C.c.sources).where(C.c.id == row.contact_id)).one()
            fields = load_fields(contact.fields)
            if value is None or value == "":
                fields.pop(row.field, None)
            else:
                fields[row.field] = value
            sources = load_sources(contact.sources)
            stamp = now()
            sources[row.field] = ("crmsync", stamp)
            conn.execute(sa.update(C).where(C.c.id == row.contact_id).values(
                fields=dump_fields(fields), sources=dump_sources(sources), version=C.c.version + 1,
                updated_at=stamp, **_touch()))
            conn.execute(sa.update(CONF).where(CONF.c.id == conflict_id).values(
                status="resolved", resolution=resolution, resolved_at=stamp))

    def status(self) -> dict[str, Any]:
        with self.transaction() as conn:
            cursors = [
                {"provider": r.provider, "stream": r.stream, "done": bool(r.done), "updated_at": utc(r.updated_at),
                 "cursor": json.loads(r.value)}
                for r in conn.execute(sa.select(CUR).order_by(CUR.c.provider, CUR.c.stream))
            ]
            stamp = now()
            runs = [  # a run whose process stopped beating is shown as what it is, before anyone closes it
                {"id": r.id, "kind": r.kind,
                 "status": "interrupted" if r.status == "running" and stale(r.heartbeat_at, at=stamp) else r.status,
                 "dry_run": bool(r.dry_run),
                 "started_at": utc(r.started_at), "finished_at": utc(r.finished_at),
                 "figures": json.loads(r.figures)}
                for r in conn.execute(sa.select(RUN).order_by(RUN.c.started_at.desc()).limit(10))
            ]
            pending = {
                f"{r.provider}:{r.status}": r.n
                for r in conn.execute(sa.select(PEND.c.provider, PEND.c.status, sa.func.count().label("n"))
                                      .group_by(PEND.c.provider, PEND.c.status))
            }
            links = {r.provider: r.n for r in conn.execute(
                sa.select(L.c.provider, sa.func.count().label("n")).group_by(L.c.provider))}
            return {
                "contacts": conn.execute(sa.select(sa.func.count()).select_from(C)).scalar_one(),
                "links": links,
                "cursors": cursors,
                "runs": runs,
                "pending": pending,
                "open_conflicts": conn.execute(
                    sa.select(sa.func.count()).select_from(CONF).where(CONF.c.status == "open")).scalar_one(),
                "suppressed": conn.execute(sa.select(sa.func.count()).select_from(SUP)).scalar_one(),
                "inbox": {r.status: r.n for r in conn.execute(
                    sa.select(INBOX.c.status, sa.func.count().label("n")).group_by(INBOX.c.status))},
            }

    def pending_errors(self, provider: str) -> list[tuple[str, str, str]]:
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(C.c.email, PEND.c.status, PEND.c.last_error)
                .join(C, C.c.id == PEND.c.contact_id)
                .where(PEND.c.provider == provider, PEND.c.status != EXCLUDED)
            )
            return [(r.email, r.status, r.last_error) for r in rows]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictWrite:
    field: str
    candidates: str  # JSON
    winner: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MergeWrite:
    contact_id: int
    changed: bool
    email: str
    fields: Mapping[str, Any]
    sources: Mapping[str, tuple[str, dt.datetime | None]]
    consent: str
    consent_at: dt.datetime | None
    bases: Mapping[int, Mapping[str, Any]]  # link id -> the base it now agrees on
    conflicts: Sequence[ConflictWrite] = ()
    consent_events: Sequence[tuple[str, str, dt.datetime | None, str]] = ()  # provider, status, at, evidence
