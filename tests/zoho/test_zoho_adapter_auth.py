"""Zoho OAuth and limits over real HTTP: one refresh under concurrency, 401 once, api_domain, 429, credits."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zoho_fixtures import make_adapter

from adapters._emulator import Fault
from adapters.errors import AuthError, QuotaExhausted
from adapters.secret import Secret
from adapters.zoho import MemoryTokenStore
from adapters.zoho.auth import DATA_CENTERS, domain_allowed
from adapters.zoho.emulator import ZohoEmulator

TOO_MANY = {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "limit", "status": "error"}


@pytest.fixture
def zoho() -> Iterator[ZohoEmulator]:
    with ZohoEmulator() as emulator:
        yield emulator


def test_eight_threads_on_an_expired_token_refresh_exactly_once(zoho: ZohoEmulator) -> None:
    zoho.seed(3)
    adapter = make_adapter(zoho)
    adapter.check()
    assert zoho.refreshes() == 1
    zoho.expire_tokens()  # the cached token is now refused with 401 INVALID_TOKEN
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(4):
                adapter.fetch_contacts([c["id"] for c in zoho.all_contacts()])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert zoho.refreshes() == 2  # the first token, then exactly one refresh for all eight threads


def test_replicas_sharing_a_store_share_the_token(zoho: ZohoEmulator) -> None:
    store = MemoryTokenStore()
    replicas = [make_adapter(zoho, token_store=store) for _ in range(3)]
    for adapter in replicas:
        adapter.check()
    assert zoho.refreshes() == 1
    assert store.load() is not None and "1000." not in repr(store.load())


def test_a_token_near_expiry_is_refreshed_before_use(zoho: ZohoEmulator) -> None:
    now = [1_000_000.0]
    adapter = make_adapter(zoho)
    adapter._tokens._clock = lambda: now[0]  # noqa: SLF001 - an hour on a fake clock
    adapter.check()
    now[0] += 3600 - 301  # more than five minutes left: reused
    adapter.check()
    assert zoho.refreshes() == 1
    now[0] += 2  # under five minutes left: refreshed before use
    adapter.check()
    assert zoho.refreshes() == 2


def test_expires_in_beside_expires_in_sec_is_milliseconds(zoho: ZohoEmulator) -> None:
    zoho.expires_in_ms = True  # {"expires_in": 3600000, "expires_in_sec": 3600}, as older Zoho answers read
    now = [1_000_000.0]
    adapter = make_adapter(zoho)
    adapter._tokens._clock = lambda: now[0]  # noqa: SLF001 - an hour on a fake clock
    adapter.check()
    now[0] += 3600 - 299  # under five minutes left of the hour, not of a thousand hours
    adapter.check()
    assert zoho.refreshes() == 2


def test_a_short_lived_token_is_not_refreshed_on_every_call(zoho: ZohoEmulator) -> None:
    zoho.token_ttl_s = 60  # an accounts server handing out one-minute tokens
    adapter = make_adapter(zoho)
    for _ in range(5):
        adapter.check()
    assert zoho.refreshes() == 1


def test_401_refreshes_once_and_retries_once_not_a_loop(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    adapter.check()
    invalid = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    zoho.inject(*[Fault(status=401, body=invalid, path_pattern="/crm/")] * 5)
    with pytest.raises(AuthError):
        adapter.check()
    assert zoho.refreshes() == 2
    assert zoho.call_count("GET", r"/Contacts$") == 3  # first check, the refused call, its one retry


def test_a_scope_mismatch_is_reported_by_code_and_spends_no_refresh(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    adapter.check()
    mismatch = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope", "status": "error"}
    zoho.inject(*[Fault(status=401, body=mismatch, path_pattern="/crm/")] * 3)
    with pytest.raises(AuthError, match="401 OAUTH_SCOPE_MISMATCH"):
        adapter.check()
    assert zoho.refreshes() == 1  # a new token has the same scopes: the 10-per-10-minutes budget is kept


def test_a_403_names_its_code(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    denied = {"code": "NO_PERMISSION", "details": {"permissions": ["Crm_Implied_View_Contacts"]}, "status": "error"}
    zoho.inject(Fault(status=403, body={**denied, "message": "permission denied"}, path_pattern="/crm/"))
    with pytest.raises(AuthError, match="403 NO_PERMISSION"):
        adapter.check()


def test_bad_refresh_token_is_an_auth_error_without_secrets(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho, refresh_token=Secret("1000.wrong.refresh"))
    with pytest.raises(AuthError) as caught:
        adapter.check()
    assert "wrong" not in str(caught.value) and "invalid_code" in str(caught.value)


def test_refresh_budget_spent_pauses_the_provider(zoho: ZohoEmulator) -> None:
    zoho.refresh_budget = 0
    with pytest.raises(QuotaExhausted):
        make_adapter(zoho).check()


def test_a_foreign_api_domain_is_not_followed(zoho: ZohoEmulator) -> None:
    zoho.api_domain = "https://www.zohoapis.com"  # production: the override must win
    adapter = make_adapter(zoho)
    adapter.check()
    assert zoho.call_count("GET", r"/Contacts$") == 1


@pytest.mark.parametrize("dc", sorted(DATA_CENTERS))
def test_api_domain_must_belong_to_the_data_centre(dc: str) -> None:
    own = DATA_CENTERS[dc][0]
    assert domain_allowed(own, data_center=dc, base_url=None)
    assert domain_allowed(own.replace("www.", "sandbox."), data_center=dc, base_url=None)
    others = [url for other, (url, _) in DATA_CENTERS.items() if other != dc]
    assert not any(domain_allowed(url, data_center=dc, base_url=None) for url in others)
    assert not domain_allowed("https://evil.example.com", data_center=dc, base_url=None)
    assert not domain_allowed(own.replace("https", "http"), data_center=dc, base_url=None)


@given(host=st.from_regex(r"[a-z]{1,10}(\.[a-z]{2,5}){1,2}", fullmatch=True))
def test_only_the_override_host_is_allowed_with_base_url(host: str) -> None:
    url = f"https://{host}"
    assert domain_allowed(url, data_center="eu", base_url="https://proxy.example.com") == (host == "proxy.example.com")


def test_429_is_retried_then_pauses_the_cycle(zoho: ZohoEmulator) -> None:
    zoho.seed(1)
    adapter = make_adapter(zoho)
    zoho.inject(*[Fault(status=429, body=TOO_MANY, path_pattern="/crm/")] * 2)
    adapter.check()  # two 429s, then through
    zoho.inject(*[Fault(status=429, body=TOO_MANY, path_pattern="/crm/")] * 5)
    with pytest.raises(QuotaExhausted, match="TOO_MANY_REQUESTS"):
        adapter.check()
    assert adapter.stats.rate_limited == 7


def test_spent_credits_stop_at_once(zoho: ZohoEmulator) -> None:
    zoho.credits_total = 3
    adapter = make_adapter(zoho)
    for _ in range(3):
        adapter.check()
    assert adapter.credits_remaining == 0
    before = zoho.server.call_count("GET")
    with pytest.raises(QuotaExhausted, match="credits"):
        adapter.check()
    assert zoho.server.call_count("GET") == before + 1  # no retries against an empty budget


def test_concurrency_cap_answers_429_and_the_adapter_stays_under_it() -> None:
    with ZohoEmulator(max_concurrency=2, work_s=0.05) as zoho:
        zoho.seed(1)
        adapter = make_adapter(zoho, max_connections=2)
        threads = [threading.Thread(target=adapter.check) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert adapter.stats.rate_limited == 0
        assert all(status != 429 for _, _, status in zoho.server.log)


def test_create_adapter_rejects_an_unknown_data_centre(zoho: ZohoEmulator) -> None:
    with pytest.raises(ValueError, match="data_center"):
        make_adapter(zoho, data_center="mars")


def test_an_accounts_server_reading_only_the_query_string_still_grants(zoho: ZohoEmulator) -> None:
    zoho.grant_params_from = "query"
    adapter = make_adapter(zoho)
    adapter.check()
    assert zoho.refreshes() == 1 and zoho.call_count("POST", "oauth") == 2
    zoho.grant_params_from = "body"
    zoho.expire_tokens()
    adapter.check()
    assert zoho.refreshes() == 2 and zoho.call_count("POST", "oauth") == 3


def test_the_token_is_registered_for_redaction_once(zoho: ZohoEmulator) -> None:
    adapter = make_adapter(zoho)
    for _ in range(5):
        adapter.check()
    secrets = adapter._api.secrets  # noqa: SLF001
    assert len(secrets) == len(set(secrets))
