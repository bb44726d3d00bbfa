"""Prometheus metrics: counters the daemon bumps, gauges read from the state store at scrape time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connector.daemon.inbox import Inbox
from connector.daemon.leases import aware, utcnow
from connector.report import RunReport
from connector.runtime import ProviderRuntime
from state.store import CONF, CUR, Store


class _StateCollector(Collector):
    def __init__(self, store: Store, inbox: Inbox, runtimes: Mapping[str, ProviderRuntime]) -> None:
        self._store, self._inbox, self._runtimes = store, inbox, runtimes

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("crmsync_inbox_depth", "Webhook events stored and not processed yet")
        depth.add_metric([], self._inbox.depth())
        yield depth
        with self._store.transaction() as conn:
            conflicts = conn.execute(sa.select(sa.func.count()).select_from(CONF).where(CONF.c.status == "open"))
            open_conflicts = int(conflicts.scalar_one())
            cursors = conn.execute(sa.select(CUR.c.provider, CUR.c.value, CUR.c.updated_at)
                                   .where(CUR.c.stream == "contacts")).all()
        gauge = GaugeMetricFamily("crmsync_open_conflicts", "Field conflicts waiting for a person")
        gauge.add_metric([], open_conflicts)
        yield gauge
        lag = GaugeMetricFamily("crmsync_cursor_lag_seconds",
                                "Seconds between now and the provider's stored watermark (or the cursor's last move)",
                                labels=["provider"])
        now = utcnow()
        for row in cursors:
            lag.add_metric([row.provider], max(0.0, (now - _watermark(row.value, row.updated_at)).total_seconds()))
        yield lag
        limited = CounterMetricFamily("crmsync_rate_limited", "HTTP 429 answers seen by this replica",
                                      labels=["provider"])
        for name, rt in self._runtimes.items():
            limited_count = _rate_limited(rt.adapter)
            if limited_count is not None:
                limited.add_metric([name], limited_count)
        yield limited


def _rate_limited(adapter: object) -> int | None:
    """The shared transport counts 429s (``stats.rate_limited``); adapters expose it directly or on ``transport``."""
    for holder in (adapter, getattr(adapter, "transport", None)):
        count = getattr(getattr(holder, "stats", None), "rate_limited", None)
        if isinstance(count, int):
            return count
    return None


def _watermark(value: str, saved_at: dt.datetime) -> dt.datetime:
    try:
        after = json.loads(value).get("updated_after")
        if after:
            return aware(dt.datetime.fromisoformat(after)) or utcnow()
    except (ValueError, AttributeError):
        pass
    return aware(saved_at) or utcnow()


class Metrics:
    def __init__(self, store: Store, inbox: Inbox, runtimes: Mapping[str, ProviderRuntime]) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # _created series only double the output
        self.registry = CollectorRegistry()
        self.cycles = Counter("crmsync_cycles", "Engine cycles run by this replica", ["provider", "kind", "status"],
                              registry=self.registry)
        self.pulled = Counter("crmsync_records_pulled", "Records pulled", ["provider"], registry=self.registry)
        self.written = Counter("crmsync_records_written", "Records created or updated", ["provider"],
                               registry=self.registry)
        self.failed = Counter("crmsync_records_failed", "Record writes that failed", ["provider"],
                              registry=self.registry)
        self.webhooks = Counter("crmsync_webhooks", "Webhook deliveries by outcome", ["provider", "outcome"],
                                registry=self.registry)
        self.registry.register(_StateCollector(store, inbox, runtimes))

    def observe(self, report: RunReport, kind: str, providers: list[str]) -> None:
        status = report.status
        for name in providers:
            self.cycles.labels(name, kind, status).inc()
        for name, figures in report.providers.items():
            self.pulled.labels(name).inc(figures.pulled)
            self.written.labels(name).inc(figures.created + figures.updated)
            self.failed.labels(name).inc(figures.failed)

    def render(self) -> bytes:
        data: Any = generate_latest(self.registry)
        return bytes(data)
