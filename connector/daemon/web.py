"""The daemon's ASGI app: webhook intake (verify -> inbox -> 2xx), ``/healthz`` and ``/metrics``.

A route holds no logic of its own (STYLE rule 11): the adapter verifies and parses, the inbox stores.
Verification sees the URL the provider signed: ``webhooks.public_url`` when the daemon is behind a proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Final

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.base import SupportsWebhooks, WebhookEvent
from adapters.errors import WebhookRejected
from connector.daemon.inbox import Inbox
from connector.daemon.worker import Daemon

log = logging.getLogger("crmsync.webhooks")
MAX_BODY: Final = 1 << 20  # 1 MiB: HubSpot batches at most 100 events per delivery


def signed_url(request: Request, public_url: str | None) -> str:
    if not public_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return public_url.rstrip("/") + request.url.path + query


class GroupCommit:
    """Deliveries that arrive while a commit runs share the next one; each 2xx still follows its own commit.

    Runs on the event loop only, so the pending list needs no lock.
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._pending: list[tuple[str, Sequence[WebhookEvent], asyncio.Future[int]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def store(self, provider: str, events: Sequence[WebhookEvent]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((provider, events, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                counts = await run_in_threadpool(self._inbox.store_deliveries, [(p, e) for p, e, _ in batch])
            except Exception as exc:  # the whole commit failed: every delivery in it gets a 503 and is retried
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, _, future), count in zip(batch, counts, strict=True):
                future.set_result(count)


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None past MAX_BODY (read no further: a declared or streamed giant stays on the wire)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def create_app(daemon: Daemon) -> Starlette:
    runtimes = daemon.engine.runtimes
    intake = GroupCommit(daemon.inbox)
    public_url = daemon.config.webhooks.public_url

    def _adapter(name: str) -> SupportsWebhooks | None:
        rt = runtimes.get(name)
        return rt.adapter if rt is not None and isinstance(rt.adapter, SupportsWebhooks) else None

    async def receive(request: Request) -> Response:
        name = request.path_params["name"]
        adapter = _adapter(name)
        if adapter is None:
            return JSONResponse({"error": "no webhook provider by this name"}, status_code=404)
        body = await _bounded_body(request)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        headers: Mapping[str, str] = dict(request.headers)
        try:
            adapter.verify_webhook(method="POST", url=signed_url(request, public_url), headers=headers, body=body)
        except WebhookRejected as exc:
            daemon.metrics.webhooks.labels(name, "rejected").inc()
            log.warning("webhook rejected", extra={"provider": name, "reason": str(exc)})
            return JSONResponse({"error": "rejected"}, status_code=401)
        try:
            events = adapter.parse_webhook(headers=headers, body=body)
        except (WebhookRejected, ValueError):
            daemon.metrics.webhooks.labels(name, "unreadable").inc()
            log.warning("webhook unreadable", extra={"provider": name})
            return JSONResponse({"error": "unreadable body"}, status_code=400)
        try:
            stored = await intake.store(name, events)
        except sa.exc.SQLAlchemyError as exc:
            log.exception("webhook not stored: state store unavailable", extra={"provider": name,
                                                                                "error": type(exc).__name__})
            return JSONResponse({"error": "not stored, retry"}, status_code=503)
        daemon.metrics.webhooks.labels(name, "accepted").inc()
        log.info("webhook", extra={"provider": name, "events": len(events), "stored": stored,
                                   "duplicates": len(events) - stored})
        return JSONResponse({"events": len(events), "stored": stored}, status_code=200)

    async def probe(request: Request) -> Response:
        name = request.path_params["name"]
        if _adapter(name) is None:
            return JSONResponse({"error": "no webhook provider by this name"}, status_code=404)
        return JSONResponse({"ok": True})

    def _store_ok() -> bool:
        try:
            with daemon.engine.store.transaction() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True

    async def healthz(request: Request) -> Response:
        store_ok = await run_in_threadpool(_store_ok)
        scheduler_ok = daemon.alive()
        body: dict[str, object] = {"ok": store_ok and scheduler_ok, "state_store": store_ok,
                                   "scheduler": scheduler_ok, "replica": daemon.holder}
        if store_ok:
            body["leases"] = await run_in_threadpool(daemon.leases.snapshot)
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    async def metrics(request: Request) -> Response:
        try:
            data = await run_in_threadpool(daemon.metrics.render)
        except sa.exc.SQLAlchemyError:
            return Response("state store unreachable\n", status_code=503, media_type="text/plain")
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/webhooks/{name}", receive, methods=["POST"]),
        Route("/webhooks/{name}", probe, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ])
