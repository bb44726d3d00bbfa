"""Writing members in bulk without ever forcing a status that would resubscribe someone.

Mailchimp's batch subscribe (``POST /lists/{id}``, 500 members a call) takes a ``status`` per member, and
with ``update_existing: true`` it overwrites existing members' status [SPEC], [BULK]. So a write goes:

1. ``POST /lists/{id}`` with ``update_existing: false``: new members are created with their status (the
   known consent, else ``new_member_status``): that is ``status_if_new`` in bulk. Existing members
   come back as ``ERROR_CONTACT_EXISTS`` and nothing about them changes.
2. Existing members whose consent is an opt-out (unsubscribed, cleaned): ``POST /lists/{id}`` with
   ``update_existing: true``, the one status it is always safe to force.
3. Other existing members, and address changes: ``POST /batches`` with ``PUT`` (``status_if_new`` only,
   never ``status``) or ``PATCH`` (new address at the old hash) and ``POST .../tags`` operations; the
   results come back as a tar.gz of per-operation answers [BULK]. A handful of operations go out as the
   same calls made directly instead (``adapter.DIRECT_MAX_OPS``): no job to wait for.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import WriteRequest, WriteResult
from adapters.errors import RetryableError
from adapters.mailchimp._wire import (
    FORGOTTEN,
    OPTED_OUT,
    PROVIDER,
    SUPPRESSED_TITLES,
    WRITABLE_STATUSES,
    refusal_code,
    subscriber_hash,
)

BATCH_MEMBERS: Final = 500  # POST /lists/{id}: up to 500 members per call [SPEC]


def clean_merge_fields(values: Any) -> dict[str, Any]:
    """None is how the mapper says "blank"; Mailchimp spells it ``""``."""
    if not isinstance(values, Mapping):
        return {}
    return {str(tag): ("" if value is None else value) for tag, value in values.items()}


@dataclass(slots=True)
class Plan:
    """One request on its way: what to send, and its result once known."""

    index: int
    request: WriteRequest
    status: str | None  # the mapped consent: a Mailchimp status, or None when unknown
    status_if_new: str
    merge_fields: dict[str, Any]
    tags: list[str] | None  # None: the request says nothing about tags
    interests: dict[str, bool] | None = None
    moved: bool = False  # the address changed: update the member at the old address's hash
    result: WriteResult | None = None
    contact_id: str | None = None  # the member's stable id, when an answer named it
    created: dict[str, Any] | None = None  # the member as the batch subscribe that created it answered

    @property
    def email(self) -> str:
        return self.request.email.strip()

    @property
    def key(self) -> str:
        return subscriber_hash(self.email)

    def _linked_by(self) -> str:
        """The id the link keeps: a stable one stays; the old address's hash gives way when the address moved."""
        known = self.request.remote_id
        stale = self.moved and known == subscriber_hash(self.request.previous_email or "")
        if known and not stale:
            return known
        return self.contact_id or self.key

    @property
    def opts_out(self) -> bool:
        return self.status in OPTED_OUT

    def done(
        self, *, ok: bool = True, error: str | None = None, retryable: bool = False, suppressed: bool = False
    ) -> None:
        self.result = WriteResult(
            ref=self.request.ref,
            ok=ok,
            remote_id=self._linked_by() if ok else self.request.remote_id,
            error=error,
            retryable=retryable,
            suppressed=suppressed,
            created=self.created if ok else None,
        )


def plan(index: int, request: WriteRequest, *, new_member_status: str) -> Plan:
    fields = request.fields
    raw_status = fields.get("status")
    status = raw_status if raw_status in WRITABLE_STATUSES else None
    tags = sorted({str(t) for t in (fields.get("tags") or ())}) if "tags" in fields else None
    interests = fields.get("interests")
    previous = (request.previous_email or "").strip().lower()
    return Plan(
        index=index,
        request=request,
        status=status,
        status_if_new=status or new_member_status,
        merge_fields=clean_merge_fields(fields.get("merge_fields")),
        tags=tags,
        interests=dict(interests) if isinstance(interests, Mapping) else None,
        moved=bool(previous) and previous != request.email.strip().lower(),
    )


def member_item(p: Plan, *, status: str) -> dict[str, Any]:
    """A batch-subscribe member: batch items take ``status`` only (no ``status_if_new``) [SPEC]."""
    item: dict[str, Any] = {"email_address": p.email, "status": status}
    if p.merge_fields:
        item["merge_fields"] = p.merge_fields
    if p.tags is not None:
        item["tags"] = p.tags
    if p.interests:
        item["interests"] = p.interests
    return item


def read_batch_subscribe(answer: Mapping[str, Any], plans: Sequence[Plan]) -> list[Plan]:
    """Settle plans from a batch-subscribe answer; returns those that already exist."""
    by_key = {p.key: p for p in plans}
    existing: list[Plan] = []
    answered = [(m, True) for m in _items(answer, "new_members")]
    answered += [(m, False) for m in _items(answer, "updated_members")]
    for member, created in answered:
        p = by_key.get(subscriber_hash(str(member.get("email_address", ""))))
        if p is not None and p.result is None:
            contact_id = member.get("contact_id")
            p.contact_id = contact_id if isinstance(contact_id, str) and contact_id else None
            p.created = dict(member) if created else None
            p.done()
    for error in _items(answer, "errors"):
        p = by_key.get(subscriber_hash(str(error.get("email_address", ""))))
        if p is None or p.result is not None:
            continue
        code, retryable, suppressed = refusal_code(
            str(error.get("error") or ""), str(error.get("error_code") or ""), field=str(error.get("field") or "")
        )
        if code == "ERROR_CONTACT_EXISTS":
            existing.append(p)
        else:
            p.done(ok=False, error=code, retryable=retryable, suppressed=suppressed)
    # A member the answer does not mention was not written; the update path's upsert (status_if_new,
    # never a forced status) is safe whether it exists or not.
    existing.extend(p for p in plans if p.result is None and p not in existing)
    return existing


def _items(answer: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects of one of the answer's arrays; an array left out, or null, is empty."""
    items = answer.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def operations(
    plans: Iterable[Plan], list_id: str, *, tags: bool, known_tags: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """``/batches`` operations for existing members: upsert without a forced status, or tags.

    A member's tags become exactly the ones sent: each is set active, and every other tag the audience
    knows (``known_tags``) inactive, which is a no-op for a member without it. ``is_syncing`` keeps
    tag-triggered automations from firing [SPEC].
    """
    ops: list[dict[str, Any]] = []
    for p in plans:
        if tags:
            if p.tags is None:
                continue
            changes = [{"name": t, "status": "active"} for t in p.tags]
            changes += [{"name": t, "status": "inactive"} for t in sorted(known_tags.difference(p.tags))]
            if changes:
                body = {"tags": changes, "is_syncing": True}
                ops.append(_op("POST", f"/lists/{list_id}/members/{p.key}/tags", body, f"t{p.index}"))
            continue
        if p.moved and p.request.previous_email:
            body = {"email_address": p.email, **_content(p)}
            if p.opts_out:
                body["status"] = p.status
            ops.append(
                _op(
                    "PATCH",
                    f"/lists/{list_id}/members/{subscriber_hash(p.request.previous_email)}",
                    body,
                    f"m{p.index}",
                )
            )
        else:
            body = {"email_address": p.email, "status_if_new": p.status_if_new, **_content(p)}
            ops.append(_op("PUT", f"/lists/{list_id}/members/{p.key}", body, f"m{p.index}"))
    return ops


def _content(p: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.merge_fields:
        out["merge_fields"] = p.merge_fields
    if p.interests:
        out["interests"] = p.interests
    return out


def _op(method: str, path: str, body: Mapping[str, Any], operation_id: str) -> dict[str, Any]:
    return {"method": method, "path": path, "operation_id": operation_id, "body": json.dumps(body)}


def read_results(archive: bytes) -> dict[str, tuple[int, str]]:
    """operation_id -> (status code, problem title) from a /batches result archive [BULK].

    A gzipped tar of JSON files, each an array of ``{"status_code", "operation_id", "response"}`` where
    ``response`` is itself a JSON string; how results spread over files is not fixed (one file per operation,
    paged answers over several), so every file is read. A file holding one entry rather than an array is
    taken too, and a body some client already un-gzipped (``Content-Encoding: gzip``) is a plain tar.
    An archive that cannot be read is a RetryableError: the operations are upserts, safe to send again.
    """
    out: dict[str, tuple[int, str]] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    out.update(_entries(handle.read()))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise RetryableError(
            f"{PROVIDER} /batches results: unreadable archive ({type(exc).__name__})", provider=PROVIDER
        ) from None
    return out


def _entries(raw: bytes) -> dict[str, tuple[int, str]]:
    try:
        entries = json.loads(raw or b"[]")
    except ValueError:
        return {}
    out: dict[str, tuple[int, str]] = {}
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict) and entry.get("operation_id") not in (None, ""):
            out[str(entry["operation_id"])] = (_status(entry.get("status_code")), _title(entry.get("response")))
    return out


def _status(value: Any) -> int:
    """The operation's HTTP status; 0 (no answer: retried) when missing or not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _title(response: Any) -> str:
    try:
        body = json.loads(response) if isinstance(response, str) else response  # the response is a JSON string
    except ValueError:
        return ""
    title = body.get("title") if isinstance(body, dict) else None
    return title if isinstance(title, str) else ""


def settle(p: Plan, status: int, title: str) -> bool:
    """Record one operation's answer; False when the member was not found (the caller decides)."""
    if status < 300:
        p.done()
        return True
    if status == 404:
        return False
    if title in SUPPRESSED_TITLES:
        p.done(ok=False, error=title, suppressed=True)
    elif status == 429 or status >= 500:
        p.done(ok=False, error=f"{status}", retryable=True)
    else:
        p.done(ok=False, error=title or str(status))
    return True


__all__ = [
    "BATCH_MEMBERS",
    "FORGOTTEN",
    "Plan",
    "member_item",
    "operations",
    "plan",
    "read_batch_subscribe",
    "read_results",
    "settle",
]
