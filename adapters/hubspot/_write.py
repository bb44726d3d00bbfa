"""Writing contacts: batch upsert by email and batch update by id, 100 a call, 207 and 409 handled.

providers/hubspot.md "Batch upsert and partial failures": a 207 is a success with ``errors``; results
are matched to inputs by ``objectWriteTraceId``, else email (upsert) or id (update); an input with
neither a result nor an error is looked up by email (one batch read), never guessed by position. A 409
``Contact already exists. Existing ID: <id>`` (or a 400 of one bad record) fails the whole batch, so the
batch is split in halves until the record is alone; a lone 409 writes to the existing contact and links
to it. A merged-away id is followed to its survivor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import WriteRequest, WriteResult
from adapters.errors import FatalProviderError, RetryableError
from adapters.hubspot._client import PROPERTY_CODES, BadRequest, DuplicateContact, HubSpotClient, NotFound
from adapters.hubspot._consent import Unsubscriber
from adapters.hubspot._read import read_body

log = logging.getLogger(__name__)

BATCH_MAX: Final = 100  # batch/upsert, batch/update, batch/read inputs [GUIDE]
OPTOUT: Final = "hs_email_optout"
STAGE: Final = "lifecyclestage"
# Computed or read-only in HubSpot: never sent (a write naming one fails the whole batch) [SPEC].
READ_ONLY: Final = frozenset(
    {OPTOUT, "hs_object_id", "createdate", "lastmodifieddate", "hs_merged_object_ids", "hs_additional_emails"}
)
# Refusals that concern every record (the portal lacks a property): the call fails as a whole.
CONFIG_CODES: Final = PROPERTY_CODES
FINAL_CATEGORIES: Final = frozenset({"VALIDATION_ERROR", "OBJECT_NOT_FOUND", "INVALID_EMAIL", "CONFLICT"})


def _text(value: Any) -> str:
    """HubSpot property values are strings; ``""`` clears one."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | set | list | tuple):
        return ";".join(sorted(str(v) for v in value))
    return str(value)


@dataclass(slots=True)
class _Item:
    index: int
    request: WriteRequest
    properties: dict[str, str]
    unsubscribe: bool
    target: str | None  # the record id to update, None to upsert by email

    @property
    def email(self) -> str:
        return self.request.email.strip().lower()


def _item(index: int, request: WriteRequest) -> _Item:
    raw = request.fields.get("properties") if isinstance(request.fields.get("properties"), Mapping) else {}
    props = {k: _text(v) for k, v in dict(raw or {}).items() if k not in READ_ONLY and not k.startswith(OPTOUT)}
    props["email"] = request.email.strip().lower()
    unsubscribe = _text(dict(raw or {}).get(OPTOUT)).lower() == "true"
    return _Item(index, request, props, unsubscribe, request.remote_id)


CONTEXT_KEYS: Final = ("ids", "emails", "id", "email")  # where a batch error lists the records it is about


def _listed(value: Any) -> list[Any]:
    """A context entry as a list: the spec's ``[str]``, or a lone value."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _results(body: Any) -> list[dict[str, Any]]:
    """An answer's result rows that name a record: a row without an id is no result (never a contact "None")."""
    rows = body.get("results") if isinstance(body, Mapping) else None
    return [r for r in rows or () if isinstance(r, dict) and r.get("id") not in (None, "")]


def _error_code(error: Mapping[str, Any]) -> str:
    inner = [str(e.get("code")) for e in error.get("errors") or () if isinstance(e, Mapping) and e.get("code")]
    category = str(error.get("category") or "ERROR")
    return f"{category}:{inner[0]}" if inner else category


def _failed(item: _Item, code: str, *, retryable: bool) -> WriteResult:
    return WriteResult(ref=item.request.ref, ok=False, remote_id=item.target, error=code, retryable=retryable)


class Writer:
    def __init__(self, client: HubSpotClient, unsubscriber: Unsubscriber) -> None:
        self._client = client
        self._unsubscriber = unsubscriber
        self._missing: set[str] = set()  # properties this portal refused as unknown or read-only
        self._stuck: dict[str, tuple[int, str]] = {}  # record id -> (request index, the stage it refused)

    def write(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        items = [_item(i, r) for i, r in enumerate(requests)]
        for item in items:
            for name in self._missing:
                item.properties.pop(name, None)
        done: dict[int, WriteResult] = {}
        created: set[int] = set()
        seen: set[str] = set()
        for item in items:  # HubSpot refuses a batch naming one address twice
            if item.email in seen:
                done[item.index] = _failed(item, "DUPLICATE_IN_BATCH", retryable=True)
            seen.add(item.email)
        todo = [i for i in items if i.index not in done]
        self._stuck = {}
        self._split([i for i in todo if i.target], self._update, done, created)
        self._split([i for i in todo if not i.target], self._upsert, done, created)
        self._move_stages_back(items, done)
        self._unsubscribe([i for i in items if i.unsubscribe and done[i.index].ok], done, created)
        return [done[i.index] for i in items]

    # -- batches and their halves --------------------------------------------------------------
    def _split(
        self,
        items: list[_Item],
        send: Callable[[list[_Item], dict[int, WriteResult], set[int]], None],
        done: dict[int, WriteResult],
        created: set[int],
    ) -> None:
        for start in range(0, len(items), BATCH_MAX):
            self._bisect(items[start : start + BATCH_MAX], send, done, created)

    def _bisect(
        self,
        items: list[_Item],
        send: Callable[[list[_Item], dict[int, WriteResult], set[int]], None],
        done: dict[int, WriteResult],
        created: set[int],
    ) -> None:
        if not items:
            return
        try:
            send(items, done, created)
            return
        except DuplicateContact as exc:
            if len(items) == 1:
                self._adopt(items[0], exc, done)
                return
        except BadRequest as exc:
            if CONFIG_CODES & set(exc.codes):
                if not self._drop(exc.properties, items):
                    raise
                self._bisect(items, send, done, created)  # again, without the portal's missing properties
                return
            if len(items) == 1:
                code = f"VALIDATION_ERROR:{exc.codes[0]}" if exc.codes else "VALIDATION_ERROR"
                done[items[0].index] = _failed(items[0], code, retryable=False)
                return
        half = len(items) // 2  # one record spoilt the whole call: find it with halves
        self._bisect(items[:half], send, done, created)
        self._bisect(items[half:], send, done, created)

    def _drop(self, names: tuple[str, ...], items: list[_Item]) -> bool:
        """A property this portal lacks (or keeps read-only) is left out of writes from now on, loudly once."""
        new = [n for n in names if n not in self._missing and n != "email"]
        if not new:
            return False
        for name in new:
            log.warning("hubspot: the portal refuses property %s (unknown or read-only); writing without it", name)
        self._missing.update(new)
        for item in items:
            for name in new:
                item.properties.pop(name, None)
        return True

    def _adopt(self, item: _Item, exc: DuplicateContact, done: dict[int, WriteResult]) -> None:
        """409 on one record: the address is another contact's; write there and link to it."""
        if exc.existing_id is None or exc.existing_id == item.target:
            done[item.index] = _failed(item, "CONFLICT", retryable=False)
            return
        moved = _Item(item.index, item.request, item.properties, item.unsubscribe, exc.existing_id)
        try:
            self._update([moved], done, set())
        except (DuplicateContact, BadRequest, NotFound):
            done[item.index] = _failed(item, "CONFLICT", retryable=False)

    # -- the two batch calls -------------------------------------------------------------------
    def _upsert(self, items: list[_Item], done: dict[int, WriteResult], created: set[int]) -> None:
        inputs = [
            {"idProperty": "email", "id": i.email, "properties": i.properties, "objectWriteTraceId": str(i.index)}
            for i in items
        ]
        _, body = self._client.call(
            "POST", "/crm/v3/objects/contacts/batch/upsert", self._client.batch.upsert, {"inputs": inputs}
        )
        results = _results(body)
        traced = {str(r["objectWriteTraceId"]): r for r in results if r.get("objectWriteTraceId") is not None}
        by_email = {i.email: traced[str(i.index)] for i in items if str(i.index) in traced}
        for result in results:
            email = str((result.get("properties") or {}).get("email") or "").lower()
            if email:
                by_email.setdefault(email, result)
        failures, unnamed = self._failures(body, items)
        unmatched = [i.email for i in items if i.email not in by_email and i.index not in failures]
        if unmatched and unnamed is None:  # neither a result nor an error names them: ask which contacts hold them
            by_email.update(self._lookup(unmatched))
        for item in items:
            match = by_email.get(item.email)
            if item.index in failures:
                done[item.index] = failures[item.index]
            elif match is None:  # an error naming nobody may be this one's: written, never claimed
                done[item.index] = _failed(item, unnamed or "MISSING_RESULT", retryable=True)
            else:
                done[item.index] = WriteResult(ref=item.request.ref, ok=True, remote_id=str(match.get("id")))
                self._check_stage(item, match)
                if match.get("new"):
                    created.add(item.index)

    # -- lifecycle stages ----------------------------------------------------------------------
    def _check_stage(self, item: _Item, result: Mapping[str, Any]) -> None:
        """HubSpot ignores a backward ``lifecyclestage`` move unless the stage is cleared first [GUIDE]."""
        wanted = item.properties.get(STAGE)
        got = (result.get("properties") or {}).get(STAGE)
        if wanted and got and got != wanted and result.get("id"):
            self._stuck[str(result["id"])] = (item.index, wanted)

    def _move_stages_back(self, items: list[_Item], done: dict[int, WriteResult]) -> None:
        if not self._stuck:
            return
        by_index = {i.index: i for i in items}
        stuck = list(self._stuck.items())
        try:
            for step in ("", None):  # clear, then set: two calls for the whole batch
                inputs = [{"id": rid, "properties": {STAGE: step if step is not None else stage}}
                          for rid, (_, stage) in stuck]  # fmt: skip
                for start in range(0, len(inputs), BATCH_MAX):
                    self._client.call("POST", "/crm/v3/objects/contacts/batch/update", self._client.batch.update,
                                      {"inputs": inputs[start : start + BATCH_MAX]})  # fmt: skip
        except (BadRequest, DuplicateContact, NotFound, RetryableError):
            for _, (index, _) in stuck:
                done[index] = _failed(by_index[index], "LIFECYCLE_NOT_MOVED", retryable=True)

    def _lookup(self, emails: list[str]) -> dict[str, Any]:
        body = read_body(emails, ["email"], by_email=True)
        _, data = self._client.call("POST", "/crm/v3/objects/contacts/batch/read", self._client.batch.read, body)
        found = {}
        for row in _results(data):
            email = str((row.get("properties") or {}).get("email") or "").lower()
            if email in emails:
                found[email] = row
        return found

    def _update(self, items: list[_Item], done: dict[int, WriteResult], created: set[int]) -> None:
        inputs = [{"id": i.target, "properties": i.properties, "objectWriteTraceId": str(i.index)} for i in items]
        _, body = self._client.call(
            "POST", "/crm/v3/objects/contacts/batch/update", self._client.batch.update, {"inputs": inputs}
        )
        results = _results(body)
        by_id = {str(r.get("id")): r for r in results}
        traced = {str(r["objectWriteTraceId"]): r for r in results if r.get("objectWriteTraceId") is not None}
        failures, _ = self._failures(body, items)  # an input no result or error names is looked up by id below
        lost: list[_Item] = []
        for item in items:
            result = traced.get(str(item.index)) or by_id.get(str(item.target))
            if result is not None:  # a traced result may name the survivor of a merge
                done[item.index] = WriteResult(ref=item.request.ref, ok=True, remote_id=str(result.get("id")))
                self._check_stage(item, result)
            elif item.index in failures and not str(failures[item.index].error).startswith("OBJECT_NOT_FOUND"):
                done[item.index] = failures[item.index]
            else:  # not found, or left out (a merged-away id): find the survivor
                lost.append(item)
        for item in lost:
            self._follow(item, done)

    def _follow(self, item: _Item, done: dict[int, WriteResult]) -> None:
        assert item.target is not None
        try:
            _, body = self._client.call(
                "GET",
                "/crm/v3/objects/contacts/{contactId}",
                self._client.basic.get_by_id,
                item.target,
                properties=["email"],
            )
        except NotFound:
            done[item.index] = _failed(item, "OBJECT_NOT_FOUND", retryable=False)
            return
        survivor = str((body or {}).get("id") or "")
        if not survivor or survivor == item.target:
            done[item.index] = _failed(item, "MISSING_RESULT", retryable=True)
            return
        moved = _Item(item.index, item.request, item.properties, item.unsubscribe, survivor)
        self._bisect([moved], self._update, done, set())

    @staticmethod
    def _failures(body: Any, items: list[_Item]) -> tuple[dict[int, WriteResult], str | None]:
        """207 errors tied to inputs, and the code of the first error that names none of them (else None).

        An error names inputs by ``context.objectWriteTraceId``, else by the record ids or addresses it lists
        (``context`` is free-form ``{str: [str]}`` [SPEC StandardError]: ``ids``, ``emails``, ...).
        """
        by_trace = {str(i.index): i for i in items}
        by_key = {**{i.email: i for i in items}, **{str(i.target): i for i in items if i.target}}
        out: dict[int, WriteResult] = {}
        unnamed: str | None = None
        for raw in (body or {}).get("errors") or []:
            error: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            found = error.get("context")
            context: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            code = _error_code(error)
            retryable = str(error.get("category") or "") not in FINAL_CATEGORIES
            named = [by_trace.get(str(t)) for t in _listed(context.get("objectWriteTraceId"))]
            if not any(named):
                keys = [str(k).strip() for name in CONTEXT_KEYS for k in _listed(context.get(name))]
                named = [by_key.get(k.lower()) or by_key.get(k) for k in keys]
            for item in filter(None, named):
                out[item.index] = _failed(item, code, retryable=retryable)
            if not any(named) and unnamed is None:
                unnamed = code
        return out, unnamed

    # -- consent ---------------------------------------------------------------------------------
    def _unsubscribe(self, items: Iterable[_Item], done: dict[int, WriteResult], created: set[int]) -> None:
        wanted = list(items)
        if not wanted:
            return
        fresh = {i.email for i in wanted if i.index in created}
        try:
            failed = self._unsubscriber.unsubscribe([i.email for i in wanted], fresh=fresh)
        except (FatalProviderError, RetryableError):  # the writes stand; the opt-outs wait for the next cycle
            failed = {i.email for i in wanted}
        for item in wanted:
            if item.email in failed:
                result = done[item.index]
                done[item.index] = WriteResult(
                    ref=result.ref, ok=False, remote_id=result.remote_id, error="UNSUBSCRIBE_FAILED", retryable=True
                )
