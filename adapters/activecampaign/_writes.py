"""ActiveCampaign writes: bulk import for batches of new contacts, ``contact/sync`` for everything else.

The rule, per write batch (providers/activecampaign.md, "bulk import"):

- requests without a ``remote_id`` (creates, or upserts by email) go to ``POST /import/bulk_import`` in one
  call when there are at least ``BULK_MIN`` (10) of them, as AC suggests; the import is asynchronous, so it
  is polled at ``/import/info`` and the new ids are read back by an id scan above the newest id before the
  import (an address that was already a contact is looked up by email). Imports add tags but never remove
  one, fire no webhooks and never re-subscribe a person who unsubscribed.
- every other request is one ``POST /contact/sync`` (create-or-update by email, the only idempotent
  write), or ``PUT /contacts/{id}`` when ``previous_email`` says the address changed (sync would create a
  second contact). Then the list status (``POST /contactLists``) when consent is set, and the tags when
  ``tags`` is set: missing tags are created, attached by id and stale join rows deleted.

Consent goes out as ``fields["listStatus"]`` ("1" / "2" / None = leave the list alone). Status 2 is always
sent; status 1 is sent without ``sourceid: 4``, so ActiveCampaign itself never re-subscribes a contact who
unsubscribed from the list [SPEC]. Field values travel as ``fields["fields"]`` keyed by perstag; a perstag
the account does not have is left out.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters._http import Transport
from adapters.activecampaign._wire import PROVIDER, ContactRefused
from adapters.base import WriteRequest, WriteResult
from adapters.errors import FatalProviderError, RetryableError

MAX_IMPORT: Final = 250  # contacts per bulk import call [SPEC]
BULK_MIN: Final = 10  # fewer than this: use sync [SPEC]
IMPORT_DEADLINE_S: Final = 1800.0
_NAMES: Final = (("firstName", "first_name"), ("lastName", "last_name"), ("phone", "phone"))


class Catalog:
    """Account-wide name <-> id maps (custom fields by perstag, tags by name), read once and cached."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._fields: dict[str, str] | None = None  # field id -> perstag
        self._tags: dict[str, str] = {}  # lower-cased name -> id
        self._tag_names: dict[str, str] = {}  # id -> name
        self._tags_loaded = False

    def perstags(self) -> dict[str, str]:
        with self._lock:
            if self._fields is None:
                self._fields = {}
                offset = 0
                while True:
                    params = {"limit": 100, "offset": offset}
                    rows = self._transport.request("GET", "/fields", params=params).json().get("fields") or []
                    for row in rows:
                        if row.get("perstag"):
                            self._fields[str(row["id"])] = str(row["perstag"]).upper()
                    if len(rows) < 100:
                        break
                    offset += 100
            return self._fields

    def field_id(self, perstag: str) -> str | None:
        wanted = perstag.upper()
        return next((fid for fid, tag in self.perstags().items() if tag == wanted), None)

    def _load_tags(self) -> None:
        if self._tags_loaded:
            return
        offset = 0
        while True:
            rows = self._transport.request("GET", "/tags", params={"limit": 100, "offset": offset}).json()
            rows = rows.get("tags") or []
            for row in rows:
                self._remember(str(row["id"]), str(row["tag"]))
            if len(rows) < 100:
                break
            offset += 100
        self._tags_loaded = True

    def _remember(self, tag_id: str, name: str) -> None:
        self._tags[name.lower()] = tag_id
        self._tag_names[tag_id] = name

    def tag_name(self, tag_id: str) -> str:
        with self._lock:
            if tag_id not in self._tag_names:
                self._tags_loaded = False
                self._load_tags()
            return self._tag_names.get(tag_id, tag_id)

    def tag_id(self, name: str) -> str:
        """The tag's id, creating the tag when the account has none by that name."""
        with self._lock:
            self._load_tags()
            known = self._tags.get(name.lower())
            if known is not None:
                return known
            body = {"tag": {"tag": name, "tagType": "contact", "description": ""}}
            try:
                tag = self._transport.request("POST", "/tags", json=body, idempotent=False).json()["tag"]
            except ContactRefused:  # created meanwhile by someone else: read the list again
                self._tags_loaded = False
                self._load_tags()
                return self._tags[name.lower()]
            self._remember(str(tag["id"]), str(tag["tag"]))
            return str(tag["id"])


@dataclass(slots=True)
class Plan:
    request: WriteRequest
    contact: dict[str, Any]
    values: dict[str, str]  # field id -> value
    tags: list[str] | None
    status: str | None
    result: WriteResult | None = None

    def done(
        self, *, ok: bool = True, remote_id: str | None = None, error: str | None = None, retryable: bool = False
    ) -> None:
        self.result = WriteResult(
            ref=self.request.ref,
            ok=ok,
            remote_id=remote_id if ok else None,
            error=error,
            retryable=retryable,
        )


def plan(request: WriteRequest, catalog: Catalog) -> Plan:
    fields = request.fields
    contact: dict[str, Any] = {"email": request.email}
    for key, _ in _NAMES:
        if key in fields:
            contact[key] = "" if fields[key] is None else str(fields[key])
    values: dict[str, str] = {}
    for perstag, value in (fields.get("fields") or {}).items():
        fid = catalog.field_id(str(perstag))
        if fid is not None:
            values[fid] = "" if value is None else str(value)
    tags = fields.get("tags")
    status = fields.get("listStatus")
    return Plan(
        request=request,
        contact=contact,
        values=values,
        tags=sorted(tags) if tags is not None else None,
        status=str(status) if status in ("1", "2", 1, 2) else None,
    )


class Writer:
    def __init__(
        self,
        transport: Transport,
        catalog: Catalog,
        *,
        list_id: str,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = 2.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.transport = transport
        self.catalog = catalog
        self.list_id = list_id
        self._sleep = sleep
        self._poll_s = poll_s
        self._clock = clock
        self._top: int | None = None  # the newest contact id seen: ids only grow, so a stale one is safe

    def write(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        plans = [plan(r, self.catalog) for r in requests]
        creates = [p for p in plans if p.request.remote_id is None and p.request.previous_email is None]
        if len(creates) >= BULK_MIN:
            self._import(creates)
        for p in plans:
            if p.result is None:
                self._one(p)
        return [p.result for p in plans if p.result is not None]

    # -- one contact ------------------------------------------------------------------------------
    def _one(self, p: Plan) -> None:
        envelope: dict[str, Any] = {"contact": {**p.contact}}
        if p.values:
            envelope["contact"]["fieldValues"] = [{"field": fid, "value": v} for fid, v in p.values.items()]
        try:
            if p.request.remote_id and p.request.previous_email:
                try:
                    path = f"/contacts/{p.request.remote_id}"
                    answer = self.transport.request("PUT", path, json=envelope).json()
                except ContactRefused as exc:
                    if exc.status != 404:
                        raise
                    answer = self.transport.request("POST", "/contact/sync", json=envelope).json()
            else:
                answer = self.transport.request("POST", "/contact/sync", json=envelope).json()
            remote_id = str(answer["contact"]["id"])
            if p.status is not None:
                body = {"contactList": {"list": self.list_id, "contact": remote_id, "status": int(p.status)}}
                self.transport.request("POST", "/contactLists", json=body)
            if p.tags is not None:
                self._tags(remote_id, p.tags)
        except ContactRefused as exc:
            p.done(ok=False, error=exc.code)
            return
        p.done(remote_id=remote_id)

    def _tags(self, remote_id: str, names: Sequence[str]) -> None:
        """Make the contact's tags exactly ``names``: attach missing ones, delete other join rows."""
        wanted = {self.catalog.tag_id(n): n for n in names}
        rows = self.transport.request("GET", f"/contacts/{remote_id}/contactTags").json().get("contactTags") or []
        have = {str(r["tag"]): str(r["id"]) for r in rows}
        for tag_id in wanted.keys() - have.keys():
            body = {"contactTag": {"contact": remote_id, "tag": tag_id}}
            self.transport.request("POST", "/contactTags", json=body)
        for tag_id in have.keys() - wanted.keys():
            try:
                self.transport.request("DELETE", f"/contactTags/{have[tag_id]}")
            except FatalProviderError as exc:
                if exc.status != 404:  # removed meanwhile
                    raise

    # -- bulk import --------------------------------------------------------------------------------
    def _import(self, plans: list[Plan]) -> None:
        top = self._top if self._top is not None else self._top_id()
        rows = [self._import_row(p) for p in plans]
        answer = self.transport.request("POST", "/import/bulk_import", json={"contacts": rows}).json()
        flags = {str(k).lower(): v for k, v in answer.items()} if isinstance(answer, dict) else {}
        if str(flags.get("success")) != "1" or not flags.get("batchid"):  # "Success" or "success" [SPEC]
            raise RetryableError(f"{PROVIDER} POST /import/bulk_import -> not queued", provider=PROVIDER)
        failed = self._await(str(flags["batchid"]))
        for index, reason in failed.items():
            if 0 <= index < len(plans):
                plans[index].done(ok=False, error=f"import_failed: {reason}")
        waiting = {p.request.email.strip().lower(): p for p in plans if p.result is None}
        self._resolve_ids(waiting, top)

    def _top_id(self) -> int:
        """The newest contact id before the first import: every contact an import creates gets a higher one.

        Later imports start from the highest id the last one read back; one that is out of date only
        makes the scan read a few more contacts.
        """
        params = {"orders[id]": "DESC", "limit": 1}
        contacts = self.transport.request("GET", "/contacts", params=params).json().get("contacts") or []
        return max((int(c["id"]) for c in contacts if str(c.get("id", "")).isdigit()), default=0)

    def _import_row(self, p: Plan) -> dict[str, Any]:
        row: dict[str, Any] = {"email": p.contact["email"]}
        for key, name in _NAMES:
            if key in p.contact:
                row[name] = p.contact[key]
        if p.values:
            row["fields"] = [{"id": int(fid), "value": v} for fid, v in p.values.items()]
        if p.tags:
            row["tags"] = list(p.tags)
        if p.status == "1":
            row["subscribe"] = [{"listid": int(self.list_id)}]
        elif p.status == "2":
            row["unsubscribe"] = [{"listid": int(self.list_id)}]
        return row

    def _await(self, batch_id: str) -> dict[int, str]:
        """Poll ``/import/info`` until the import is done; index -> reason for each refused contact."""
        waited = 0.0
        while True:
            info = self.transport.request("GET", "/import/info", params={"batchId": batch_id}).json()
            if str(info.get("status", "completed")).lower() in ("completed", "complete", "done", "finished"):
                break
            if waited >= IMPORT_DEADLINE_S:
                raise RetryableError(f"{PROVIDER} bulk import still running after {waited:.0f} s", provider=PROVIDER)
            self._sleep(self._poll_s)
            waited += max(self._poll_s, 0.001)
        out: dict[int, str] = {}
        for item in info.get("failureReasons") or ():
            if isinstance(item, dict) and str(item.get("index", "")).isdigit():
                out[int(item["index"])] = str(item.get("reason") or "refused")[:80]
        return out

    def _resolve_ids(self, waiting: dict[str, Plan], top: int) -> None:
        """The imported contacts' ids: new ones by an id scan above ``top``, existing ones by email."""
        after = top
        while waiting:
            params = [("limit", 100), ("orders[id]", "ASC"), ("id_greater", after)]
            contacts = self.transport.request("GET", "/contacts", params=params).json().get("contacts") or []
            for c in contacts:
                p = waiting.pop(str(c.get("email", "")).strip().lower(), None)
                if p is not None:
                    p.done(remote_id=str(c["id"]))
                after = max(after, int(c["id"]))
            if len(contacts) < 100:
                break
        self._top = after
        for email, p in list(waiting.items()):  # an address that was already a contact: look it up
            found = self.transport.request("GET", "/contacts", params={"email": email}).json().get("contacts") or []
            if found:
                p.done(remote_id=str(found[0]["id"]))
            else:
                p.done(ok=False, error="import_missing", retryable=True)
