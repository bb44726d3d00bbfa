"""The emulator's Communication Preferences: v3 (definitions, status, subscribe, unsubscribe) and v4.

https://developers.hubspot.com/docs/api-reference/2026-03/communication-preferences/guide: v3 never
resubscribes an opted-out contact; v4 ``unsubscribe-all`` opts out of all email; the v4 batch calls
need Marketing Hub Enterprise (403 otherwise). Every v4 status call needs ``channel=EMAIL`` (required in the v4
spec, Communication Preferences/Subscriptions v4). An address in ``refused`` (the ``refuse_subscriber`` knob) is
refused by every v4 status call, as HubSpot's error shape would say it of a malformed or unknown address; a batch
call holding it is refused whole. v3 is not affected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote

from adapters._emulator import Request, Response
from adapters.hubspot._emulator_data import SUBSCRIPTIONS, Portal, iso_ms
from adapters.hubspot._emulator_wire import error

BATCH_MAX: Final = 100
# v4 says NOT_SPECIFIED / SUBSCRIBED / UNSUBSCRIBED (PublicStatus, PublicWideStatus); v3 says NOT_SUBSCRIBED
V4_STATUS: Final = {"NOT_SUBSCRIBED": "UNSUBSCRIBED", "SUBSCRIBED": "SUBSCRIBED", "NOT_SPECIFIED": "NOT_SPECIFIED"}


class Preferences:
    def __init__(
        self, portal: Portal, *, enterprise: Callable[[], bool], refused: Callable[[], Mapping[str, int]] = dict
    ) -> None:
        self.portal = portal
        self._enterprise = enterprise
        self._refused = refused  # address -> the status v4 refuses it with (400 or 404)

    def refusal(self, *emails: str) -> Response | None:
        """The error v4 answers for the first refused address among ``emails``, naming it; None when none is."""
        refused = self._refused()
        for email in emails:
            status = refused.get(email.strip().lower())
            if status == 404:
                return error(404, f"No subscriber found for {email}", "OBJECT_NOT_FOUND")
            if status is not None:
                detail = {"message": f"Invalid email address: {email}", "code": "INVALID_EMAIL",
                          "context": {"subscriberIdString": [email]}}  # fmt: skip
                return error(status, f"Invalid email address: {email}", "VALIDATION_ERROR", errors=[detail])
        return None

    @property
    def enterprise(self) -> bool:
        return self._enterprise()

    def definitions(self, request: Request) -> Response:
        now = iso_ms(self.portal.now_ms())
        defs = [
            {
                "id": sid,
                "name": name,
                "description": name,
                "purpose": "Marketing",
                "communicationMethod": "Email",
                "isActive": True,
                "isDefault": sid == "1001",
                "isInternal": False,
                "createdAt": now,
                "updatedAt": now,
            }
            for sid, name in SUBSCRIPTIONS
        ]
        return Response.json({"subscriptionDefinitions": defs})

    def v3_status_of(self, email: str, sub_id: str, status: str) -> dict[str, Any]:
        name = dict(SUBSCRIPTIONS)[sub_id]
        wide = self.portal.optout(email)
        return {
            "id": sub_id,
            "name": name,
            "description": name,
            "status": status,
            "sourceOfStatus": "PORTAL_WIDE_STATUS" if wide else "SUBSCRIPTION_STATUS",
        }

    def v3_status(self, request: Request) -> Response:
        assert request.match is not None
        email = unquote(request.match["email"])
        statuses = self.portal.statuses(email)
        return Response.json(
            {
                "recipient": email,
                "subscriptionStatuses": [self.v3_status_of(email, s, st) for s, st in statuses.items()],
            }
        )

    def v3_change(self, request: Request, status: str) -> Response:
        body = request.json() or {}
        email, sub_id = str(body.get("emailAddress") or ""), str(body.get("subscriptionId") or "")
        if not email or sub_id not in dict(SUBSCRIPTIONS):
            return error(400, "emailAddress and a known subscriptionId are required", "VALIDATION_ERROR")
        current = self.portal.statuses(email)[sub_id]
        if status == "SUBSCRIBED" and (self.portal.optout(email) or current == "NOT_SUBSCRIBED"):
            # v3 never resubscribes an opted-out contact [providers/hubspot.md, Unsubscribes]
            return error(400, f"{email} has opted out of email and cannot be resubscribed", "VALIDATION_ERROR")
        if current == status:
            word = "unsubscribed from" if status == "NOT_SUBSCRIBED" else "subscribed to"
            return error(400, f"{email} is already {word} subscription {sub_id}", "VALIDATION_ERROR")
        self.portal.set_subscription(email, sub_id, status)
        return Response.json(self.v3_status_of(email, sub_id, status))

    def v3_unsubscribe(self, request: Request) -> Response:
        return self.v3_change(request, "NOT_SUBSCRIBED")

    def v3_subscribe(self, request: Request) -> Response:
        return self.v3_change(request, "SUBSCRIBED")

    def v4_rows(self, email: str) -> list[dict[str, Any]]:
        now = iso_ms(self.portal.now_ms())
        return [
            {
                "subscriberIdString": email,
                "subscriptionId": int(sid),
                "subscriptionName": dict(SUBSCRIPTIONS)[sid],
                "status": V4_STATUS[status],
                "channel": "EMAIL",
                "source": "API",
                "timestamp": now,
            }
            for sid, status in self.portal.statuses(email).items()
        ]

    @staticmethod
    def v4_envelope(results: list[Any], started: int) -> Response:
        return Response.json(
            {"status": "COMPLETE", "results": results, "startedAt": iso_ms(started), "completedAt": iso_ms(started)}
        )

    def v4_statuses(self, request: Request) -> Response:
        assert request.match is not None
        if request.arg("channel") != "EMAIL":
            return error(400, "channel=EMAIL is required", "VALIDATION_ERROR")
        email = unquote(request.match["email"])
        return self.refusal(email) or self.v4_envelope(self.v4_rows(email), self.portal.now_ms())

    def v4_wide_status(self, request: Request) -> Response:
        assert request.match is not None
        if request.arg("channel") != "EMAIL":
            return error(400, "channel=EMAIL is required", "VALIDATION_ERROR")
        email = unquote(request.match["email"])
        if refused := self.refusal(email):
            return refused
        rows = []
        if self.portal.optout(email):  # empty unless the contact opted out of everything
            rows.append(
                {
                    "subscriberIdString": email,
                    "channel": "EMAIL",
                    "status": "UNSUBSCRIBED",
                    "wideStatusType": "PORTAL_WIDE",
                    "timestamp": iso_ms(self.portal.now_ms()),
                }
            )
        return self.v4_envelope(rows, self.portal.now_ms())

    def v4_unsubscribe_all(self, request: Request) -> Response:
        assert request.match is not None
        if request.arg("channel") != "EMAIL":
            return error(400, "channel=EMAIL is required", "VALIDATION_ERROR")
        email = unquote(request.match["email"])
        if refused := self.refusal(email):
            return refused
        self.portal.unsubscribe_all(email)
        return self.v4_envelope(self.v4_rows(email), self.portal.now_ms())

    def v4_batch_wide_statuses(self, request: Request) -> Response:
        if not self.enterprise:
            return error(403, "This endpoint requires Marketing Hub Enterprise.", "MISSING_SCOPES")
        if request.arg("channel") != "EMAIL":
            return error(400, "channel=EMAIL is required", "VALIDATION_ERROR")
        inputs = (request.json() or {}).get("inputs") or []
        if not isinstance(inputs, list) or len(inputs) > BATCH_MAX:
            return error(400, f"inputs must be an array of at most {BATCH_MAX} addresses", "VALIDATION_ERROR")
        if refused := self.refusal(*map(str, inputs)):
            return refused
        now = iso_ms(self.portal.now_ms())
        results = [
            {"subscriberIdString": str(email), "wideStatuses": [
                {"subscriberIdString": str(email), "channel": "EMAIL", "wideStatusType": "PORTAL_WIDE",
                 "status": "UNSUBSCRIBED" if self.portal.optout(str(email)) else "SUBSCRIBED", "timestamp": now}]}
            for email in inputs
        ]  # fmt: skip
        return self.v4_envelope(results, self.portal.now_ms())

    def v4_batch_unsubscribe_all(self, request: Request) -> Response:
        if not self.enterprise:
            return error(403, "This endpoint requires Marketing Hub Enterprise.", "MISSING_SCOPES")
        if request.arg("channel") != "EMAIL":
            return error(400, "channel=EMAIL is required", "VALIDATION_ERROR")
        inputs = (request.json() or {}).get("inputs") or []
        if not isinstance(inputs, list) or len(inputs) > BATCH_MAX:
            return error(400, f"inputs must be an array of at most {BATCH_MAX} addresses", "VALIDATION_ERROR")
        if refused := self.refusal(*map(str, inputs)):
            return refused
        results = []
        for email in inputs:
            self.portal.unsubscribe_all(str(email))
            results.append({"subscriberIdString": str(email), "statuses": self.v4_rows(str(email))})
        return self.v4_envelope(results, self.portal.now_ms())
