"""Transport over real HTTP against an EmulatorServer: retries, classification, limits, redaction."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from adapters._emulator import DROP, EmulatorServer, Fault, Request, Response
from adapters._http import (
    TIMEOUT,
    ConnectFailed,
    Transport,
    classify_status,
    parse_retry_after,
    redact,
    redact_addresses,
    retrying,
    safe_path,
)
from adapters.errors import AuthError, FatalProviderError, ProviderError, RateLimited, RetryableError
from adapters.ratelimit import RateLimiter

TOKEN = "tok/en+s3cr3t=="  # has characters that URL-quoting changes


class InFlight:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def handler(self, request: Request) -> Response:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)  # long enough for the other threads to pile up
        with self.lock:
            self.now -= 1
        return Response.json({"ok": True})


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    server = EmulatorServer()
    server.add_route("GET", r"/items", lambda r: Response.json({"items": [1, 2], "q": r.query}))
    server.add_route("GET", r"/items/(?P<id>.+)", lambda r: Response.json({"id": r.match["id"] if r.match else ""}))
    server.add_route("POST", r"/items", lambda r: Response.json({"created": r.json()}, 201))
    server.add_route("GET", r"/slow", lambda r: (time.sleep(0.6), Response.json({}))[1])
    server.add_route("GET", r"/not-modified", lambda r: Response.empty(304))
    server.add_route("POST", r"/multi", lambda r: Response.json({"results": []}, 207))
    with server:
        yield server


@pytest.fixture
def emulator(server: EmulatorServer) -> Iterator[EmulatorServer]:
    server.clear_faults()
    server.reset_counters()
    yield server
    server.clear_faults()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def transport(emulator: EmulatorServer, waits: list[float]) -> Iterator[Transport]:
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, secrets=[TOKEN])
    yield transport
    transport.close()


# -- retries ---------------------------------------------------------------------------------
def test_a_plain_call_returns_the_response(transport: Transport, emulator: EmulatorServer) -> None:
    assert transport.request("GET", "/items", params={"a": "1"}).json()["q"] == {"a": ["1"]}
    assert (transport.stats.calls, transport.stats.retries, transport.stats.rate_limited) == (1, 0, 0)
    assert transport.stats.by_method_path == {"GET /items": 1}


def test_429_waits_what_retry_after_asks(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    emulator.inject(Fault(429, {"title": "Too Many Requests"}, {"Retry-After": "7"}))
    assert transport.request("GET", "/items").status_code == 200
    assert waits == [7.0]
    assert emulator.call_count("GET", "/items") == 2
    assert (transport.stats.calls, transport.stats.retries, transport.stats.rate_limited) == (2, 1, 1)


def test_429_with_an_http_date(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    emulator.inject(Fault(429, None, {"Retry-After": later}))
    transport.request("GET", "/items")
    assert len(waits) == 1
    assert 25 <= waits[0] <= 30


def test_retry_after_is_capped_and_the_budget_stops_retries(emulator: EmulatorServer, waits: list[float]) -> None:
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, max_wait_s=60)
    emulator.inject(*[Fault(429, None, {"Retry-After": "1000"})] * 5)
    with pytest.raises(RateLimited) as raised:
        transport.request("GET", "/items")
    assert waits == [60.0]  # capped; a second wait would pass the 60 s budget
    assert raised.value.retry_after == 1000.0
    assert emulator.call_count("GET", "/items") == 2


def test_429_without_retry_after_backs_off(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    emulator.inject(Fault(429), Fault(429))
    transport.request("GET", "/items")
    assert len(waits) == 2
    assert all(0 < w <= 60 for w in waits)


def test_5xx_then_success(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    emulator.inject(Fault(500), Fault(502), Fault(503), Fault(408))
    assert transport.request("GET", "/items").json()["items"] == [1, 2]
    assert emulator.call_count("GET", "/items") == 5
    assert len(waits) == 4
    assert transport.stats.retries == 4


def test_dropped_connection_then_success(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    emulator.inject(Fault(DROP))
    assert transport.request("GET", "/items").status_code == 200
    assert emulator.call_count("GET", "/items") == 2
    assert len(waits) == 1


def test_401_is_an_auth_error_and_never_retried(transport: Transport, emulator: EmulatorServer) -> None:
    emulator.inject(Fault(401, {"detail": "API Key Invalid"}, {"X-Request-Id": "req-42"}))
    with pytest.raises(AuthError) as raised:
        transport.request("GET", "/items")
    assert str(raised.value) == "demo GET /items -> 401 (request req-42)"
    assert (raised.value.status, raised.value.request_id, raised.value.path) == (401, "req-42", "/items")
    assert emulator.call_count("GET", "/items") == 1


def test_404_is_fatal(transport: Transport, emulator: EmulatorServer) -> None:
    with pytest.raises(FatalProviderError) as raised:
        transport.request("GET", "/nowhere")
    assert raised.value.status == 404
    assert "not found" not in str(raised.value)  # never the body


def test_attempts_exhausted_raise_the_last_error(emulator: EmulatorServer, waits: list[float]) -> None:
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, attempts=3)
    emulator.inject(*[Fault(503)] * 3)
    with pytest.raises(RetryableError) as raised:
        transport.request("GET", "/items")
    assert raised.value.status == 503
    assert emulator.call_count("GET", "/items") == 3
    assert len(waits) == 2


def test_a_create_is_not_resent_after_a_500(transport: Transport, emulator: EmulatorServer) -> None:
    emulator.inject(Fault(500, method="POST"))
    with pytest.raises(RetryableError):
        transport.request("POST", "/items", json={"email": "a@example.com"}, idempotent=False)
    assert emulator.call_count("POST", "/items") == 1


def test_a_create_is_not_resent_after_a_dropped_connection(transport: Transport, emulator: EmulatorServer) -> None:
    emulator.inject(Fault(DROP, method="POST"))
    with pytest.raises(RetryableError) as raised:
        transport.request("POST", "/items", json={"email": "a@example.com"}, idempotent=False)
    assert not isinstance(raised.value, ConnectFailed)  # it may have reached the server
    assert emulator.call_count("POST", "/items") == 1


def test_a_create_is_resent_after_a_429(transport: Transport, emulator: EmulatorServer, waits: list[float]) -> None:
    emulator.inject(Fault(429, None, {"Retry-After": "2"}, method="POST"))
    response = transport.request("POST", "/items", json={"email": "a@example.com"}, idempotent=False)
    assert response.status_code == 201
    assert waits == [2.0]


def test_a_create_is_resent_when_the_connection_was_refused(waits: list[float]) -> None:
    with socket_that_refuses() as url:
        transport = Transport(provider="demo", base_url=url, sleep=waits.append, attempts=3)
        with pytest.raises(ConnectFailed):
            transport.request("POST", "/items", json={}, idempotent=False)
    assert transport.stats.calls == 3


def test_207_and_304_are_answers_not_errors(transport: Transport) -> None:
    assert transport.request("POST", "/multi", json=[]).status_code == 207
    assert transport.request("GET", "/not-modified").status_code == 304


def test_the_provider_hook_classifies_first(emulator: EmulatorServer, waits: list[float]) -> None:
    def mailchimp_quirk(response: requests.Response) -> ProviderError | None:
        if response.status_code == 403 and not response.content.strip(b"null"):
            return RateLimited("demo throttled", retry_after=None, status=403)
        return None

    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, classify=mailchimp_quirk)
    emulator.inject(Fault(403))  # a bare 403: throttling, not auth
    assert transport.request("GET", "/items").status_code == 200
    emulator.inject(Fault(403, {"title": "Forbidden"}))
    with pytest.raises(AuthError):
        transport.request("GET", "/items")
    assert transport.stats.rate_limited == 1


def test_the_limiter_is_asked_before_each_attempt(emulator: EmulatorServer, waits: list[float]) -> None:
    clock = [0.0]
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(1, 10.0, clock=lambda: clock[0], sleep=fake_sleep)
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, limiter=limiter)
    emulator.inject(Fault(500), Fault(500))
    transport.request("GET", "/items")
    assert slept == [10.0, 10.0]  # three attempts, one slot per 10 s


def test_in_flight_requests_stay_within_max_connections(emulator: EmulatorServer) -> None:
    counter = InFlight()
    emulator.add_route("GET", r"/inflight", counter.handler)
    transport = Transport(provider="demo", base_url=emulator.url, max_connections=3)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            for _ in range(3):
                transport.request("GET", "/inflight")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert emulator.call_count("GET", "/inflight") == 60
    assert 1 < counter.peak <= 3


def test_a_read_timeout_is_retryable(emulator: EmulatorServer, waits: list[float]) -> None:
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append, timeout=(1.0, 0.1), attempts=2)
    with pytest.raises(RetryableError) as raised:
        transport.request("GET", "/slow")
    assert "timed out" in str(raised.value)
    assert emulator.call_count("GET", "/slow") == 2


def test_the_default_timeout() -> None:
    assert TIMEOUT == (5.0, 60.0)
    assert Transport(provider="demo", base_url="http://127.0.0.1:9").timeout == TIMEOUT


# -- secrets -----------------------------------------------------------------------------------
def secret_forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}


def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG for the test, urllib3's too: the HubSpot SDK sets ``urllib3`` to WARNING whenever it builds a client."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")


def assert_hidden(text: str, secret: str = TOKEN) -> None:
    for form in secret_forms(secret):
        assert form not in text


def test_a_token_never_shows_in_errors_or_logs(
    transport: Transport, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    debug_logs(caplog)
    emulator.inject(Fault(DROP), Fault(500), *[Fault(429)] * 3)
    with pytest.raises(RetryableError) as raised:
        transport.request("GET", f"/items/{TOKEN}", params={"apikey": TOKEN}, headers={"X-Auth-Token": TOKEN})
    for text in (str(raised.value), repr(raised.value), caplog.text, raised.value.path):
        assert_hidden(text)
    assert "***" in str(raised.value)
    assert raised.value.__cause__ is None


def test_a_secret_added_later_is_redacted_too(emulator: EmulatorServer, waits: list[float]) -> None:
    transport = Transport(provider="demo", base_url=emulator.url, sleep=waits.append)
    transport.add_secret("fresh-access-token")  # an OAuth refresh hands out a new one
    with pytest.raises(FatalProviderError) as raised:
        transport.request("GET", "/missing/fresh-access-token")
    assert "fresh-access-token" not in str(raised.value)
    assert "fresh-access-token" not in raised.value.path


def test_a_connection_error_never_leaks_the_url(caplog: pytest.LogCaptureFixture, waits: list[float]) -> None:
    debug_logs(caplog)
    with socket_that_refuses() as url:
        transport = Transport(provider="demo", base_url=f"{url}/{TOKEN}", sleep=waits.append, secrets=[TOKEN])
        with pytest.raises(RetryableError) as raised:
            transport.request("GET", "/items", params={"key": TOKEN})
    error = raised.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    for text in (str(error), repr(error), caplog.text, repr(transport)):
        assert_hidden(text)


def test_a_secret_in_a_header_of_an_unregistered_transport_stays_out(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, waits: list[float]
) -> None:
    debug_logs(caplog)
    transport = Transport(
        provider="demo",
        base_url=emulator.url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        sleep=waits.append,
        attempts=2,
    )
    emulator.inject(Fault(503), Fault(401))
    with pytest.raises(AuthError) as raised:
        transport.request("GET", "/items")
    for text in (str(raised.value), repr(raised.value), caplog.text):
        assert_hidden(text)


ADDRESS_PATHS = ["/items/ana@example.com", "/items/ana%40example.com/tags", "/items/ANA%40EXAMPLE.COM",
                 "/items/ana%40example.com?fields=id"]


def assert_no_address(text: str) -> None:
    lowered = text.lower()
    assert "ana" not in lowered and "example.com" not in lowered


@pytest.mark.parametrize("path", ADDRESS_PATHS)
def test_an_address_in_a_path_never_shows_in_errors_logs_or_counters(
    transport: Transport, emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    debug_logs(caplog)
    emulator.inject(Fault(404, {"detail": "no such member"}))
    with pytest.raises(FatalProviderError) as raised:
        transport.request("GET", path)
    assert "/items" in caplog.text  # urllib3's request line was logged
    for text in (str(raised.value), repr(raised.value), raised.value.path, caplog.text, *transport.stats.by_method_path):
        assert_no_address(text)
    assert raised.value.path.startswith("/items/***")


def test_an_address_in_the_path_of_a_refused_connection_stays_out(
    caplog: pytest.LogCaptureFixture, waits: list[float]
) -> None:
    debug_logs(caplog)
    with socket_that_refuses() as url:
        transport = Transport(provider="demo", base_url=url, sleep=waits.append, attempts=2)
        with pytest.raises(ConnectFailed) as raised:
            transport.request("GET", "/statuses/ana%40example.com/unsubscribe-all")
    assert "/statuses/***/unsubscribe-all" in caplog.text  # the retry's warning names the call, not the address
    for text in (str(raised.value), repr(raised.value), raised.value.path, caplog.text):
        assert_no_address(text)


@given(address=st.emails())
def test_safe_path_hides_any_percent_encoded_address(address: str) -> None:
    for form in (quote(address, safe=""), quote(address, safe="").lower(), quote(address, safe="@")):
        path = safe_path(f"/lists/l1/members/{form}/tags?x=1")
        assert path == "/lists/l1/members/***/tags"


def test_a_mailchimp_subscriber_hash_in_a_member_path_is_hidden() -> None:
    # the MD5 of an address: a dictionary of addresses reverses it
    hashed = "62eeb292278cc15f5817cb78f7790b08"
    assert safe_path(f"/lists/l1/members/{hashed}/tags") == "/lists/l1/members/***/tags"
    assert redact_addresses(f'"PUT /3.0/lists/l1/members/{hashed.upper()} HTTP/1.1" 200') == (
        '"PUT /3.0/lists/l1/members/*** HTTP/1.1" 200')
    assert safe_path("/lists/l1/members/contact-id-123/tags") == "/lists/l1/members/contact-id-123/tags"


def test_redact_addresses_leaves_other_text() -> None:
    text = 'http://127.0.0.1:80 "GET /lists/l1/members/5f0c1a?*** HTTP/1.1" 200 12'
    assert redact_addresses(text) == text
    assert redact_addresses('"to": "ana@example.com", "cc": "bo%40example.com"') == '"to": "***", "cc": "***"'


@given(secret=st.text(min_size=4, max_size=30).filter(lambda s: s.strip() == s), prefix=st.text(max_size=20))
def test_redact_removes_every_form(secret: str, prefix: str) -> None:
    text = f"{prefix}|{secret}|{quote(secret, safe='')}|{quote_plus(secret)}|{prefix}"
    assert_hidden(redact(text, [secret]), secret)


def test_redact_leaves_other_text() -> None:
    assert redact("GET /lists/abc?k=v", ["zzz", ""]) == "GET /lists/abc?k=v"


# -- classification ------------------------------------------------------------------------------
EXPECTED = [
    (range(200, 400), type(None)),
    ((401, 403), AuthError),
    ((429,), RateLimited),
    ((408, *range(500, 600)), RetryableError),
]


@given(status=st.integers(200, 599))
def test_each_status_has_one_class(status: int) -> None:
    error = classify_status(status, {}, provider="demo", method="get", path="/items?x=1")
    if status < 400:
        assert error is None
        return
    assert error is not None
    if status in (401, 403):
        assert type(error) is AuthError
    elif status == 429:
        assert type(error) is RateLimited
    elif status == 408 or status >= 500:
        assert type(error) is RetryableError
    else:
        assert type(error) is FatalProviderError
    assert str(error) == f"demo GET /items -> {status}"
    assert error.status == status


@pytest.mark.parametrize(
    "header",
    ["X-Request-Id", "x-request-id", "X-Request-ID", "X-Hubspot-Correlation-Id", "X-ZOHO-Request-Id"],
)
def test_the_request_id_is_named(header: str) -> None:
    error = classify_status(500, {header: "abc-1"}, provider="demo", method="POST", path="/x")
    assert error is not None
    assert error.request_id == "abc-1"
    assert str(error).endswith("(request abc-1)")


def test_parse_retry_after() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None
    assert parse_retry_after("-5", now=now) == 0.0
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("inf", now=now) is None


@given(
    text=st.one_of(
        st.text(max_size=40), st.from_regex(r"[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{1,5} \d\d:\d\d:\d\d( GMT)?")
    )
)
def test_parse_retry_after_never_raises(text: str) -> None:
    seconds = parse_retry_after(text)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


def test_retrying_reraises_the_last_error_itself() -> None:
    waits: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        raise RetryableError("demo GET /x -> 503", status=503)

    with pytest.raises(RetryableError):
        retrying(attempts=4, sleep=waits.append)(flaky)
    assert len(calls) == 4
    assert len(waits) == 3


def test_retrying_leaves_fatal_errors_alone() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise FatalProviderError("demo GET /x -> 400", status=400)

    with pytest.raises(FatalProviderError):
        retrying(sleep=lambda s: None)(broken)
    assert calls == [1]


# -- helpers -------------------------------------------------------------------------------------
class socket_that_refuses:
    """A 127.0.0.1 port with nothing listening: connections are refused at once."""

    def __enter__(self) -> str:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # closed and never listened: the kernel refuses connections to it
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        return None
