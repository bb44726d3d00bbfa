"""The daemon's jobs on APScheduler 3: provider polls, the inbox drain, Zoho channel renewal, housekeeping.

Every engine cycle (poll or webhook) runs under one in-process lock and the cluster-wide writer lease, so
a poll cycle and a webhook cycle never write the same contact at once, on one replica or many. The
providers sharing an interval are polled in one cycle, due once per interval across all replicas (a
marker row remembers the last run).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from adapters.errors import ProviderError
from connector.config import Config
from connector.daemon.inbox import STATUS_DONE, STATUS_FAILED, Claimed, Inbox
from connector.daemon.leases import WRITER, Heartbeat, Leases, replica_id, utcnow
from connector.daemon.metrics import Metrics
from connector.engine import Engine
from connector.report import RunReport

log = logging.getLogger("crmsync.daemon")

ZOHO_RENEW_EVERY = dt.timedelta(hours=1)
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)


class Stopping(Exception):
    """Raised between two batches once shutdown began: what is stored stays stored."""


class LeaseLost(Stopping):
    """The writer lease went to another replica (missed heartbeats): stop writing at once."""


class StopSink:
    """The engine's progress sink: after each stored page and each written batch, a stop is honoured."""

    def __init__(self, stopping: threading.Event, lease_lost: threading.Event) -> None:
        self._stopping = stopping
        self._lease_lost = lease_lost

    def advance(self, label: str, count: int) -> None:
        if self._lease_lost.is_set():
            raise LeaseLost(label)
        if self._stopping.is_set():
            raise Stopping(label)

    def close(self) -> None:
        return


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonOptions:
    listen: str | None = None
    log_format: str = "plain"
    debounce: dt.timedelta = dt.timedelta(milliseconds=500)
    drain_every: dt.timedelta = dt.timedelta(milliseconds=200)
    lease_ttl: dt.timedelta = dt.timedelta(seconds=30)
    shutdown_timeout: dt.timedelta = dt.timedelta(seconds=30)


class Daemon:
    def __init__(self, config: Config, engine: Engine, options: DaemonOptions, stopping: threading.Event,
                 lease_lost: threading.Event) -> None:
        self.config, self.engine, self.options, self.stopping = config, engine, options, stopping
        self.lease_lost = lease_lost  # set by the writer lease's heartbeat; the engine's sink watches it
        self.holder = replica_id()
        engine.store.run_as(self.holder, lease=WRITER)  # its cycles: closed by whoever takes the lease next
        self.leases = Leases(engine.store)
        self.inbox = Inbox(engine.store)
        self.metrics = Metrics(engine.store, self.inbox, engine.runtimes)
        self._lock = threading.Lock()  # one engine user at a time in this process
        self.scheduler = BackgroundScheduler(
            timezone=dt.UTC, executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        now = utcnow()
        for interval, names in _poll_groups(self.config, list(self.engine.runtimes)).items():
            tick = min(max(interval / 4, dt.timedelta(seconds=1)), dt.timedelta(seconds=30))
            self.scheduler.add_job(self.poll, "interval", args=[names, interval], seconds=tick.total_seconds(),
                                   id=f"poll:{','.join(names)}", next_run_time=now)
        self.scheduler.add_job(self.drain, "interval", seconds=self.options.drain_every.total_seconds(), id="drain")
        self.scheduler.add_job(self.renew_channels, "interval", minutes=10, id="zoho-renew", next_run_time=now)
        self.scheduler.add_job(self.housekeeping, "interval", minutes=10, id="housekeeping", next_run_time=now)
        self.scheduler.start()
        log.info("daemon started", extra={"replica": self.holder, "providers": ",".join(self.engine.runtimes)})

    def stop(self) -> bool:
        """Stop taking work and wait for the batch in hand; False when it did not end in time."""
        self.stopping.set()
        done = threading.Event()

        def shutdown() -> None:
            self.scheduler.shutdown(wait=True)
            done.set()

        threading.Thread(target=shutdown, name="scheduler-shutdown", daemon=True).start()
        finished = done.wait(self.options.shutdown_timeout.total_seconds())
        log.info("daemon stopped" if finished else "daemon stop timed out", extra={"replica": self.holder})
        return finished

    def alive(self) -> bool:
        return bool(self.scheduler.running) and not self.stopping.is_set()

    # -- the writer lease ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self, *, wait_s: float) -> Iterator[bool]:
        if self.stopping.is_set() or not self._lock.acquire(timeout=wait_s):
            yield False
            return
        try:
            if not self.leases.acquire(WRITER, self.holder, self.options.lease_ttl):
                yield False
                return
            try:
                with Heartbeat(self.leases, WRITER, self.holder, self.options.lease_ttl, lost=self.lease_lost):
                    self._after_takeover()
                    try:
                        yield True
                    except LeaseLost:
                        log.warning("writer lease lost mid-cycle: stopped writing", extra={"replica": self.holder})
                        raise
                    except Stopping:
                        self.inbox.close_own_runs(self.holder)
                        raise
            finally:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    self.leases.release(WRITER, self.holder)
        finally:
            self._lock.release()

    def _after_takeover(self) -> None:
        """A replica that died mid-cycle left claims and a "running" cycle: only the lease holder could."""
        orphans = self.inbox.reclaim_orphans(self.holder)
        runs = self.inbox.close_interrupted_runs(self.holder, lease=WRITER)
        if orphans or runs:
            log.warning("took over after an interrupted replica", extra={"inbox_reclaimed": orphans,
                                                                        "runs_interrupted": runs})

    # -- jobs ------------------------------------------------------------------------------------
    def poll(self, names: list[str], interval: dt.timedelta) -> None:
        """One cycle over the providers sharing this interval: like ``crmsync sync``, they converge in one run."""
        marker = f"poll:{','.join(names)}"
        with self._job("poll", marker), self._writing(wait_s=5.0) as mine:
            if not mine or not self.leases.due(marker, interval * 0.9):
                return
            started = time.monotonic()
            report = self.engine.sync(names)
            self.leases.mark_done(marker)
            self._record(report, "poll", names, started)

    def drain(self) -> None:
        cutoff = utcnow() - self.options.debounce
        if self.stopping.is_set() or not self.inbox.has_ready(cutoff):
            return
        with self._job("drain", "inbox"), self._writing(wait_s=0.0) as mine:
            if not mine:
                return
            claimed = self.inbox.claim(self.holder)
            pending = [c.id for c in claimed]
            try:
                for provider, rows in _by_provider(claimed).items():
                    self._targeted(provider, rows)
                    pending = [i for i in pending if i not in {r.id for r in rows}]
            finally:
                self.inbox.give_back(pending, self.holder)

    def _targeted(self, provider: str, rows: list[Claimed]) -> None:
        ids = list(dict.fromkeys(r.remote_id for r in rows if r.remote_id))
        if provider not in self.engine.runtimes or not ids:  # a provider since removed from the config, or no id
            self.inbox.finish([r.id for r in rows], STATUS_FAILED if provider not in self.engine.runtimes
                              else STATUS_DONE)
            return
        started = time.monotonic()
        report = self.engine.sync_records(provider, ids)
        # Failed: the records could not be fetched (the next poll reads them). A push that failed elsewhere
        # stays a pending write of that provider, retried by later cycles.
        self.inbox.finish([r.id for r in rows], STATUS_FAILED if provider in report.provider_errors else STATUS_DONE)
        self._record(report, "webhook", [provider], started, events=len(rows), records=len(ids))

    def renew_channels(self) -> None:
        for name, rt in self.engine.runtimes.items():
            ensure = getattr(rt.adapter, "ensure_watch", None)
            if rt.type != "zoho" or ensure is None or not getattr(rt.adapter, "notify_url", None):
                continue
            with self._job("zoho-renew", name), self._writing(wait_s=30.0) as mine:
                if not mine or not self.leases.due(f"zoho-watch:{name}", ZOHO_RENEW_EVERY):
                    continue
                expiry = ensure()
                self.leases.mark_done(f"zoho-watch:{name}")
                log.info("zoho channel ensured", extra={"provider": name, "expires_at": str(expiry)})

    def housekeeping(self) -> None:
        with self._job("housekeeping", "state"):
            if not self.leases.due("housekeeping", HOUSEKEEPING_EVERY):
                return
            inbox, runs = self.inbox.prune(utcnow() - self.config.sync.retention)
            self.leases.mark_done("housekeeping")
            log.info("housekeeping", extra={"inbox_pruned": inbox, "runs_pruned": runs})

    # -- helpers ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _job(self, job: str, target: str) -> Iterator[None]:
        """A job never kills the scheduler; its failure is one log line with no message text."""
        try:
            yield
        except Stopping as exc:
            log.info("job interrupted", extra={"job": job, "target": target, "why": type(exc).__name__})
        except ProviderError as exc:
            log.warning("job failed", extra={"job": job, "target": target, "error": str(exc)})
        except Exception as exc:  # any other failure: logged by type only, retried next tick
            log.exception("job failed", extra={"job": job, "target": target, "error": type(exc).__name__})

    def _record(self, report: RunReport, kind: str, providers: list[str], started: float, **extra: int) -> None:
        self.metrics.observe(report, kind, providers)
        figures = {f"{name}_{k}": v for name, f in report.providers.items()
                   for k, v in (("pulled", f.pulled), ("created", f.created), ("updated", f.updated),
                                ("failed", f.failed)) if v}
        level = logging.WARNING if report.provider_errors else logging.INFO
        log.log(level, "cycle", extra={"kind": kind, "provider": ",".join(providers), "status": report.status,
                                      "run_id": report.run_id, "seconds": round(time.monotonic() - started, 3),
                                      **extra, **figures,
                                      **{f"{k}_error": v for k, v in report.provider_errors.items()}})


def _poll_groups(config: Config, names: list[str]) -> dict[dt.timedelta, list[str]]:
    """Providers with the same interval share one poll cycle (``sync.interval`` unless overridden)."""
    groups: dict[dt.timedelta, list[str]] = {}
    for name in names:
        groups.setdefault(config.interval_for(name), []).append(name)
    return groups


def _by_provider(rows: list[Claimed]) -> dict[str, list[Claimed]]:
    grouped: dict[str, list[Claimed]] = {}
    for row in rows:
        grouped.setdefault(row.provider, []).append(row)
    return grouped
