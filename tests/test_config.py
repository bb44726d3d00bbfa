"""Tests for connector/config.py and config.example.toml."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import pickle
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.secret import Secret
from connector.config import (
    COMMON_OPTIONS,
    CONFLICT_POLICIES,
    KNOWN_TYPES,
    PROVIDER_OPTIONS,
    RULE_KEYS,
    Config,
    ConfigError,
    find_config_path,
    load_config,
    load_config_from_mapping,
    options_for,
    parse_duration,
    redact_url,
    redacted_summary,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"

# Distinctive secret values: none of them may ever show up in a repr, a summary or an error message.
SECRETS = {
    "HUBSPOT_TOKEN": "pat-na1-SECRETHUBSPOTTOKEN",
    "HUBSPOT_CLIENT_SECRET": "SECRETHUBSPOTCLIENT",
    "MAILCHIMP_API_KEY": "SECRETMAILCHIMPKEY-us21",
    "MAILCHIMP_WEBHOOK_SECRET": "SECRETMAILCHIMPHOOK",
    "ZOHO_CLIENT_ID": "1000.ZOHOCLIENTID",
    "ZOHO_CLIENT_SECRET": "SECRETZOHOCLIENT",
    "ZOHO_REFRESH_TOKEN": "1000.SECRETZOHOREFRESH",
    "ZOHO_NOTIFY_TOKEN": "SECRETZOHONOTIFY",
    "ACTIVECAMPAIGN_TOKEN": "SECRETACTIVECAMPAIGN",
    "ACTIVECAMPAIGN_WEBHOOK_TOKEN": "SECRETACHOOKTOKEN",
    "GETRESPONSE_API_KEY": "SECRETGETRESPONSE",
    "GETRESPONSE_WEBHOOK_SECRET": "SECRETGRHOOK",
    "CRMSYNC_HASH_KEY": "SECRETHASHKEY-0123456789",
}
SECRET_VALUES = [value for name, value in SECRETS.items() if name != "ZOHO_CLIENT_ID"]


def load(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None, base: Path = Path("/srv/crm")) -> Config:
    return load_config_from_mapping(raw, base_dir=base, environ=SECRETS if environ is None else environ)


def error_of(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(raw, environ=environ)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for secret in SECRET_VALUES:
        assert secret not in message
    return message


def hubspot(**extra: Any) -> dict[str, Any]:
    return {"providers": {"hubspot": {"type": "hubspot", "access_token": "${HUBSPOT_TOKEN}", **extra}}}


def with_provider(name: str, table: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"providers": {name: table}, **top}


MINIMAL: dict[str, dict[str, Any]] = {
    "hubspot": {"type": "hubspot", "access_token": "${HUBSPOT_TOKEN}"},
    "mailchimp": {"type": "mailchimp", "api_key": "${MAILCHIMP_API_KEY}", "list_id": "a1b2c3"},
    "zoho": {
        "type": "zoho",
        "client_id": "${ZOHO_CLIENT_ID}",
        "client_secret": "${ZOHO_CLIENT_SECRET}",
        "refresh_token": "${ZOHO_REFRESH_TOKEN}",
    },
    "activecampaign": {
        "type": "activecampaign",
        "api_url": "https://example.api-us1.com",
        "api_token": "${ACTIVECAMPAIGN_TOKEN}",
        "list_id": 1,
    },
    "getresponse": {"type": "getresponse", "api_key": "${GETRESPONSE_API_KEY}", "campaign_id": "V7k2b"},
    "csv": {"type": "csv", "path": "contacts.csv"},
    "jsonl": {"type": "jsonl", "path": "contacts.jsonl"},
}


# --- the example file -----------------------------------------------------------------------------------------


def test_example_file_loads_with_its_variables_set() -> None:
    config = load_config(EXAMPLE, environ=SECRETS)
    assert list(config.providers) == [
        "hubspot",
        "mailchimp",
        "zoho",
        "activecampaign",
        "getresponse",
        "export",
        "archive",
    ]
    assert {p.type for p in config.providers.values()} == set(KNOWN_TYPES)
    assert config.providers["hubspot"].options["access_token"] == Secret(SECRETS["HUBSPOT_TOKEN"])
    assert config.providers["export"].options["path"] == str(REPO / "contacts.csv")
    assert config.state.url == f"sqlite:///{REPO / 'crmsync.db'}"
    assert config.mapping["hubspot"].fields["custom.lifetime_value"] == "properties.lifetime_value"
    assert config.rules[0]["add_tags"] == ("vip",)


def test_example_file_with_every_optional_key_uncommented_still_loads(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# (?=[a-z_]+ = )", "", text)
    assert uncommented.count("\n# ") < text.count("\n# ")
    path = tmp_path / "crmsync.toml"
    path.write_text(uncommented, encoding="utf-8")
    config = load_config(path, environ=SECRETS)
    zoho = config.providers["zoho"].options
    assert zoho["notify_token"] == Secret(SECRETS["ZOHO_NOTIFY_TOKEN"])
    assert config.providers["hubspot"].options["portal_id"] == "7654321"
    assert zoho["extra_fields"] == ("Lead_Source", "Score")
    assert config.providers["hubspot"].options["properties"] == ("lifetime_value", "plan")
    assert config.state.hash_key == Secret(SECRETS["CRMSYNC_HASH_KEY"])
    assert config.sync.default_region == "US"
    assert config.webhooks.public_url == "https://crm.example.com"


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"(?m)^#?\s*([a-z_]+)\s*=", text))
    documented |= {"merge_fields", "fields", "tags"}  # written as [providers.mailchimp.merge_fields] / [mapping.X.*]
    keys = set(COMMON_OPTIONS) | {key for spec in PROVIDER_OPTIONS.values() for key in spec}
    keys |= {"url", "hash_key", "interval", "conflict_policy", "priority", "default_region", "retention"}
    keys |= {"when", "add_tags", "set_lifecycle", "listen", "public_url"}
    assert keys - documented == set()
    for table in ("[state]", "[sync]", "[webhooks]", "[[rules]]", "[mapping.", "[providers."):
        assert table in text


def test_example_file_is_valid_toml_and_secrets_come_from_the_environment() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for name, table in raw["providers"].items():
        for key, value in table.items():
            if PROVIDER_OPTIONS[table["type"]].get(key) and PROVIDER_OPTIONS[table["type"]][key].secret:
                assert re.fullmatch(r"\$\{[A-Z_]+\}", value), f"providers.{name}.{key} should come from ${{ENV}}"


# --- defaults -------------------------------------------------------------------------------------------------


def test_an_empty_config_has_the_documented_defaults() -> None:
    config = load({})
    assert config.state.url == "sqlite:////srv/crm/crmsync.db"
    assert config.state.hash_key is None
    assert config.sync.interval == dt.timedelta(minutes=5)
    assert config.sync.conflict_policy == "newest"
    assert config.sync.priority == ()
    assert config.sync.default_region is None
    assert config.sync.retention == dt.timedelta(days=30)
    assert config.webhooks.listen == "127.0.0.1:8080"
    assert config.webhooks.public_url is None
    assert dict(config.providers) == {} and dict(config.mapping) == {} and config.rules == ()
    assert config.path == Path("/srv/crm/crmsync.toml")


def test_provider_defaults_are_filled_in_and_type_is_always_an_option() -> None:
    config = load({"providers": {"mc": MINIMAL["mailchimp"], "z": MINIMAL["zoho"], "h": MINIMAL["hubspot"]}})
    assert config.providers["mc"].options["new_member_status"] == "pending"
    assert config.providers["z"].options["data_center"] == "com"
    assert dict(config.providers["h"].options) == {"type": "hubspot", "access_token": Secret(SECRETS["HUBSPOT_TOKEN"])}
    assert config.providers["h"].interval is None
    assert config.interval_for("h") == dt.timedelta(minutes=5)


def test_every_known_type_loads_from_its_required_keys() -> None:
    config = load({"providers": MINIMAL})
    assert [p.type for p in config.providers.values()] == list(MINIMAL)
    for name, provider in config.providers.items():
        assert provider.name == name and provider.options["type"] == provider.type
    assert config.providers["activecampaign"].options["list_id"] == "1"  # an integer id is kept as text


def test_provider_values_are_converted() -> None:
    config = load(
        hubspot(interval="1h30m", rate_limit="190/10s", page_size=100, base_url="http://127.0.0.1:9000", portal_id=42)
    )
    provider = config.providers["hubspot"]
    assert provider.interval == dt.timedelta(hours=1, minutes=30) == provider.options["interval"]
    assert config.interval_for("hubspot") == dt.timedelta(hours=1, minutes=30)
    assert provider.options["rate_limit"] == "190/10s"
    assert provider.options["page_size"] == 100
    assert provider.options["portal_id"] == "42"
    assert provider.options["base_url"] == "http://127.0.0.1:9000"


def test_values_are_read_only() -> None:
    config = load({"providers": MINIMAL})
    with pytest.raises(TypeError):
        config.providers["csv"].options["path"] = "/tmp/x"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.providers["x"] = config.providers["csv"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.sync.interval = dt.timedelta(0)  # type: ignore[misc]


def test_values_are_deeply_read_only_yet_copy_pickle_and_asdict() -> None:
    config = load_config(EXAMPLE, environ=SECRETS)
    merge_fields = config.providers["mailchimp"].options["merge_fields"]
    for change in (
        lambda: merge_fields.update(x="X"),
        lambda: merge_fields.pop("score"),
        lambda: config.rules[0].setdefault("when", "x"),
        lambda: config.mapping["hubspot"].fields.clear(),
        lambda: config.providers.popitem(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert isinstance(config.rules[0]["add_tags"], tuple)
    assert copy.deepcopy(config) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert dataclasses.asdict(config)["providers"]["hubspot"]["options"]["access_token"] == Secret(
        SECRETS["HUBSPOT_TOKEN"]
    )


def test_sync_table() -> None:
    config = load(
        {
            "providers": {"a": MINIMAL["csv"], "b": MINIMAL["jsonl"]},
            "sync": {
                "interval": "30s",
                "conflict_policy": "priority",
                "priority": ["b", "a"],
                "default_region": "de",
                "retention": "7d",
            },
        }
    )
    assert config.sync.interval == dt.timedelta(seconds=30)
    assert config.sync.conflict_policy == "priority"
    assert config.sync.priority == ("b", "a")
    assert config.sync.default_region == "DE"
    assert config.sync.retention == dt.timedelta(days=7)


# --- finding the file -----------------------------------------------------------------------------------------


def test_find_config_path_prefers_the_flag_then_the_variable_then_the_working_directory(tmp_path: Path) -> None:
    flag, env_file, local = tmp_path / "flag.toml", tmp_path / "env.toml", tmp_path / "crmsync.toml"
    for path in (flag, env_file, local):
        path.write_text("", encoding="utf-8")
    environ = {"CRMSYNC_CONFIG": str(env_file)}
    assert find_config_path(str(flag), environ=environ, cwd=tmp_path) == flag
    assert find_config_path(None, environ=environ, cwd=tmp_path) == env_file
    assert find_config_path(None, environ={}, cwd=tmp_path) == local
    assert find_config_path(None, environ={"CRMSYNC_CONFIG": ""}, cwd=tmp_path) == local


def test_find_config_path_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "crmsync.toml").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^--config: no such config file: .*nope\.toml$"):
        find_config_path(str(tmp_path / "nope.toml"), environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"^CRMSYNC_CONFIG: no such config file"):
        find_config_path(None, environ={"CRMSYNC_CONFIG": str(tmp_path / "gone.toml")}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"pass --config PATH, set CRMSYNC_CONFIG or create \./crmsync\.toml"):
        find_config_path(None, environ={}, cwd=tmp_path / "sub")
    with pytest.raises(ConfigError, match=r"^--config: .* is a directory, not a config file$"):
        find_config_path(str(tmp_path), environ={}, cwd=tmp_path)


def test_find_config_path_reads_the_real_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.toml"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("CRMSYNC_CONFIG", str(path))
    assert find_config_path(None) == path


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text('[sync]\ninterval = "5m\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML: .*line 2") as info:
        load_config(bad, environ={})
    assert "\n" not in str(info.value)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8 text"):
        load_config(binary, environ={})


def test_a_relative_config_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crmsync.toml").write_text('[providers.f]\ntype = "csv"\npath = "c.csv"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("crmsync.toml"), environ={})
    assert config.path == tmp_path / "crmsync.toml"
    assert config.providers["f"].options["path"] == str(tmp_path / "c.csv")
    assert find_config_path(None, environ={}) == tmp_path / "crmsync.toml"


def test_load_config_uses_the_process_environment_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "crmsync.toml"
    path.write_text('[providers.h]\ntype = "hubspot"\naccess_token = "${CRMSYNC_TEST_TOKEN}"\n', encoding="utf-8")
    monkeypatch.setenv("CRMSYNC_TEST_TOKEN", "tok-from-process-env")
    assert load_config(path).providers["h"].options["access_token"] == Secret("tok-from-process-env")
    monkeypatch.delenv("CRMSYNC_TEST_TOKEN")
    with pytest.raises(
        ConfigError, match="^providers.h.access_token: environment variable CRMSYNC_TEST_TOKEN is not set$"
    ):
        load_config(path)


# --- ${ENV} expansion -----------------------------------------------------------------------------------------


def test_variables_are_expanded_anywhere_in_any_string() -> None:
    environ = {**SECRETS, "HOST": "127.0.0.1", "PORT": "9001", "LIST": "abc123", "TAG": "VIP", "DIR": "/data"}
    config = load(
        {
            "providers": {
                "mc": {
                    "type": "mailchimp",
                    "api_key": "${MAILCHIMP_API_KEY}",
                    "list_id": "${LIST}",
                    "base_url": "http://${HOST}:${PORT}/3.0",
                    "merge_fields": {"score": "S_${TAG}"},
                },
                "files": {"type": "csv", "path": "${DIR}/out.csv"},
            },
            "mapping": {"mc": {"tags": {"vip": "${TAG}"}}},
            "rules": [{"when": "country == '${TAG}'", "add_tags": ["${TAG}"]}],
            "webhooks": {"listen": "${HOST}:${PORT}"},
            "state": {"url": "sqlite:///${DIR}/state.db"},
        },
        environ=environ,
    )
    options = config.providers["mc"].options
    assert options["base_url"] == "http://127.0.0.1:9001/3.0"
    assert options["list_id"] == "abc123"
    assert options["merge_fields"] == {"score": "S_VIP"}
    assert config.providers["files"].options["path"] == "/data/out.csv"
    assert config.mapping["mc"].tags == {"vip": "VIP"}
    assert config.rules[0] == {"when": "country == 'VIP'", "add_tags": ("VIP",)}
    assert config.webhooks.listen == "127.0.0.1:9001"
    assert config.state.url == "sqlite:////data/state.db"


def test_escaped_and_nested_references_are_not_expanded_twice() -> None:
    environ = {**SECRETS, "A": "${B}", "B": "never"}
    config = load({"rules": [{"when": "x == '$${A}' or y == '${A}'", "add_tags": ["t"]}]}, environ=environ)
    assert config.rules[0]["when"] == "x == '${A}' or y == '${B}'"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${NOPE}", "environment variable NOPE is not set"),
        ("pre-${NOPE}-post", "environment variable NOPE is not set"),
        ("${}", "bad ${...} reference"),
        ("${1ABC}", "bad ${...} reference"),
        ("${A-B}", "bad ${...} reference"),
        ("${UNCLOSED", "unclosed ${ in value"),
    ],
)
def test_bad_references_name_the_key_and_the_variable(value: str, expected: str) -> None:
    message = error_of(hubspot(client_secret=value))
    assert message == f"providers.hubspot.client_secret: {expected}" or message.startswith(
        f"providers.hubspot.client_secret: {expected}"
    )


def test_a_missing_variable_in_a_nested_value_names_the_full_path() -> None:
    raw = {"rules": [{"when": "a == 1", "add_tags": ["ok", "${MISSING_TAG}"]}]}
    assert error_of(raw) == "rules[0].add_tags[1]: environment variable MISSING_TAG is not set"
    raw2 = {"providers": {"mc": {**MINIMAL["mailchimp"], "merge_fields": {"score": "${MISSING_MERGE}"}}}}
    assert error_of(raw2) == "providers.mc.merge_fields.score: environment variable MISSING_MERGE is not set"


def test_an_empty_optional_value_counts_as_unset_and_an_empty_required_one_is_missing() -> None:
    environ = {**SECRETS, "EMPTY": ""}
    config = load(hubspot(client_secret="${EMPTY}"), environ=environ)
    assert "client_secret" not in config.providers["hubspot"].options
    raw = {"providers": {"hubspot": {"type": "hubspot", "access_token": "${EMPTY}"}}}
    assert error_of(raw, environ=environ) == "providers.hubspot.access_token: missing required key"


def test_surrounding_whitespace_of_a_variable_is_dropped() -> None:
    environ = {**SECRETS, "TOKEN_FILE_CONTENT": "tok-abc\n"}
    config = load({"providers": {"h": {"type": "hubspot", "access_token": "${TOKEN_FILE_CONTENT}"}}}, environ=environ)
    assert config.providers["h"].options["access_token"].reveal() == "tok-abc"


# --- paths ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("contacts.csv", "/srv/crm/contacts.csv"),
        ("out/contacts.csv", "/srv/crm/out/contacts.csv"),
        ("../shared/contacts.csv", "/srv/shared/contacts.csv"),
        ("/var/lib/crm/contacts.csv", "/var/lib/crm/contacts.csv"),
    ],
)
def test_file_paths_are_relative_to_the_config_file(path: str, expected: str) -> None:
    config = load({"providers": {"f": {"type": "csv", "path": path}}})
    assert config.providers["f"].options["path"] == expected


def test_home_is_expanded_in_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    config = load({"providers": {"f": {"type": "jsonl", "path": "~/c.jsonl"}}})
    assert config.providers["f"].options["path"] == "/home/ops/c.jsonl"


def test_paths_from_a_real_file_are_relative_to_its_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = conf_dir / "sync.toml"
    path.write_text(
        '[state]\nurl = "sqlite:///db/state.db"\n[providers.f]\ntype = "csv"\npath = "c.csv"\n', encoding="utf-8"
    )
    config = load_config(path, environ={})
    assert config.path == path
    assert config.providers["f"].options["path"] == str(conf_dir / "c.csv")
    assert config.state.url == f"sqlite:///{conf_dir}/db/state.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///crmsync.db", "sqlite:////srv/crm/crmsync.db"),
        ("sqlite:///data/s.db?timeout=10", "sqlite:////srv/crm/data/s.db?timeout=10"),
        ("sqlite+pysqlite:///s.db", "sqlite+pysqlite:////srv/crm/s.db"),
        ("sqlite:////var/lib/s.db", "sqlite:////var/lib/s.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://crm@db.example.com/crm", "postgresql+psycopg://crm@db.example.com/crm"),
        ("postgresql://crm@db.example.com/crm", "postgresql+psycopg://crm@db.example.com/crm"),
        ("postgres://crm@db.example.com/crm", "postgresql+psycopg://crm@db.example.com/crm"),
    ],
)
def test_state_urls(url: str, expected: str) -> None:
    assert load({"state": {"url": url}}).state.url == expected


# --- every error names its key, in one line --------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    # top level and tables
    ({"bogus": 1}, "bogus: unknown key"),
    ({"provider": {}}, "provider: unknown key (did you mean providers?)"),
    ({"state": "x"}, "state: expected a table, got string"),
    ({"providers": []}, "providers: expected a table, got array"),
    ({"providers": {"h": "hubspot"}}, "providers.h: expected a table, got string"),
    ({"providers": {"Big Name": MINIMAL["csv"]}}, 'providers."Big Name": provider names use only a-z, 0-9, _ and -'),
    ({"providers": {"HubSpot": MINIMAL["hubspot"]}}, "providers.HubSpot: provider names use only"),
    # type
    ({"providers": {"h": {"access_token": "x"}}}, "providers.h.type: missing required key"),
    (
        {"providers": {"h": {"type": "hubsopt"}}},
        "providers.h.type: unknown type 'hubsopt' (known: hubspot, mailchimp, zoho, activecampaign, getresponse, csv, jsonl)",
    ),
    ({"providers": {"h": {"type": 7}}}, "providers.h.type: expected a string, got integer"),
    # unknown and missing keys, per type
    (hubspot(acces_token="x"), "providers.hubspot.acces_token: unknown key (did you mean access_token?)"),
    (hubspot(list_id="x"), "providers.hubspot.list_id: unknown key"),
    ({"providers": {"h": {"type": "hubspot"}}}, "providers.h.access_token: missing required key"),
    (
        {"providers": {"m": {"type": "mailchimp", "api_key": "${MAILCHIMP_API_KEY}"}}},
        "providers.m.list_id: missing required key",
    ),
    ({"providers": {"m": {"type": "mailchimp", "list_id": "a"}}}, "providers.m.api_key: missing required key"),
    (
        {"providers": {"z": {"type": "zoho", "client_id": "c", "client_secret": "s"}}},
        "providers.z.refresh_token: missing required key",
    ),
    (
        {"providers": {"z": {"type": "zoho", "client_secret": "s", "refresh_token": "r"}}},
        "providers.z.client_id: missing required key",
    ),
    (
        {"providers": {"a": {"type": "activecampaign", "api_token": "t", "list_id": "1"}}},
        "providers.a.api_url: missing required key",
    ),
    (
        {"providers": {"a": {"type": "activecampaign", "api_url": "https://x.example.com", "api_token": "t"}}},
        "providers.a.list_id: missing required key",
    ),
    ({"providers": {"g": {"type": "getresponse", "api_key": "k"}}}, "providers.g.campaign_id: missing required key"),
    ({"providers": {"f": {"type": "csv"}}}, "providers.f.path: missing required key"),
    ({"providers": {"f": {"type": "jsonl", "path": "x", "base": 1}}}, "providers.f.base: unknown key"),
    # wrong types and shapes
    (hubspot(page_size="100"), "providers.hubspot.page_size: expected an integer, got string"),
    (hubspot(page_size=0), "providers.hubspot.page_size: must be 1 or more"),
    (hubspot(page_size=True), "providers.hubspot.page_size: expected an integer, got boolean"),
    (hubspot(page_size=1.5), "providers.hubspot.page_size: expected an integer, got float"),
    (hubspot(base_url="ftp://files.example.com"), "providers.hubspot.base_url: expected an http(s) URL"),
    (hubspot(base_url="http://"), "providers.hubspot.base_url: expected an http(s) URL"),
    (hubspot(base_url="http://host:99999"), "providers.hubspot.base_url: expected an http(s) URL"),
    (hubspot(base_url="http://[::1"), "providers.hubspot.base_url: expected an http(s) URL"),
    (hubspot(rate_limit="fast"), "providers.hubspot.rate_limit: expected requests per window"),
    (hubspot(rate_limit="0/10s"), "providers.hubspot.rate_limit: expected requests per window"),
    (hubspot(rate_limit=100), "providers.hubspot.rate_limit: expected a string, got integer"),
    (hubspot(search_rate_limit="often"), "providers.hubspot.search_rate_limit: expected requests per window"),
    (hubspot(interval="5 minutes"), "providers.hubspot.interval: expected a duration like"),
    (hubspot(interval="0s"), "providers.hubspot.interval: must be longer than 0s"),
    (hubspot(interval=300), "providers.hubspot.interval: expected a string, got integer"),
    (hubspot(portal_id=[1]), "providers.hubspot.portal_id: expected a string, got array"),
    (hubspot(app_id=dt.date(2024, 1, 1)), "providers.hubspot.app_id: expected a string, got date/time"),
    (hubspot(subscription_id={"a": 1}), "providers.hubspot.subscription_id: expected a string, got table"),
    (
        {"providers": {"m": {**MINIMAL["mailchimp"], "new_member_status": "unsubscribed"}}},
        "providers.m.new_member_status: must be one of pending, subscribed",
    ),
    (
        {"providers": {"m": {**MINIMAL["mailchimp"], "merge_fields": "SCORE"}}},
        "providers.m.merge_fields: expected a table, got string",
    ),
    (
        {"providers": {"m": {**MINIMAL["mailchimp"], "merge_fields": {"score": 1}}}},
        "providers.m.merge_fields.score: expected a string, got integer",
    ),
    (
        {"providers": {"m": {**MINIMAL["mailchimp"], "list_id": True}}},
        "providers.m.list_id: expected a string, got boolean",
    ),
    (
        {"providers": {"z": {**MINIMAL["zoho"], "data_center": "us"}}},
        "providers.z.data_center: must be one of com, eu, in, com.au, jp, ca, com.cn, sa",
    ),
    (
        {"providers": {"z": {**MINIMAL["zoho"], "accounts_url": "accounts.zoho.eu"}}},
        "providers.z.accounts_url: expected an http(s) URL",
    ),
    (
        {"providers": {"z": {**MINIMAL["zoho"], "notify_url": "/webhooks/zoho"}}},
        "providers.z.notify_url: expected an http(s) URL",
    ),
    (
        {"providers": {"a": {**MINIMAL["activecampaign"], "api_url": "example.api-us1.com"}}},
        "providers.a.api_url: expected an http(s) URL",
    ),
    ({"providers": {"f": {"type": "csv", "path": 3}}}, "providers.f.path: expected a string, got integer"),
    ({"providers": {"f": {"type": "csv", "path": "a\0b"}}}, "providers.f.path: a path cannot hold a NUL character"),
    (hubspot(properties="a,b"), "providers.hubspot.properties: expected an array of strings, got string"),
    (hubspot(properties=[1]), "providers.hubspot.properties[0]: expected a string, got integer"),
    (
        {"providers": {"z": {**MINIMAL["zoho"], "extra_fields": "Score"}}},
        "providers.z.extra_fields: expected an array of strings, got string",
    ),
    (
        {"providers": {"z": {**MINIMAL["zoho"], "extra_fields": ["Score", " "]}}},
        "providers.z.extra_fields[1]: must not be empty",
    ),
    # state
    (
        {"state": {"url": "mysql://db.example.com/crm"}},
        'state.url: expected "sqlite:///FILE" or "postgresql+psycopg://USER@HOST/DB"',
    ),
    ({"state": {"url": "crmsync.db"}}, "state.url: expected"),
    ({"state": {"url": "sqlite://host/x.db"}}, "state.url: a SQLite URL has no host"),
    ({"state": {"url": 5}}, "state.url: expected a string, got integer"),
    ({"state": {"hash_key": "short"}}, "state.hash_key: must be at least 16 characters"),
    ({"state": {"hashkey": "x"}}, "state.hashkey: unknown key (did you mean hash_key?)"),
    # sync
    ({"sync": {"interval": "5x"}}, "sync.interval: expected a duration like"),
    ({"sync": {"retention": "1y"}}, "sync.retention: expected a duration like"),
    ({"sync": {"retention": "0d"}}, "sync.retention: must be longer than 0s"),
    ({"sync": {"conflict_policy": "oldest"}}, "sync.conflict_policy: must be one of newest, priority, manual"),
    ({"sync": {"conflict_policy": "priority"}}, 'sync.priority: required when conflict_policy = "priority"'),
    ({"sync": {"priority": "hubspot"}}, "sync.priority: expected an array of provider names, got string"),
    (
        {**hubspot(), "sync": {"priority": ["hubspot", "zoho"]}},
        "sync.priority[1]: 'zoho' is not a configured provider (configured: hubspot)",
    ),
    ({**hubspot(), "sync": {"priority": ["hubspot", "hubspot"]}}, "sync.priority[1]: 'hubspot' is listed twice"),
    ({**hubspot(), "sync": {"priority": [1]}}, "sync.priority[0]: expected a string, got integer"),
    ({"sync": {"default_region": "XX"}}, 'sync.default_region: expected a two-letter region code like "US"'),
    ({"sync": {"default_region": 1}}, "sync.default_region: expected a string, got integer"),
    ({"sync": {"policy": "newest"}}, "sync.policy: unknown key"),
    # mapping
    ({"mapping": {"zoho": {"fields": {}}}}, "mapping.zoho: no provider of that name (configured: none)"),
    ({**hubspot(), "mapping": {"hubspot": {"field": {}}}}, "mapping.hubspot.field: unknown key (did you mean fields?)"),
    (
        {**hubspot(), "mapping": {"hubspot": {"fields": {"revenue": "properties.revenue"}}}},
        "mapping.hubspot.fields.revenue: not a canonical field",
    ),
    (
        {**hubspot(), "mapping": {"hubspot": {"fields": {"custom.": "x"}}}},
        'mapping.hubspot.fields."custom.": not a canonical field',
    ),
    (
        {**hubspot(), "mapping": {"hubspot": {"fields": {"industry": 3}}}},
        "mapping.hubspot.fields.industry: expected a string, got integer",
    ),
    (
        {**hubspot(), "mapping": {"hubspot": {"fields": {"custom": {"score": ""}}}}},
        "mapping.hubspot.fields.custom.score: must not be empty",
    ),
    (
        {**hubspot(), "mapping": {"hubspot": {"tags": {"vip": ["VIP"]}}}},
        "mapping.hubspot.tags.vip: expected a string, got array",
    ),
    ({**hubspot(), "mapping": {"hubspot": "x"}}, "mapping.hubspot: expected a table, got string"),
    # rules
    ({"rules": {"when": "x"}}, "rules: expected an array of tables ([[rules]]), got table"),
    ({"rules": ["x"]}, "rules[0]: expected a table, got string"),
    ({"rules": [{"add_tags": ["vip"]}]}, "rules[0].when: missing required key"),
    (
        {"rules": [{"when": "a", "add_tags": ["x"]}, {"when": 1, "add_tags": ["x"]}]},
        "rules[1].when: expected a string, got integer",
    ),
    ({"rules": [{"when": "a", "add_tags": "vip"}]}, "rules[0].add_tags: expected an array of tag names, got string"),
    ({"rules": [{"when": "a", "add_tags": [""]}]}, "rules[0].add_tags[0]: must not be empty"),
    ({"rules": [{"when": "a", "set_lifecycle": 1}]}, "rules[0].set_lifecycle: expected a string, got integer"),
    ({"rules": [{"when": "a"}]}, "rules[0]: a rule needs add_tags or set_lifecycle"),
    ({"rules": [{"when": "a", "add_tags": ["x"], "tags": []}]}, "rules[0].tags: unknown key"),
    # webhooks
    ({"webhooks": {"listen": "8080"}}, 'webhooks.listen: expected "HOST:PORT"'),
    ({"webhooks": {"listen": "0.0.0.0:99999"}}, 'webhooks.listen: expected "HOST:PORT"'),
    ({"webhooks": {"listen": ":8080"}}, 'webhooks.listen: expected "HOST:PORT"'),
    ({"webhooks": {"listen": "::1:8080"}}, 'webhooks.listen: expected "HOST:PORT"'),
    ({"webhooks": {"public_url": "crm.example.com"}}, "webhooks.public_url: expected an http(s) URL"),
    ({"webhooks": {"url": "x"}}, "webhooks.url: unknown key"),
]


@pytest.mark.parametrize(("raw", "expected"), BAD, ids=[expected.split(":")[0] for _, expected in BAD])
def test_each_error_names_its_key_in_one_line(raw: dict[str, Any], expected: str) -> None:
    assert error_of(raw).startswith(expected)


def test_config_error_keeps_the_key_apart_and_stays_on_one_line() -> None:
    error = ConfigError("bad\nvalue", key="sync.interval")
    assert str(error) == "sync.interval: bad value"
    assert error.key == "sync.interval" and error.problem == "bad\nvalue"
    assert str(ConfigError("no key")) == "no key" and ConfigError("no key").key is None
    assert error_of({"bad\nkey": 1}) == '"bad\\nkey": unknown key'


def test_good_edge_values_are_accepted() -> None:
    config = load(
        {
            **hubspot(rate_limit="5/s", base_url="https://[::1]:8443/api"),
            "webhooks": {"listen": "[::1]:0", "public_url": "https://crm.example.com/base"},
        }
    )
    assert config.webhooks.listen == "[::1]:0"
    assert config.providers["hubspot"].options["rate_limit"] == "5/s"


def test_provider_lookup_names_the_configured_ones() -> None:
    config = load({"providers": {"a": MINIMAL["csv"], "b": MINIMAL["jsonl"]}})
    assert config.provider("a").type == "csv"
    with pytest.raises(ConfigError, match=r"^unknown provider 'c' \(configured: a, b\)$"):
        config.provider("c")


# --- secrets --------------------------------------------------------------------------------------------------


def full_config() -> Config:
    raw = tomllib.loads(re.sub(r"(?m)^# (?=[a-z_]+ = )", "", EXAMPLE.read_text(encoding="utf-8")))
    raw["state"]["url"] = "postgresql+psycopg://crm:SECRETDBPASSWORD@db.example.com/crm?password=SECRETQUERYPW"
    raw["providers"]["zoho"]["notify_url"] = "https://crm.example.com/webhooks/zoho?key=SECRETZOHOURLKEY"
    raw["webhooks"]["public_url"] = "https://crm.example.com/?token=SECRETPUBLICTOKEN"
    return load(raw)


def test_secrets_are_secret_values_and_never_printed() -> None:
    config = full_config()
    secrets = [*SECRET_VALUES, "SECRETDBPASSWORD", "SECRETQUERYPW", "SECRETZOHOURLKEY", "SECRETPUBLICTOKEN"]
    for provider in config.providers.values():
        for key, option in PROVIDER_OPTIONS[provider.type].items():
            if option.secret and key in provider.options:
                assert isinstance(provider.options[key], Secret), f"{provider.name}.{key}"
    printed = [repr(config), str(config), json.dumps(redacted_summary(config))]
    printed += [repr(p) for p in config.providers.values()] + [repr(config.state), repr(config.webhooks)]
    for text in printed:
        for secret in secrets:
            assert secret not in text
    assert "***" in repr(config.state) and "crm.example.com" in repr(config.webhooks)
    assert config.providers["zoho"].options["notify_token"].reveal() == SECRETS["ZOHO_NOTIFY_TOKEN"]


def test_secret_values_are_not_echoed_in_errors() -> None:
    # each of these puts a secret-looking value where it does not fit: the message names the key, not the value
    cases: list[dict[str, Any]] = [
        hubspot(access_token=987654321987),
        hubspot(access_token=["SECRETINLIST"]),
        {"providers": {"m": {**MINIMAL["mailchimp"], "api_key": "SECRETMAILCHIMPWITHOUTDC"}}},
        {"providers": {"z": {**MINIMAL["zoho"], "notify_token": "SECRETNOTIFY" * 5}}},
        {"state": {"hash_key": "SECRETSHORT"}},
        {"state": {"url": "mysql://root:SECRETDBPASSWORD@db/crm"}},
        {"providers": {"m": {**MINIMAL["mailchimp"], "list_id": ["SECRETINLIST"]}}},
        hubspot(base_url="ftp://SECRETUSER:SECRETPASSWORD@host"),
    ]
    for raw in cases:
        message = error_of(raw)
        for leaked in (
            "987654321987",
            "SECRETINLIST",
            "SECRETMAILCHIMPWITHOUTDC",
            "SECRETNOTIFY",
            "SECRETSHORT",
            "SECRETDBPASSWORD",
            "SECRETPASSWORD",
            "SECRETUSER",
        ):
            assert leaked not in message, message


def test_redacted_summary_lists_names_types_and_keys() -> None:
    summary = redacted_summary(full_config())
    assert json.loads(json.dumps(summary)) == summary
    assert summary["providers"]["hubspot"]["type"] == "hubspot"
    assert "access_token" in summary["providers"]["hubspot"]["keys"]
    assert summary["providers"]["hubspot"]["secrets"] == ["access_token", "client_secret"]
    assert summary["providers"]["hubspot"]["interval_s"] == 300.0
    assert summary["state"]["backend"] == "postgresql" and summary["state"]["hash_key_set"] is True
    assert summary["mapping"]["hubspot"]["fields"] == ["custom.lifetime_value", "industry"]
    assert summary["rules"] == 2
    assert summary["webhooks"] == {"listen": "127.0.0.1:8080", "public_url_set": True}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://crm:pw@db/crm", "postgresql+psycopg://crm:***@db/crm"),
        ("postgresql+psycopg://crm@db/crm", "postgresql+psycopg://crm@db/crm"),
        ("https://h.example.com/w?key=abc&x=1", "https://h.example.com/w?key=***&x=1"),
        ("https://h.example.com/w?a=1&api_token=abc#f", "https://h.example.com/w?a=1&api_token=***#f"),
        ("sqlite:////srv/crm.db", "sqlite:////srv/crm.db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# --- durations --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("5m", dt.timedelta(minutes=5)),
        ("1h", dt.timedelta(hours=1)),
        ("1d", dt.timedelta(days=1)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("2d12h5m7s", dt.timedelta(days=2, hours=12, minutes=5, seconds=7)),
        ("90s", dt.timedelta(seconds=90)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "m",
        "5 m",
        "5min",
        "1.5h",
        "30m1h",
        "1h1h",
        "-5m",
        "5M",
        " 5m",
        "500ms",
        "9" * 5000 + "s",
        "\uff15m",
        "999999999d999999999h",
        "9" * 30 + "d",
    ],
)
def test_parse_duration_rejects_and_names_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^sync\.interval: ") as info:
        parse_duration(text, key="sync.interval")
    assert "\n" not in str(info.value)


@given(
    st.tuples(*[st.one_of(st.none(), st.integers(0, 10_000))] * 4).filter(
        lambda parts: any(p is not None for p in parts)
    )
)
def test_parse_duration_reads_what_it_is_given(parts: tuple[int | None, ...]) -> None:
    text = "".join(f"{value}{unit}" for value, unit in zip(parts, "dhms", strict=True) if value is not None)
    days, hours, minutes, seconds = (value or 0 for value in parts)
    assert parse_duration(text) == dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


# --- properties -------------------------------------------------------------------------------------------------

KEY_WORDS = sorted(
    {
        "state",
        "sync",
        "providers",
        "mapping",
        "rules",
        "webhooks",
        "url",
        "hash_key",
        "interval",
        "conflict_policy",
        "priority",
        "default_region",
        "retention",
        "fields",
        "tags",
        "when",
        "add_tags",
        "set_lifecycle",
        "listen",
        "public_url",
        "custom",
        *KNOWN_TYPES,
        *COMMON_OPTIONS,
        *(k for spec in PROVIDER_OPTIONS.values() for k in spec),
    }
)
keys = st.one_of(st.sampled_from(KEY_WORDS), st.text(max_size=8))
scalars = st.one_of(
    st.sampled_from(
        [
            "5m",
            "0s",
            "newest",
            "priority",
            "hubspot",
            "${HUBSPOT_TOKEN}",
            "${NOPE}",
            "${",
            "x-us1",
            "http://127.0.0.1:1",
            "sqlite:///x.db",
            "postgres://u:p@h/d",
            "100/10s",
            "US",
            "a\0b",
            "~/x",
            "127.0.0.1:80",
            "[::1]:1",
            "",
            "custom.x",
        ]
    ),
    st.sampled_from(KNOWN_TYPES),
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
# Plausible values per key, mixed with junk, so that generated documents get past the first key and reach
# every check (a pure-junk document stops at its first table).
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "interval": st.sampled_from(["5m", "0s", "1h30m", "5"]),
    "retention": st.sampled_from(["30d", "0d", "1y"]),
    "rate_limit": st.sampled_from(["100/10s", "5/s", "0/s", "x/y"]),
    "base_url": st.sampled_from(["http://127.0.0.1:1", "https://h.example.com/v3", "ftp://x", "http://h:99999"]),
    "api_url": st.sampled_from(["https://a.api-us1.com", "a.api-us1.com"]),
    "accounts_url": st.sampled_from(["https://accounts.zoho.eu", "nope"]),
    "notify_url": st.sampled_from(["https://crm.example.com/webhooks/zoho?key=k", "/x"]),
    "public_url": st.sampled_from(["https://crm.example.com", "crm"]),
    "page_size": st.sampled_from([0, -1, 1, 100, 2000, "100", True]),
    "path": st.sampled_from(["c.csv", "/abs/c.jsonl", "~/x", "a\0b", "", "../x"]),
    "api_key": st.sampled_from(["${MAILCHIMP_API_KEY}", "${GETRESPONSE_API_KEY}", "nodc", "k-us1"]),
    "access_token": st.sampled_from(["${HUBSPOT_TOKEN}", "${EMPTY}", "${NOPE}"]),
    "data_center": st.sampled_from(["com", "eu", "us"]),
    "new_member_status": st.sampled_from(["pending", "subscribed", "cleaned"]),
    "notify_token": st.sampled_from(["${ZOHO_NOTIFY_TOKEN}", "t" * 51]),
    "extra_fields": st.lists(st.sampled_from(["Score", "", "${NOPE}"]), max_size=2),
    "properties": st.lists(st.sampled_from(["plan", " ", 3]), max_size=2),
    "merge_fields": st.dictionaries(st.text(max_size=5), st.sampled_from(["SCORE", "", "${NOPE}"]), max_size=2),
    "url": st.sampled_from(["sqlite:///x.db", "sqlite://", "sqlite://h/x", "postgres://u:p@h/d", "mysql://h/d", "x"]),
    "hash_key": st.sampled_from(["${CRMSYNC_HASH_KEY}", "short"]),
    "conflict_policy": st.sampled_from(CONFLICT_POLICIES + ("oldest",)),
    "priority": st.lists(st.sampled_from(["hubspot", "zoho", "mc", "f", "nope"]), max_size=3),
    "default_region": st.sampled_from(["US", "de", "XX"]),
    "listen": st.sampled_from(["127.0.0.1:8080", "[::1]:0", "::1:80", "h:70000", "8080"]),
    "when": st.sampled_from(["a == 1", ""]),
    "add_tags": st.lists(st.sampled_from(["vip", "", "${NOPE}"]), max_size=2),
    "set_lifecycle": st.sampled_from(["vip", ""]),
}


def values_for(key: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(key, st.sampled_from(["x", "${ZOHO_CLIENT_ID}", "123"]))
    return st.one_of(plausible, plausible, toml_values)


def tables(names: list[str]) -> st.SearchStrategy[Any]:
    table = st.fixed_dictionaries({}, optional={name: values_for(name) for name in names})
    return st.one_of(table, table, table, toml_values)


provider_tables = st.sampled_from(KNOWN_TYPES).flatmap(
    lambda kind: st.fixed_dictionaries(
        {"type": st.just(kind)}, optional={k: values_for(k) for k in options_for(kind) if k != "type"}
    )
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "state": tables(["url", "hash_key"]),
        "sync": tables(["interval", "conflict_policy", "priority", "default_region", "retention"]),
        "providers": st.dictionaries(
            st.sampled_from(["hubspot", "zoho", "mc", "Bad", "f"]), provider_tables, max_size=3
        ),
        "mapping": st.dictionaries(
            st.sampled_from(["hubspot", "zoho", "mc", "f", "nope"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "fields": st.dictionaries(
                        st.sampled_from(["industry", "custom.x", "custom", "nope", "tags"]),
                        st.one_of(st.sampled_from(["properties.x", ""]), toml_values),
                        max_size=3,
                    ),
                    "tags": st.dictionaries(st.text(max_size=4), st.one_of(st.just("VIP"), toml_values), max_size=2),
                },
            ),
            max_size=2,
        ),
        "rules": st.one_of(st.lists(tables(list(RULE_KEYS)), max_size=2), toml_values),
        "webhooks": tables(["listen", "public_url"]),
    },
)


_PATH_PART = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+|\[[0-9]+\]')


def assert_names_a_real_place(raw: Any, key: str, problem: str) -> None:
    """The key an error names leads through the document; only a missing key may be absent at the end."""
    parts = [
        json.loads(p) if p.startswith('"') else int(p[1:-1]) if p.startswith("[") else p
        for p in _PATH_PART.findall(key)
    ]
    assert ".".join(str(p) for p in parts), key
    node = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, int):
            assert isinstance(node, list) and part < len(node), key
        elif last and (problem == "missing required key" or problem.startswith("required when")):
            assert isinstance(node, dict), key  # absent, or present but empty
            return
        else:
            assert isinstance(node, dict) and part in node, key
        node = node[part]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_toml_like_document_loads_or_raises_config_error(raw: dict[str, Any]) -> None:
    environ = {**SECRETS, "EMPTY": ""}
    try:
        config = load(raw, environ=environ)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message
        for secret in SECRET_VALUES:
            assert secret not in message
        assert exc.key is not None and message.startswith(f"{exc.key}: ")
        assert_names_a_real_place(raw, exc.key, exc.problem)
    else:
        text = repr(config) + json.dumps(redacted_summary(config))
        for secret in SECRET_VALUES:
            assert secret not in text


@settings(max_examples=300, deadline=None)
@given(st.recursive(toml_values, lambda children: st.dictionaries(keys, children, max_size=5), max_leaves=20))
def test_any_value_at_the_top_loads_or_raises_config_error(raw: Any) -> None:
    try:
        load(raw if isinstance(raw, dict) else {"x": raw})
    except ConfigError:
        pass


OPTIONAL_VALUES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "interval": lambda: st.sampled_from(["30s", "1m", "2h"]),
    "rate_limit": lambda: st.sampled_from(["100/10s", "5/s", "300/m"]),
    "base_url": lambda: st.sampled_from(["http://127.0.0.1:8001", "https://api.example.com/v3"]),
    "page_size": lambda: st.integers(1, 1000),
}


@settings(max_examples=100, deadline=None)
@given(
    provider_type=st.sampled_from(KNOWN_TYPES),
    common=st.fixed_dictionaries({}, optional={k: v() for k, v in OPTIONAL_VALUES.items()}),
    bad_key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
)
def test_a_valid_provider_loads_and_any_extra_key_is_named(
    provider_type: str, common: dict[str, Any], bad_key: str
) -> None:
    table = {**MINIMAL[provider_type], **common}
    config = load({"providers": {"p": table}})
    options = config.providers["p"].options
    for key, value in common.items():
        assert options[key] == (parse_duration(value) if key == "interval" else value)
    if bad_key not in PROVIDER_OPTIONS[provider_type] and bad_key not in COMMON_OPTIONS:
        assert error_of({"providers": {"p": {**table, bad_key: "x"}}}).startswith(f"providers.p.{bad_key}: unknown key")


# --- the options other modules hand us or read from us ------------------------------------------------------


def test_every_emulators_sandbox_options_load_as_a_provider_table() -> None:
    from adapters.hubspot.emulator import HubSpotEmulator
    from adapters.mailchimp.emulator import MailchimpEmulator
    from adapters.zoho.emulator import ZohoEmulator

    for emulator_class in (HubSpotEmulator, MailchimpEmulator, ZohoEmulator):
        with emulator_class() as emulator:
            options = emulator.sandbox_options()
            provider = load({"providers": {"p": options}}, environ={}).providers["p"]
        assert provider.options["base_url"] == options["base_url"]
        for key, value in options.items():
            expected = (
                Secret(value) if PROVIDER_OPTIONS[provider.type].get(key, COMMON_OPTIONS["type"]).secret else value
            )
            assert provider.options[key] == expected, key


def test_file_providers_build_from_loaded_options(tmp_path: Path) -> None:
    from adapters.files import create_adapter

    config = load({"providers": {"a": MINIMAL["csv"], "b": {**MINIMAL["jsonl"], "page_size": 7}}}, base=tmp_path)
    built = {name: create_adapter(name, provider.options) for name, provider in config.providers.items()}
    assert (built["a"].path, built["b"].path) == (tmp_path / "contacts.csv", tmp_path / "contacts.jsonl")
    assert built["b"].page_size == 7


def test_adapters_build_from_the_fully_uncommented_example() -> None:
    # every key set, as the loader hands them over: the adapters accept the types it produces
    import importlib

    config = full_config()
    packages = {"hubspot": "hubspot", "mailchimp": "mailchimp", "zoho": "zoho", "export": "files", "archive": "files"}
    for name, package in packages.items():
        adapter = importlib.import_module(f"adapters.{package}").create_adapter(name, config.providers[name].options)
        assert adapter.name == name
        close = getattr(adapter, "close", None)
        if close is not None:
            close()
