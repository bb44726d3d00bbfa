"""Webhook bodies and headers from anyone: every adapter answers with a verdict or a clean refusal, never a crash.

The daemon turns WebhookRejected into 401 and ValueError into 400; any other exception would be a 500 with a
traceback, so a body that passes verification but is malformed must still end in one of those two.
"""

from __future__ import annotations

import json
import time
import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import WebhookRejected
from adapters.hubspot.webhooks import sign_v3
from connector.config import load_config_from_mapping
from connector.runtime import build_adapter
from connector.sandbox import running_emulators

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.dictionaries(st.sampled_from(["eventId", "objectId", "subscriptionType", "occurredAt",
                                              "propertyName", "email", "type", "ids", "token", "module"]),
                             json_values, max_size=6), max_size=3).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["type", "fired_at", "data[email]", "data[list_id]", "data[old_email]",
                                     "data[new_email]", "contact[email]", "list", "event", "contact[id]"]),
                    st.text(max_size=20), max_size=6).map(lambda d: urllib.parse.urlencode(d).encode()),
)
headers = st.dictionaries(st.sampled_from(["x-hubspot-signature-v3", "x-hubspot-request-timestamp",
                                           "x-mailchimp-signature", "content-type", "x-hubspot-signature"]),
                          st.text(max_size=40), max_size=4)

SECRETS = {"hubspot": {"client_secret": "hub-secret-123"}, "mailchimp": {"webhook_secret": "mc-secret-123"},
           "zoho": {"notify_token": "zoho-token-123", "notify_url": "http://127.0.0.1:1/webhooks/zoho"},
           "activecampaign": {"webhook_token": "ac-token-123"}, "getresponse": {"webhook_secret": "gr-secret-123"}}
URLS = {"hubspot": "http://127.0.0.1:8080/webhooks/hubspot",
        "mailchimp": "http://127.0.0.1:8080/webhooks/mailchimp?secret=mc-secret-123",
        "zoho": "http://127.0.0.1:8080/webhooks/zoho",
        "activecampaign": "http://127.0.0.1:8080/webhooks/activecampaign?token=ac-token-123",
        "getresponse": "http://127.0.0.1:8080/webhooks/getresponse?secret=gr-secret-123"}

with running_emulators(kinds=None) as _emulators:
    _OPTIONS = {kind: {**emulator.sandbox_options(), **SECRETS[kind]} for kind, emulator in _emulators.items()}
_CONFIG = load_config_from_mapping({"providers": _OPTIONS}, base_dir=__import__("pathlib").Path("/tmp"), environ={})
ADAPTERS = {kind: build_adapter(_CONFIG.provider(kind)) for kind in _OPTIONS}


def _deliver(kind: str, body: bytes, hdrs: dict[str, str]) -> None:
    adapter = ADAPTERS[kind]
    try:
        adapter.verify_webhook(method="POST", url=URLS[kind], headers=hdrs, body=body)
    except WebhookRejected:
        return
    try:
        events = adapter.parse_webhook(headers=hdrs, body=body)
    except (WebhookRejected, ValueError):
        return
    for event in events:
        assert isinstance(event.event_id, str) and event.event_id


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(URLS)), body=bodies, hdrs=headers)
def test_any_delivery_is_verified_parsed_or_refused_cleanly(kind, body, hdrs):
    _deliver(kind, body, hdrs)


@settings(max_examples=150, deadline=None)
@given(body=bodies)
def test_a_correctly_signed_hubspot_delivery_with_any_body_is_parsed_or_refused_cleanly(body):
    stamp = str(int(time.time() * 1000))  # fresh: the body itself has to be parsed
    signature = sign_v3("hub-secret-123", method="POST", uri=URLS["hubspot"], body=body, timestamp=stamp)
    _deliver("hubspot", body, {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": stamp})
