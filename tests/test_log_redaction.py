"""No address reaches a log line or an error at DEBUG (SPEC: personal data never appears in logs).

urllib3 logs each request line with its path, and paths hold addresses: HubSpot's Communication Preferences
(``/statuses/a%40example.com/unsubscribe-all``, through the SDK's own pool) and Mailchimp's member routes, which
take an address as well as a hash. The HubSpot SDK sets the ``urllib3`` logger to WARNING whenever it builds a
client, so these tests turn DEBUG on after building the adapters, as a user debugging a run would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from adapters.base import WriteRequest
from adapters.errors import ProviderError
from adapters.hubspot import HubSpotAdapter
from adapters.hubspot.emulator import HubSpotEmulator
from adapters.mailchimp.adapter import MailchimpAdapter
from adapters.mailchimp.emulator import MailchimpEmulator
from adapters.secret import Secret
from connector.daemon import logs

OPTING_OUT = "opt.out@example.com"
MEMBER = "member.one0@example.com"  # MailchimpEmulator.seed(1, prefix="member.one")
NOBODY = "Nobody.Here@Example.com"
ADDRESSES = (OPTING_OUT, MEMBER, NOBODY)


def leaks(text: str) -> list[str]:
    """The addresses (or their local parts) found in ``text``, raw or percent-encoded, in any case."""
    lowered = text.lower()
    found = []
    for address in (a.lower() for a in ADDRESSES):
        forms = (address, quote(address, safe="").lower(), address.split("@", 1)[0])
        if any(form in lowered for form in forms):
            found.append(address.split("@", 1)[0][:3] + "...")  # never the address itself in a failure message
    return found


@pytest.fixture
def emulators() -> Iterator[tuple[HubSpotEmulator, MailchimpEmulator]]:
    with HubSpotEmulator(burst=100_000, search_per_s=100_000) as hubspot, MailchimpEmulator() as mailchimp:
        mailchimp.seed(1, prefix="member.one")
        yield hubspot, mailchimp


@pytest.fixture
def urllib3_debug() -> Iterator[None]:
    """``urllib3`` at DEBUG until the test ends (to be turned on after the HubSpot SDK has built its client)."""
    library = logging.getLogger("urllib3")
    before = library.level
    yield
    library.setLevel(before)


def drive(hubspot: HubSpotEmulator, mailchimp: MailchimpEmulator) -> ProviderError:
    """A HubSpot opt-out (v4 unsubscribe-all by address) and Mailchimp member GETs by address, at DEBUG."""
    options = hubspot.sandbox_options()
    hs = HubSpotAdapter(name="hubspot", access_token=options["access_token"], base_url=options["base_url"],
                        client_secret=options["client_secret"], sleep=lambda s: None)
    mc_options = mailchimp.sandbox_options()
    mc = MailchimpAdapter(api_key=Secret(mc_options["api_key"]), list_id=mc_options["list_id"],
                          base_url=mc_options["base_url"], sleep=lambda s: None)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    optout = WriteRequest(ref="x", remote_id=None, email=OPTING_OUT, fields={"properties": {"hs_email_optout": "true"}})
    (result,) = hs.write_contacts([optout])
    assert result.ok and hubspot.portal.optout(OPTING_OUT)
    (member,) = mc.fetch_contacts([MEMBER])  # member routes take the address itself [Mailchimp API reference]
    assert not member.deleted
    with pytest.raises(ProviderError) as raised:  # a 404 for a path holding an address (percent-encoded)
        mc.transport.request("GET", f"/lists/{mc.list_id}/members/{quote(NOBODY, safe='')}")
    assert raised.value.status == 404
    return raised.value


def test_debug_logs_and_errors_hold_no_address(emulators, urllib3_debug, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    error = drive(*emulators)
    text = caplog.text
    assert "/unsubscribe-all" in text and "/members/" in text  # urllib3's request lines were captured
    assert leaks(text) == []
    assert leaks(str(error)) == [] and leaks(repr(error)) == [] and leaks(error.path) == []
    assert "/members/***" in error.path


def test_the_daemons_json_log_holds_no_address(emulators, urllib3_debug, capsys: pytest.CaptureFixture[str]) -> None:
    root, access, scheduler = logging.getLogger(), logging.getLogger("uvicorn.access"), logging.getLogger("apscheduler")
    saved = (list(root.handlers), root.level, access.disabled, scheduler.level)
    try:
        logs.configure("json", level=logging.DEBUG)  # what `crmsync daemon --log-format json` installs
        drive(*emulators)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        access.disabled = saved[2]
        scheduler.setLevel(saved[3])
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("/unsubscribe-all" in line["msg"] for line in lines)
    assert any("/members/" in line["msg"] for line in lines)
    assert leaks(err) == []
