"""The engine: the one place that writes to providers and to the store.

A cycle pulls every provider (each page stored with its cursor in one transaction), reconciles the
touched contacts with the pure planner, then pushes each provider what it has not acknowledged,
in its biggest batches. A migration is the same machinery with one source and one target,
checkpointed per page so that a rerun resumes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from adapters.base import (
    Cursor,
    CursorError,
    Page,
    SupportsErase,
    SupportsFetchByIds,
    SupportsFinishWrites,
    SupportsOwnWrites,
    WriteRequest,
    WriteResult,
    WritesLocally,
)
from adapters.errors import UNREADABLE_ANSWER, ProviderError
from connector.ahead import OneAhead
from connector.opt_out_times import link_sides, with_opt_out_times
from connector.planner import (
    OPTED_OUT,
    ConflictPolicy,
    Hub,
    PlannedWrite,
    Side,
    WriteKind,
    as_created,
    as_updated,
    merge_contact,
    merge_new,
    next_base,
    plan_write,
    project,
    stable_hash,
)
from connector.progress import NoProgress, ProgressSink
from connector.report import RunReport
from connector.runtime import ProviderRuntime
from mappings.contact import OPT_IN_AT, Consent
from mappings.mapper import InvalidRecord
from state.store import (
    ConflictWrite,
    HubContact,
    MergeWrite,
    Pulled,
    PullOutcome,
    PushCandidate,
    Settled,
    Store,
    WriteFailed,
    WriteOk,
)

log = logging.getLogger("crmsync.engine")

SYNC_STREAM = "contacts"
_CANDIDATE_BATCH = 1000


class UsageError(ValueError):
    """A command that cannot run as asked (exit 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    policy: ConflictPolicy = ConflictPolicy.NEWEST
    priority: tuple[str, ...] = ()
    classify: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # every provider of the config, whichever this engine runs: a contact is settled (no push owed) only when
    # none of them is behind on it (Store.settle_pushes); empty: the engine's own providers
    providers: tuple[str, ...] = ()


def _safe(exc: BaseException) -> str:
    """An error for the report: provider errors carry redacted messages; others only their type."""
    if isinstance(exc, ProviderError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    return type(exc).__name__


class Engine:
    def __init__(
        self,
        store: Store,
        runtimes: Mapping[str, ProviderRuntime],
        settings: EngineSettings,
        *,
        progress: ProgressSink | None = None,
    ) -> None:
        self.store = store
        self.runtimes = dict(runtimes)
        self.settings = settings
        self.progress = progress or NoProgress()
        self._ahead: OneAhead | None = None  # a migration's target write in flight (see _writing_ahead)

    # -- pull ------------------------------------------------------------------------------------
    def _map_page(self, rt: ProviderRuntime, page: Page, report: RunReport) -> list[Pulled]:
        pulled: list[Pulled] = []
        for rejected in page.rejected:
            report.record_error(rt.name, rejected.message, email=rejected.email, where=rejected.where)
        for earlier in page.superseded:  # replaced by a later row of the same person: only its errors count
            try:
                rt.mapping.to_canonical(earlier.data)
            except InvalidRecord as exc:
                report.record_error(rt.name, str(exc), where=earlier.where or f"{rt.name}:{earlier.remote_id}")
        if rt.mapping.passthrough_custom:  # a file: say which columns it has that go nowhere (once a run)
            _note_unread_columns(rt, page, report)
        for record in page.records:
            if record.deleted:
                pulled.append(Pulled(remote_id=record.remote_id, email=None, fields={}, updated_at=record.updated_at,
                                     deleted=True))
                continue
            try:
                fields = rt.mapping.to_canonical(record.data)
            except InvalidRecord as exc:
                report.record_error(rt.name, str(exc), where=record.where or f"{rt.name}:{record.remote_id}")
                continue
            pulled.append(Pulled(remote_id=record.remote_id, email=str(fields["email"]), fields=fields,
                                 updated_at=record.updated_at, merged_ids=record.merged_ids))
        return pulled

    def _pull(
        self, rt: ProviderRuntime, stream: str, report: RunReport, cursor: Cursor,
        on_stored: Callable[[PullOutcome], None] | None = None, *, single_source: bool = False,
    ) -> Cursor:
        """Read from ``cursor`` to the end; each page is stored with its cursor. Returns the last cursor.

        ``single_source`` (a migration): people new to the hub are merged as they are stored.
        """
        figures = report.figures(rt.name)
        settle = partial(self._settle, rt.name) if single_source else None
        for page in rt.adapter.read_contacts(cursor):
            pulled = self._map_page(rt, page, report)
            outcome = self.store.store_page(rt.name, stream, pulled, page.next_cursor, settle=settle)
            figures.pulled += len(page.records)
            figures.deleted += outcome.deleted
            cursor = page.next_cursor
            self.progress.advance(f"pull {rt.name}", len(page.records))
            if on_stored is not None:
                on_stored(outcome)
        return cursor

    # -- reconcile -------------------------------------------------------------------------------
    def _merge_one(self, contact: HubContact, sides: Sequence[Side], report: RunReport) -> MergeWrite:
        hub = Hub(fields=contact.fields, consent=Consent(contact.consent), consent_at=contact.consent_at,
                  sources=contact.sources, frozen=contact.frozen, suppressed_at=contact.suppressed_at)
        merged = merge_contact(hub, sides, policy=self.settings.policy, priority=self.settings.priority,
                               classify=self.settings.classify)
        fields = dict(merged.fields)
        email = str(fields.get("email") or contact.email)
        if email != contact.email:
            owner = self.store.email_owner(email)
            if owner is not None and owner != contact.id:
                report.record_error(
                    ",".join(s.provider for s in sides), "address change refused: another contact has the new address",
                    email=contact.email)
                fields["email"] = email = contact.email
        report.conflicts += len(merged.conflicts)
        return MergeWrite(
            contact_id=contact.id, changed=merged.changed or email != contact.email, email=email, fields=fields,
            sources=merged.sources, consent=str(merged.consent), consent_at=merged.consent_at,
            bases={link.link_id: next_base(link.observed, link.base) for link in contact.links
                   if link.observed is not None},
            conflicts=[
                ConflictWrite(field=c.field, winner=c.winner, candidates=_candidates_json(c.candidates))
                for c in merged.conflicts
            ],
            consent_events=[(e.provider, str(e.status), e.at, "explicit opt-in" if e.explicit_opt_in else "synced")
                            for e in merged.consent_events],
        )

    def _settle(self, provider: str, record: Pulled, suppressed_at: dt.datetime | None) -> Settled:
        """A person only one source knows: the same merge as ``_merge_one``, against an empty hub."""
        side = Side(provider=provider, observed=record.fields, base=None, updated_at=record.updated_at)
        merged = merge_new(side, suppressed_at=suppressed_at, classify=self.settings.classify)
        return Settled(
            fields=merged.fields, sources=merged.sources, consent=str(merged.consent), consent_at=merged.consent_at,
            consent_events=[(str(e.status), e.at, "explicit opt-in" if e.explicit_opt_in else "synced")
                            for e in merged.consent_events],
        )

    def _reconcile_ids(self, ids: Sequence[int], report: RunReport) -> None:
        if ids:
            contacts = self.store.load_contacts(ids)
            sides = with_opt_out_times(contacts, [link_sides(c) for c in contacts], self.runtimes)
            self.store.save_merges([self._merge_one(c, s, report) for c, s in zip(contacts, sides, strict=True)])

    def _reconcile_all(self, report: RunReport) -> None:
        while ids := self.store.observed_contact_ids(limit=_CANDIDATE_BATCH):
            self._reconcile_ids(ids, report)

    # -- push ------------------------------------------------------------------------------------
    def _request(self, rt: ProviderRuntime, cand: PushCandidate, planned: PlannedWrite) -> WriteRequest:
        previous = (cand.base or {}).get("email")
        return WriteRequest(
            ref=str(cand.contact_id), remote_id=cand.remote_id, email=cand.email,
            previous_email=previous if previous and previous != cand.email else None,
            fields=rt.mapping.to_provider(planned.projection),
        )

    def _push(
        self, rt: ProviderRuntime, report: RunReport, *, only: Iterable[int] | None = None,
        linked_to: str | None = None, known: Sequence[PushCandidate] = (),
    ) -> None:
        """Push what ``rt`` has not acknowledged; ``known`` are candidates already in hand (a page's new people)."""
        if known:
            self._push_candidates(rt, report, known)
        only_ids = sorted(only) if only is not None else None
        if only_ids is not None and not only_ids:
            return
        if self._ahead is not None:  # a batch in flight is not acknowledged yet: settled before asking what to push
            self._ahead.settle()
        # a whole push asks the dirty contacts only, once this provider has been through every contact
        dirty_only = only_ids is None and linked_to is None and self.store.push_scanned(rt.name)
        after = 0
        while cands := self.store.push_candidates(rt.name, after=after, limit=_CANDIDATE_BATCH, only=only_ids,
                                                  linked_to=linked_to, dirty_only=dirty_only):
            after = cands[-1].contact_id
            self._push_candidates(rt, report, cands)

    def _push_candidates(self, rt: ProviderRuntime, report: RunReport, cands: Sequence[PushCandidate]) -> None:
        figures = report.figures(rt.name)
        acks: list[tuple[int, int]] = []
        writes: list[tuple[PushCandidate, PlannedWrite]] = []
        for cand in cands:
            carried = rt.carried
            if rt.mapping.passthrough_custom:  # files carry every custom.* field
                carried = carried | {k for k in (*cand.fields, *(cand.base or ())) if rt.mapping.carries(k)}
            projection = project(cand.fields | {"email": cand.email}, Consent(cand.consent), carried=carried,
                                 base=cand.base, frozen=cand.frozen, keeps_opt_outs=not rt.mapping.resubscribes)
            planned = plan_write(cand.contact_id, projection, base=cand.base, linked=cand.linked)
            if planned is None:
                acks.append((cand.contact_id, cand.version))
            else:
                writes.append((cand, planned))
        self.store.ack_unchanged(rt.name, acks)
        figures.unchanged += len(acks)
        for start in range(0, len(writes), max(1, rt.adapter.max_batch)):
            self._write_batch(rt, writes[start : start + rt.adapter.max_batch], report)

    def _write_batch(
        self, rt: ProviderRuntime, batch: Sequence[tuple[PushCandidate, PlannedWrite]], report: RunReport
    ) -> None:
        figures = report.figures(rt.name)
        if self.store.dry_run:
            for _, planned in batch:
                _count_write(figures, planned)
            return
        requests = [self._request(rt, cand, planned) for cand, planned in batch]
        if self._ahead is None:
            self._record_batch(rt, batch, report, rt.adapter.write_contacts(requests))
        else:
            self._ahead.submit(partial(rt.adapter.write_contacts, requests),
                               partial(self._record_batch, rt, batch, report))

    def _record_batch(
        self, rt: ProviderRuntime, batch: Sequence[tuple[PushCandidate, PlannedWrite]], report: RunReport,
        results: Sequence[WriteResult],
    ) -> None:
        figures = report.figures(rt.name)
        by_ref: dict[str, WriteResult] = {r.ref: r for r in results}
        oks: list[WriteOk] = []
        failures: list[WriteFailed] = []
        suppressed: list[int] = []
        for cand, planned in batch:
            result = by_ref.get(str(cand.contact_id))
            if result is not None and result.ok:
                _count_write(figures, planned)
                agreed = (as_updated(planned.projection, cand.base) if result.created is None
                          else self._created(rt, planned, result.created))
                # a record this write created: any opt-in time it holds is the create's own stamp (Mailchimp's)
                stamp = agreed.get(OPT_IN_AT) if result.created is not None else None
                oks.append(WriteOk(contact_id=cand.contact_id, remote_id=result.remote_id or cand.remote_id,
                                   base=next_base(agreed, cand.base, opt_in_stamp=stamp),
                                   ack_hash=stable_hash(planned.projection),
                                   version=cand.version))
                continue
            error = result.error if result is not None and result.error else "no result for this record"
            if result is not None and result.suppressed:
                # The provider keeps this person suppressed (compliance state, a forgotten or opted-out
                # address): recorded in the ledger and never retried, and not a failure of the run.
                suppressed.append(cand.contact_id)
                failures.append(WriteFailed(contact_id=cand.contact_id, version=cand.version, status="suppressed",
                                            error=error))
                continue
            figures.failed += 1
            status = "retry" if result is None or result.retryable else "rejected"
            failures.append(WriteFailed(contact_id=cand.contact_id, version=cand.version, status=status, error=error))
            report.record_error(rt.name, error, email=cand.email)
        self.store.record_writes(rt.name, oks, failures)
        if suppressed:
            self.store.record_suppressed(rt.name, suppressed, evidence=f"{rt.name} refused: suppressed there")
        self.progress.advance(f"push {rt.name}", len(batch))

    @staticmethod
    def _created(rt: ProviderRuntime, planned: PlannedWrite, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """The base of a record this write created, with what the provider filled in itself (see ``as_created``)."""
        try:  # only what the projection does not say: the rest is crmsync's own
            held = rt.mapping.to_canonical(record, skip=planned.projection)
        except (InvalidRecord, *UNREADABLE_ANSWER):  # an answer not shaped as a read: the projection alone
            return planned.projection
        return as_created(planned.projection, held)

    def _finish(self, rt: ProviderRuntime) -> None:
        if self.store.dry_run:
            return
        if isinstance(rt.adapter, SupportsFinishWrites):
            rt.adapter.finish_writes()
        if isinstance(rt.adapter, SupportsOwnWrites) and (cursor := rt.adapter.cursor_after_writes()) is not None:
            # past crmsync's own rows only (the adapter checked nobody else wrote since its read): stored
            # now, so the next cycle does not read the whole file back to find nothing but echoes
            self.store.save_cursor(rt.name, SYNC_STREAM, cursor)

    @contextlib.contextmanager
    def _writing_ahead(self, target: ProviderRuntime) -> Iterator[None]:
        """Within: a target batch is written while the engine goes on (the next page is read and stored).

        Each answer is recorded in this thread before the next batch goes out, before the store is asked
        what to push, and on the way out; a crash with a batch in flight is a crash during its call. A target
        that writes locally (a file) has no server to wait for: its batches stay in this thread.
        """
        if self.store.dry_run or isinstance(target.adapter, WritesLocally):
            yield
            return
        ahead = self._ahead = OneAhead("crmsync-write-ahead")
        failing = False
        try:
            yield
        except BaseException:
            failing = True
            raise
        finally:
            self._ahead = None
            ahead.close(failing=failing)

    # -- commands --------------------------------------------------------------------------------
    def _new_report(self, kind: str) -> RunReport:
        report = RunReport(run_id=str(uuid.uuid4()), kind=kind, dry_run=self.store.dry_run)
        self.store.start_run(report.run_id, kind)
        return report

    def _close_report(self, report: RunReport) -> RunReport:
        self.store.finish_run(report.run_id, report.status, report.figures_to_keep())
        return report

    def _push_and_finish(self, rt: ProviderRuntime, report: RunReport, only: Iterable[int] | None = None) -> None:
        self._push(rt, report, only=only)
        self._finish(rt)

    def _guard(self, rt: ProviderRuntime, report: RunReport, action: Callable[..., object], *args: Any) -> bool:
        try:
            action(*args)
        except ProviderError as exc:
            report.provider_errors[rt.name] = _safe(exc)
            log.warning("provider %s stopped: %s", rt.name, type(exc).__name__)
            return False
        except OSError as exc:
            report.provider_errors[rt.name] = _safe(exc)
            return False
        except CursorError:
            raise  # a stored cursor that cannot be read is surfaced (exit 2), never taken for a provider fault
        except UNREADABLE_ANSWER as exc:
            # A provider answered something its adapter could not read (malformed JSON, a missing field, a
            # wrong type): this provider stops for this run, its cursor stays put, the others go on.
            report.provider_errors[rt.name] = f"{rt.name}: unreadable answer ({type(exc).__name__})"
            log.warning("provider %s stopped on an unreadable answer: %s", rt.name, type(exc).__name__)
            return False
        return True

    def sync(self, names: Sequence[str] | None = None) -> RunReport:
        """One cycle over the named providers (all by default)."""
        selected = [self.runtimes[n] for n in (names or self.runtimes)]
        report = self._new_report("sync")
        try:
            pulled_ok: list[ProviderRuntime] = []
            for rt in selected:
                report.figures(rt.name)
                saved = self.store.load_cursor(rt.name, SYNC_STREAM)
                cursor = saved[0] if saved else Cursor()
                if self._guard(rt, report, self._pull, rt, SYNC_STREAM, report, cursor):
                    pulled_ok.append(rt)
            self._reconcile_all(report)
            whole = {rt.name for rt in pulled_ok if not self.store.push_scanned(rt.name)}  # they ask every contact
            pushed = [rt.name for rt in pulled_ok if self._guard(rt, report, self._push_and_finish, rt, report)]
            self.store.settle_pushes(self.settings.providers or tuple(self.runtimes),
                                     scanned=[name for name in pushed if name in whole])
        except BaseException:
            self._interrupted(report)
            raise
        return self._close_report(report)

    def _interrupted(self, report: RunReport) -> None:
        """A run stopped by something other than a provider (a stop signal, a bug): its row says so."""
        with contextlib.suppress(Exception):
            self.store.finish_run(report.run_id, "interrupted", report.figures_to_keep())

    def sync_records(self, provider: str, remote_ids: Sequence[str]) -> RunReport:
        """A targeted cycle for webhook hints: fetch these records by id, reconcile, push only their contacts.

        It never moves a cursor (the poll cycle stays the source of truth). A provider that cannot fetch by
        id gets a full cycle of its own instead.
        """
        rt = self.runtimes[provider]
        if not isinstance(rt.adapter, SupportsFetchByIds):
            return self.sync([provider])
        report = self._new_report("webhook")
        seen: set[int] = set()

        def fetch() -> None:
            records = rt.adapter.fetch_contacts(list(dict.fromkeys(remote_ids)))  # type: ignore[attr-defined]
            page = Page(records=records, next_cursor=Cursor())
            outcome = self.store.store_page(rt.name, None, self._map_page(rt, page, report), None)
            report.figures(rt.name).pulled += len(records)
            report.figures(rt.name).deleted += outcome.deleted
            seen.update(outcome.seen_ids)
            self._reconcile_ids(sorted(outcome.contact_ids), report)

        if self._guard(rt, report, fetch) and seen:
            for other in self.runtimes.values():
                self._guard(other, report, self._push_and_finish, other, report, seen)
        return self._close_report(report)

    def migrate(self, source: str, target: str, *, resume: bool) -> RunReport:
        """Copy every contact of ``source`` to ``target``; a rerun continues where a crash stopped it."""
        if source == target:
            raise UsageError("--from and --to name the same provider")
        src, dst = self.runtimes[source], self.runtimes[target]
        stream = f"migrate:{target}"
        saved = self.store.load_cursor(source, stream)
        if resume and (saved is None or saved[1]):
            raise UsageError(f"--resume: no unfinished migration from {source} to {target}")
        report = self._new_report("migrate")
        cursor = Cursor()
        if saved is not None and not saved[1]:
            cursor = saved[0]
            report.notes.append(f"resumed the unfinished migration from {source} to {target}")
        report.figures(source)
        report.figures(target)

        # stored, not yet pushed: pushed once they fill the target's biggest batch. People new to the hub are
        # kept as they were stored; the others are read back (a reconciliation may have changed them).
        waiting: set[int] = set()
        fresh: dict[int, PushCandidate] = {}

        def push_waiting() -> None:
            self._push(dst, report, only=waiting - fresh.keys(), linked_to=source, known=list(fresh.values()))
            waiting.clear()
            fresh.clear()

        def after_page(outcome: PullOutcome) -> None:
            self._reconcile_ids(sorted(outcome.contact_ids), report)
            waiting.update(outcome.seen_ids)
            for contact_id in outcome.seen_ids:  # seen again since it was stored new: it may have changed
                fresh.pop(contact_id, None)
            fresh.update(outcome.created)
            if len(waiting) >= dst.adapter.max_batch:
                push_waiting()

        def run() -> None:
            with self._writing_ahead(dst):
                if saved is not None:  # a rerun: first what a crash left stored but not pushed, in source order
                    self._push(dst, report, linked_to=source)
                last = self._pull(src, stream, report, cursor, on_stored=after_page, single_source=True)
                self._reconcile_all(report)
                if waiting:
                    push_waiting()
            self._finish(dst)
            self.store.save_cursor(source, stream, last, done=True)

        failed_side = src
        try:
            run()
        except ProviderError as exc:
            failed_side = dst if exc.provider == target else src
            report.provider_errors[failed_side.name] = _safe(exc)
        except OSError as exc:
            report.provider_errors[failed_side.name] = _safe(exc)
        return self._close_report(report)

    def unsubscribe(self, email: str) -> RunReport:
        """Suppress an address in the hub and push the opt-out to every provider that holds it."""
        report = self._new_report("unsubscribe")
        contact_id = self.store.unsubscribe(email, evidence="crmsync unsubscribe")
        if contact_id is None:
            report.notes.append("the address is not in the hub yet: it is suppressed for every later import")
            return self._close_report(report)
        for rt in self.runtimes.values():
            self._guard(rt, report, self._push_and_finish, rt, report, [contact_id])
        return self._close_report(report)

    def forget(self, email: str) -> RunReport:
        """Erase a person everywhere; the hub keeps only a keyed hash so no import brings them back."""
        report = self._new_report("forget")
        _, links = self.store.links_of(email)
        remote = dict(links)
        for rt in self.runtimes.values():
            if not isinstance(rt.adapter, SupportsErase):
                report.provider_errors[rt.name] = "this provider cannot erase contacts"
                continue
            adapter = rt.adapter

            def erase(rt: ProviderRuntime = rt, adapter: SupportsErase = adapter) -> None:
                adapter.erase_contact(remote_id=remote.get(rt.name), email=email)
                self._finish(rt)

            if self._guard(rt, report, erase):
                report.figures(rt.name).deleted += 1
        if report.provider_errors:
            report.notes.append("not erased everywhere: the hub keeps the contact so that forget can be run again")
        elif not self.store.dry_run:
            self.store.forget(email)
        return self._close_report(report)


def _note_unread_columns(rt: ProviderRuntime, page: Page, report: RunReport) -> None:
    first = next((r for r in page.records if not r.deleted), None)
    unread = rt.mapping.unread_keys(first.data) if first is not None else []
    if unread:
        note = (f"{rt.name}: not read, not canonical names: {', '.join(unread[:10])}"
                f"{' ...' if len(unread) > 10 else ''} (rename them, or map them in [mapping.{rt.name}.fields])")
        if note not in report.notes:
            report.notes.append(note)


def _count_write(figures: Any, planned: PlannedWrite) -> None:
    if planned.kind is WriteKind.CREATE:
        figures.created += 1
    else:
        figures.updated += 1
    if planned.unsubscribes or (planned.kind is WriteKind.CREATE and planned.projection.get("consent") in OPTED_OUT):
        figures.unsubscribed += 1


def _candidates_json(candidates: Iterable[Any]) -> str:
    return json.dumps(
        [{"source": c.source, "value": sorted(c.value) if isinstance(c.value, frozenset) else c.value,
          "at": c.at.isoformat() if c.at else None} for c in candidates],
        default=str, ensure_ascii=False,
    )
