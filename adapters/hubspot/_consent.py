"""Unsubscribes through Communication Preferences: ``hs_email_optout`` itself is read-only in HubSpot.

https://developers.hubspot.com/docs/api-reference/2026-03/communication-preferences/guide: v4
``unsubscribe-all`` opts an address out of all email (batch form on Marketing Hub Enterprise only);
the v3 API, the fallback where v4 is missing, unsubscribes one subscription type at a time and can
never resubscribe. crmsync only ever unsubscribes: there is no subscribe call here at all.

v4 is judged missing only by answers about the endpoint (``_V4Route``), never by an answer about one address:
a 400 for a malformed address, or a 404 naming it, is that address's failure and v4 stays in use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Final

from adapters.base import ProviderRecord
from adapters.errors import AuthError, FatalProviderError, ProviderError, RetryableError
from adapters.hubspot._client import BadRequest, HubSpotClient, NotFound
from adapters.hubspot._read import parse_time, read_body

OPTOUT: Final = "hs_email_optout"

V4: Final = "/communication-preferences/v4/statuses"
CHANNEL: Final = (("channel", "EMAIL"),)
BATCH_MAX: Final = 100
HISTORY_BATCH: Final = 50  # a batch read asking for propertiesWithHistory takes at most 50 [providers/hubspot.md]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))


# Answers about the endpoint, not the address [ERR]: 403 is the token's scopes or the portal's tier (the batch
# calls need Marketing Hub Enterprise), 405 a method the route does not have, 501 a call the server does not serve.
# A 404 is about the route unless HubSpot's JSON error names the record (NotFound.names_record).
ENDPOINT_REFUSALS: Final = frozenset({403, 405, 501})


def _endpoint_refused(exc: ProviderError) -> bool:
    if exc.status == 404:
        return not (isinstance(exc, NotFound) and exc.names_record)
    return exc.status in ENDPOINT_REFUSALS


def _about_the_address(exc: ProviderError) -> bool:
    """A refusal of this one address (400 malformed, 404 naming it, 409, 422, ...): not a bad token, not the route."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status != 401 and not _endpoint_refused(exc)


class _V4Route:
    """Whether one v4 call is served on this portal, judged from its answers.

    Refused as an endpoint before it ever answered: off at once. After it answered, one such refusal is the
    failure of that call only, and a second before it answers again turns it off (a scope revoked, a tier
    changed). A refusal about an address never turns it off.
    """

    def __init__(self) -> None:
        self.works: bool | None = None  # None: not tried yet on this portal
        self._strikes = 0

    @property
    def off(self) -> bool:
        return self.works is False

    def answered(self) -> None:
        self.works, self._strikes = True, 0

    def turned_off_by(self, exc: ProviderError) -> bool:
        """True when this answer turns the call off (use the fallback now); False when the error stands."""
        if not _endpoint_refused(exc):
            return False
        self._strikes += 1
        if self.works is None or self._strikes >= 2:
            self.works = False
        return self.off


class Unsubscriber:
    def __init__(self, client: HubSpotClient, *, subscription_id: str | None = None) -> None:
        self._client = client
        self._subscription_id = subscription_id
        self._batch = _V4Route()
        self._v4 = _V4Route()
        self._definitions: list[str] | None = None

    def unsubscribe(self, emails: Sequence[str], *, fresh: Iterable[str] = ()) -> set[str]:
        """Opt each address out of all email; answers the addresses that failed (retry next cycle)."""
        if not emails:
            return set()
        failed: set[str] = set()
        if not self._batch.off:
            outcome = self._try_batch(emails)
            if outcome is not None:
                failed, emails = outcome  # the rest: chunks refused for an address they hold go one by one
        known_new = set(fresh)
        todo = [e for e in emails if e in known_new] + self._not_yet_opted_out(
            [e for e in emails if e not in known_new]
        )
        for email in todo:
            try:
                self._one(email)
            except AuthError as exc:
                if exc.status == 401:
                    raise
                failed.add(email)
            except (FatalProviderError, RetryableError):  # this address waits for the next cycle
                failed.add(email)
        return failed

    def _try_batch(self, emails: Sequence[str]) -> tuple[set[str], list[str]] | None:
        """The addresses the batch call refused, and those of chunks it refused whole for an address they hold
        (to go one by one, so that only that address fails); None where the portal has no batch call.
        """
        refused: set[str] = set()
        singly: list[str] = []
        for chunk in _chunks(list(emails), BATCH_MAX):
            try:
                _, data = self._client.raw(
                    "POST", f"{V4}/batch/unsubscribe-all", query=CHANNEL, body={"inputs": list(chunk)}
                )
            except (AuthError, FatalProviderError) as exc:
                if self._batch.turned_off_by(exc):
                    return None
                if not _about_the_address(exc):
                    raise
                singly += chunk
                continue
            self._batch.answered()
            if (data or {}).get("errors"):  # partial: whoever has no result row waits for the next cycle
                done = {str(r.get("subscriberIdString") or "").lower() for r in (data or {}).get("results") or []}
                refused |= {e for e in chunk if e.lower() not in done}
        return refused, singly

    def _not_yet_opted_out(self, emails: list[str]) -> list[str]:
        """One batch read spares a call per address already opted out."""
        if not emails:
            return []
        opted: set[str] = set()
        for chunk in _chunks(emails, BATCH_MAX):
            body = read_body(chunk, ["email", OPTOUT], by_email=True)
            _, data = self._client.call("POST", "/crm/v3/objects/contacts/batch/read", self._client.batch.read, body)
            for row in (data or {}).get("results") or []:
                props = row.get("properties") or {}
                if str(props.get("hs_email_optout") or "").lower() == "true":
                    opted.add(str(props.get("email") or "").lower())
        return [e for e in emails if e not in opted]

    def _one(self, email: str) -> None:
        if not self._v4.off:
            try:
                self._client.raw("POST", f"{V4}/{{email}}/unsubscribe-all", path_params={"email": email}, query=CHANNEL)
            except (AuthError, FatalProviderError) as exc:
                if not self._v4.turned_off_by(exc):
                    raise  # about this address (or v4's first refusal after it worked): the address waits
            else:
                self._v4.answered()
                return
        for subscription in self._subscriptions():
            body = {"emailAddress": email, "subscriptionId": subscription}
            try:
                self._client.call(
                    "POST", "/communication-preferences/v3/unsubscribe", self._client.status_api.unsubscribe, body
                )
            except BadRequest:
                continue  # v3 answers 400 when the address is already unsubscribed from that type

    def _subscriptions(self) -> list[str]:
        if self._subscription_id:
            return [self._subscription_id]
        if self._definitions is None:
            _, data = self._client.call(
                "GET", "/communication-preferences/v3/definitions", self._client.definition_api.get_page
            )
            rows = (data or {}).get("subscriptionDefinitions") or []
            self._definitions = [str(r["id"]) for r in rows if r.get("isActive", True) and not r.get("isInternal")]
        return self._definitions


class ConsentReader:
    """Fills ``hs_email_optout`` from Communication Preferences where a portal does not return the property.

    HubSpot itself returns it with every record (so this costs nothing there); a portal or implementation
    without it would otherwise hide every opt-out. One batch read a page on Enterprise, else one call an address.
    """

    def __init__(self, client: HubSpotClient) -> None:
        self._client = client
        self._batch = _V4Route()
        self._v4 = _V4Route()

    def enrich(self, records: Sequence[ProviderRecord]) -> list[ProviderRecord]:
        blind = {r.remote_id: _email(r) for r in records if not r.deleted and _email(r) and OPTOUT not in _props(r)}
        if not blind:
            return list(records)
        opted = self._opted_out(sorted(set(blind.values())))
        out = []
        for record in records:
            email = blind.get(record.remote_id)
            if email is None:
                out.append(record)
                continue
            props = {**_props(record), OPTOUT: "true" if email in opted else "false"}
            out.append(replace(record, data={**record.data, "properties": props}))
        return out

    def _opted_out(self, emails: list[str]) -> set[str]:
        opted: set[str] = set()
        singly = emails
        if not self._batch.off:
            singly = []
            for chunk in _chunks(emails, BATCH_MAX):
                try:
                    _, data = self._client.raw(
                        "POST", f"{V4}/batch/unsubscribe-all/read", query=CHANNEL, body={"inputs": list(chunk)}
                    )
                except (AuthError, FatalProviderError) as exc:
                    if self._batch.turned_off_by(exc):
                        return {e for e in emails if self._one(e)}
                    if not _about_the_address(exc):
                        raise
                    singly += chunk  # refused whole for an address it holds: one by one
                    continue
                self._batch.answered()
                for row in (data or {}).get("results") or []:
                    if any(_not_subscribed(w) for w in row.get("wideStatuses") or ()):
                        opted.add(str(row.get("subscriberIdString") or "").lower())
        return opted | {e for e in singly if self._one(e)}

    def _one(self, email: str) -> bool:
        if not self._v4.off:
            try:
                _, data = self._client.raw(
                    "GET", f"{V4}/{{email}}/unsubscribe-all", path_params={"email": email}, query=CHANNEL
                )
            except (AuthError, FatalProviderError) as exc:
                if not self._v4.turned_off_by(exc) and not _about_the_address(exc):
                    raise
                # v4 refused this address (or is off now): v3 answers for it, v4 stays for the others
            else:
                self._v4.answered()
                return any(_not_subscribed(w) for w in (data or {}).get("results") or ())
        try:
            _, data = self._client.call(
                "GET",
                "/communication-preferences/v3/status/email/{emailAddress}",
                self._client.status_api.get_email_status,
                email,
            )
        except NotFound:  # no subscription record for this address: nothing says it opted out
            return False
        statuses = (data or {}).get("subscriptionStatuses") or []
        wide = any(s.get("sourceOfStatus") == "PORTAL_WIDE_STATUS" and _not_subscribed(s) for s in statuses)
        return wide or (bool(statuses) and all(_not_subscribed(s) for s in statuses))


def opt_out_times(client: HubSpotClient, remote_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """When each contact opted out of all email, from ``hs_email_optout``'s history: a record's own time moves
    with any later edit. Contacts not opted out now, or without a history, are left out.
    """
    out: dict[str, dt.datetime] = {}
    for chunk in _chunks(list(dict.fromkeys(remote_ids)), HISTORY_BATCH):
        body = read_body(chunk, [OPTOUT], history=[OPTOUT])
        _, data = client.call("POST", "/crm/v3/objects/contacts/batch/read", client.batch.read, body)
        rows = data.get("results") if isinstance(data, dict) else None
        for row in rows if isinstance(rows, list) else ():  # a malformed answer times nobody
            history = row.get("propertiesWithHistory") if isinstance(row, dict) else None
            versions = history.get(OPTOUT) if isinstance(history, dict) else None
            since = _opted_out_since(versions if isinstance(versions, list) else [])
            if since is not None and row.get("id") is not None:
                out[str(row["id"])] = since
    return out


def _opted_out_since(versions: Sequence[Any]) -> dt.datetime | None:
    """The first version of the current run of "true"s; None when the newest version is not "true".

    HubSpot lists versions newest first. They are sorted here by time all the same (the order is not
    documented), oldest first, and versions of one millisecond keep HubSpot's order between them.
    """
    timed = []
    for version in versions:
        try:
            at = parse_time(version.get("timestamp")) if isinstance(version, dict) else None
        except ValueError:
            at = None
        if at is not None:
            timed.append((at, str(version.get("value")).strip().lower() == "true"))
    since = None
    for at, opted_out in sorted(reversed(timed), key=lambda v: v[0]):
        since = (since or at) if opted_out else None
    return since


def _props(record: ProviderRecord) -> dict[str, Any]:
    props = record.data.get("properties")
    return dict(props) if isinstance(props, dict) else {}


def _email(record: ProviderRecord) -> str:
    return str(_props(record).get("email") or "").strip().lower()


# v3 says NOT_SUBSCRIBED; v4 (PublicStatus, PublicWideStatus) says UNSUBSCRIBED. Either is an opt-out wherever read.
OPTED_OUT: Final = frozenset({"NOT_SUBSCRIBED", "UNSUBSCRIBED"})


def _not_subscribed(status: Any) -> bool:
    return isinstance(status, dict) and str(status.get("status") or "").strip().upper() in OPTED_OUT
