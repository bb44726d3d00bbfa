"""The Mailchimp emulator's wire helpers: query parameters, problem+json answers, batch archives, seed data."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import tarfile
import uuid
from collections.abc import Mapping
from typing import Any, Final

from adapters._emulator import DROP, Request, Response
from adapters.mailchimp._store import WRITABLE_STATUSES, Problem, invalid

_FIRST: Final = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun")
_LAST: Final = ("Silva", "Berg", "Okafor", "Novak", "Kaur", "Meyer", "Rossi", "Tanaka", "Haddad", "Lund")
_COMPANIES: Final = ("Acme Ltd", "Globex", "Initech", "Umbrella plc", "Hooli", "")


def fault_response(fault: Any) -> Response | None:
    if fault.status == DROP:
        return None
    if fault.body is None:  # Mailchimp throttles with a bare 403/429: no body at all
        return Response(status=int(fault.status), body=b"", headers=dict(fault.headers))
    headers = {"Content-Type": "application/problem+json; charset=utf-8", **fault.headers}
    return Response(status=int(fault.status), body=json.dumps(fault.body).encode(), headers=headers)


def problem_response(problem: Problem) -> Response:
    instance = str(uuid.uuid4())
    return Response(
        status=problem.status,
        body=json.dumps(problem.body(instance)).encode(),
        headers={"Content-Type": "application/problem+json; charset=utf-8", "X-Request-Id": instance},
    )


def ok(payload: Any, status: int = 200) -> Response:
    return Response.json(payload, status, {"X-Request-Id": str(uuid.uuid4())})


def int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"The value for {name} must be an integer.") from None
    if value < 0:
        raise invalid(f"The value for {name} must be positive.")
    return value


def status_value(value: Any, name: str, *, required: bool) -> str:
    if value is None or value == "":
        if required:
            raise invalid(
                "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
                field_name=name,
                message="This value should not be blank.",
            )
        return ""
    if value not in WRITABLE_STATUSES:
        raise invalid(
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
            field_name=name,
            message="Status must be one of subscribed, unsubscribed, cleaned, pending, transactional.",
        )
    return str(value)


def tarball(batch_id: str, results: list[dict[str, Any]]) -> bytes:
    """A gzipped tar of JSON files, "a single file per operation", each an array of results [BULK]
    (https://mailchimp.com/developer/marketing/guides/run-async-requests-batch-endpoint/), under a directory.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        folder = tarfile.TarInfo(batch_id)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for result in results:
            data = json.dumps([result]).encode()
            info = tarfile.TarInfo(f"{batch_id}/{uuid.uuid4().hex}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def batch_error(email: str, text: str, code: str, field: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "email_address": email,
        "error": text,
        "error_code": code,
        "field": (field or {}).get("field", ""),
        "field_message": (field or {}).get("message", ""),
    }


def bool_param(request: Request, name: str) -> bool:
    """Boolean query values are read case-insensitively as true/1/false/0 (Mailchimp changelog 2021-03-02)."""
    raw = request.arg(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in {"true", "1"}:
        return True
    if raw.lower() in {"false", "0"}:
        return False
    raise invalid(f"The value for {name} must be a boolean.")


def query_time(raw: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError:
        raise invalid(f"The value for {name} must be a valid ISO 8601 date.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def select_fields(
    payload: dict[str, Any],
    fields: str | None,
    exclude: str | None,
    *,
    keys: frozenset[str] = frozenset(),
    item_keys: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Apply Mailchimp's ``fields`` / ``exclude_fields`` (comma-separated dotted paths).

    A path the resource does not have is refused, as Mailchimp does ("will throw an error if a field isn't
    valid in your request": https://mailchimp.com/developer/marketing/docs/methods-parameters/#partial-responses).
    ``keys`` are top-level keys the resource documents besides those in ``payload``; ``item_keys`` those of the
    objects in its collection (``members``), which an empty page cannot show. Maps below that (``merge_fields``)
    are free-form and not checked.
    """
    if not fields and not exclude:
        return payload
    wanted = [f.strip() for f in (fields or "").split(",") if f.strip()]
    dropped = [f.strip() for f in (exclude or "").split(",") if f.strip()]
    for path in (*wanted, *dropped):
        if not _known_field(payload, path, keys=keys, item_keys=item_keys):
            raise invalid(f"The field {path} is not valid for this resource.")

    def keep(path: str) -> bool:
        if any(path == d or path.startswith(d + ".") for d in dropped):
            return False
        return not wanted or any(path == w or path.startswith(w + ".") or w.startswith(path + ".") for w in wanted)

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {
                k: walk(v, f"{path}.{k}" if path else k) for k, v in value.items() if keep(f"{path}.{k}" if path else k)
            }
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        return value

    result: dict[str, Any] = walk(payload, "")
    return result


def _known_field(payload: Mapping[str, Any], path: str, *, keys: frozenset[str], item_keys: frozenset[str]) -> bool:
    head, _, rest = path.partition(".")
    if head not in payload and head not in keys:
        return False
    value = payload.get(head)
    sub = rest.partition(".")[0]
    if not sub or not isinstance(value, list):
        return not sub or isinstance(value, dict) or head in keys
    seen = {k for item in value if isinstance(item, dict) for k in item}
    return sub in seen or sub in item_keys


def seed_member(i: int) -> tuple[str, dict[str, Any], list[str]]:
    """A realistic, deterministic member: mostly subscribed, some opted out, pending or cleaned."""
    status = "subscribed"
    if i % 20 == 7:
        status = "unsubscribed"
    elif i % 20 == 11:
        status = "pending"
    elif i % 50 == 13:
        status = "cleaned"
    elif i % 50 == 17:
        status = "transactional"
    tags = [t for t, on in (("customer", i % 3 == 0), ("vip", i % 10 == 0), ("newsletter", i % 4 == 1)) if on]
    merge: dict[str, Any] = {
        "FNAME": _FIRST[i % len(_FIRST)],
        "LNAME": _LAST[(i // len(_FIRST)) % len(_LAST)],
        "PHONE": f"+44207946{i % 10000:04d}" if i % 5 else "",
        "COMPANY": _COMPANIES[i % len(_COMPANIES)],
    }
    if i % 7 == 0:
        merge["ADDRESS"] = {
            "addr1": f"{i} High St",
            "city": "London",
            "state": "",
            "zip": "N1 9GU",
            "country": "GB",
        }
    return status, merge, tags
