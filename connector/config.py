"""crmsync.toml -> frozen Config: validated, ``${ENV}``-expanded, secrets wrapped, paths absolute."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import urlsplit

from adapters.ratelimit import RateLimiter
from adapters.secret import Secret
from mappings.contact import CUSTOM_PREFIX, SCALAR_FIELDS
from mappings.normalize import is_phone_region

ConflictPolicy = Literal["newest", "priority", "manual"]
CONFLICT_POLICIES: Final[tuple[ConflictPolicy, ...]] = ("newest", "priority", "manual")
DEFAULT_CONFIG_NAME: Final = "crmsync.toml"
CONFIG_ENV: Final = "CRMSYNC_CONFIG"
DEFAULT_STATE_URL: Final = "sqlite:///crmsync.db"
DEFAULT_LISTEN: Final = "127.0.0.1:8080"
MIN_HASH_KEY_CHARS: Final = 16  # the keyed hash of forgotten addresses is only as strong as its key
TOP_LEVEL_KEYS: Final = ("state", "sync", "providers", "mapping", "rules", "webhooks")
RULE_KEYS: Final = ("when", "add_tags", "set_lifecycle")
MAPPABLE_FIELDS: Final = frozenset({*SCALAR_FIELDS, "tags", "consent"})


class ConfigError(Exception):
    """A bad config, in one line naming the key or variable; never a secret value."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        text = f"{key}: {message}" if key else message
        super().__init__(" ".join(text.split()))
        self.key = key
        self.problem = message


_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(dict[_K, _V]):
    """A dict that refuses changes; unlike MappingProxyType it pickles, deep-copies and ``asdict``s."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("config values are read-only")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))


# --- the values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class StateConfig:
    url: str = DEFAULT_STATE_URL  # SQLAlchemy URL; a relative sqlite path is made absolute at load time
    hash_key: Secret | None = None  # key of the keyed hash that `forget` leaves behind

    def __repr__(self) -> str:
        return f"StateConfig(url={redact_url(self.url)!r}, hash_key={self.hash_key!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    interval: dt.timedelta = dt.timedelta(minutes=5)
    conflict_policy: ConflictPolicy = "newest"
    priority: tuple[str, ...] = ()
    default_region: str | None = None  # phone parsing of numbers without a country code, e.g. "US"
    retention: dt.timedelta = dt.timedelta(days=30)  # the daemon prunes older runs and inbox rows


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ProviderConfig:
    name: str
    type: str
    options: Mapping[str, Any]  # the table's keys (always "type"), env-expanded, secrets as Secret, paths absolute
    interval: dt.timedelta | None = None  # per-provider poll interval (overrides sync.interval)

    def __repr__(self) -> str:
        options = {key: _redacted(value) for key, value in self.options.items()}
        return f"ProviderConfig(name={self.name!r}, type={self.type!r}, options={options!r})"


def _empty() -> Mapping[str, str]:
    return FrozenDict()


@dataclass(frozen=True, slots=True, kw_only=True)
class MappingConfig:
    fields: Mapping[str, str] = field(default_factory=_empty)  # canonical field -> provider field path
    tags: Mapping[str, str] = field(default_factory=_empty)  # canonical tag -> provider tag / list / interest name


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class WebhooksConfig:
    listen: str = DEFAULT_LISTEN  # host:port of the daemon's webhook server
    public_url: str | None = None  # how providers reach it (behind a proxy); channel registration uses it

    def __repr__(self) -> str:
        public = None if self.public_url is None else redact_url(self.public_url)
        return f"WebhooksConfig(listen={self.listen!r}, public_url={public!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: Path
    state: StateConfig
    sync: SyncConfig
    providers: Mapping[str, ProviderConfig]  # in file order
    mapping: Mapping[str, MappingConfig]  # by provider name
    rules: tuple[Mapping[str, Any], ...]  # raw [[rules]] tables; mappings.rules compiles them
    webhooks: WebhooksConfig

    def provider(self, name: str) -> ProviderConfig:
        """The provider called ``name``; ConfigError listing the configured ones otherwise."""
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(self.providers) or "none"
            raise ConfigError(f"unknown provider {name!r} (configured: {known})") from None

    def interval_for(self, name: str) -> dt.timedelta:
        return self.provider(name).interval or self.sync.interval


# --- finding and loading ------------------------------------------------------------------------------------


def find_config_path(
    explicit: str | None, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """``--config PATH``, else ``$CRMSYNC_CONFIG``, else ``./crmsync.toml``; the first one named must exist."""
    env = os.environ if environ is None else environ
    if explicit:
        candidate, source = Path(explicit).expanduser(), "--config"
    elif env.get(CONFIG_ENV):
        candidate, source = Path(env[CONFIG_ENV]).expanduser(), CONFIG_ENV
    else:
        candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
        if not candidate.is_file():
            raise ConfigError(f"no config file: pass --config PATH, set {CONFIG_ENV} or create ./{DEFAULT_CONFIG_NAME}")
        return candidate.absolute()
    if candidate.is_dir():
        raise ConfigError(f"{candidate} is a directory, not a config file", key=source)
    if not candidate.is_file():
        raise ConfigError(f"no such config file: {candidate}", key=source)
    return candidate.absolute()


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate one TOML file; ConfigError names the first bad key."""
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or type(exc).__name__}", key=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", key=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", key=str(path)) from None
    base_dir = path.absolute().parent
    return load_config_from_mapping(
        raw, base_dir=base_dir, environ=os.environ if environ is None else environ, path=path.absolute()
    )


def load_config_from_mapping(
    raw: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str], path: Path | None = None
) -> Config:
    """Validate an already-parsed TOML document; relative paths resolve against ``base_dir``."""
    ctx = _Ctx(environ=environ, base_dir=base_dir)
    top = _table(raw, "")
    _reject_unknown(top, TOP_LEVEL_KEYS, "")
    providers = _providers(ctx, top.get("providers", {}))
    return Config(
        path=path or base_dir / DEFAULT_CONFIG_NAME,
        state=_state(ctx, top.get("state", {})),
        sync=_sync(ctx, top.get("sync", {}), providers),
        providers=FrozenDict(providers),
        mapping=_mappings(ctx, top.get("mapping", {}), providers),
        rules=_rules(ctx, top.get("rules", [])),
        webhooks=_webhooks(ctx, top.get("webhooks", {})),
    )


# --- durations and small shapes -----------------------------------------------------------------------------

_DURATION: Final = re.compile(r"(?:([0-9]{1,9})d)?(?:([0-9]{1,9})h)?(?:([0-9]{1,9})m)?(?:([0-9]{1,9})s)?\Z")
_PROVIDER_NAME: Final = re.compile(r"[a-z0-9_-]+\Z")
_ENV_REF: Final = re.compile(r"\$(\$?)\{([^}]*)\}")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+\Z")


def parse_duration(text: str, *, key: str = "duration") -> dt.timedelta:
    """Parse "30s", "5m", "1h", "1d" or "1h30m" (units in that order, each at most once)."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None:
        raise ConfigError('expected a duration like "30s", "5m", "1h", "1d" or "1h30m"', key=key)
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    try:
        return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ConfigError("duration too large", key=key) from None


def redact_url(url: str) -> str:
    """The URL with any password and secret-looking query values (key=, token=, ...) replaced by ***."""
    url = re.sub(r"(://[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&][^=&#]*(?:key|secret|token|pass|sig|auth)[^=&#]*=)[^&#]*", r"\1***", url)


def _redacted(value: Any) -> Any:
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    return value


def _join(path: str, key: object) -> str:
    text = str(key)
    part = text if _BARE_KEY.match(text) else json.dumps(text)
    return f"{path}.{part}" if path else part


def _kind(value: object) -> str:
    kinds = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"))
    for cls, name in kinds:
        if isinstance(value, cls):
            return name
    if isinstance(value, Mapping):
        return "table"
    return "date/time" if isinstance(value, dt.date | dt.time) else type(value).__name__


# --- the reading context and converters ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    environ: Mapping[str, str]
    base_dir: Path

    def expand(self, text: str, key: str) -> str:
        """Replace ``${NAME}`` by the variable; ``$${`` stands for a literal ``${``."""

        def substitute(match: re.Match[str]) -> str:
            if match[1]:
                return "${" + match[2] + "}"
            if not _ENV_NAME.match(match[2]):
                raise ConfigError("bad ${...} reference: use letters, digits and _", key=key)
            if match[2] not in self.environ:
                raise ConfigError(f"environment variable {match[2]} is not set", key=key)
            return self.environ[match[2]]

        if "${" in _ENV_REF.sub("", text):
            raise ConfigError("unclosed ${ in value", key=key)
        return _ENV_REF.sub(substitute, text)


Convert = Callable[[_Ctx, object, str], Any]  # (context, raw value, key) -> value, or None for "not set"


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a table, got {_kind(value)}", key=key or "config")
    for name in value:
        if not isinstance(name, str):
            raise ConfigError("table keys must be strings", key=key or "config")
    return dict(value)


def _read(ctx: _Ctx, table: Mapping[str, Any], name: str, prefix: str, convert: Convert) -> Any:
    """``convert`` applied to ``table[name]``, or None when the key is absent."""
    return convert(ctx, table[name], _join(prefix, name)) if name in table else None


def _reject_unknown(table: Mapping[str, Any], allowed: tuple[str, ...] | Mapping[str, Any], key: str) -> None:
    for name in table:
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown key{hint}", key=_join(key, name))


def _text(ctx: _Ctx, value: object, key: str) -> str | None:
    """A string (``${ENV}`` expanded, trimmed); empty means not set."""
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {_kind(value)}", key=key)
    return ctx.expand(value, key).strip() or None


def _secret(ctx: _Ctx, value: object, key: str) -> Secret | None:
    text = _text(ctx, value, key)
    return None if text is None else Secret(text)


def _ident(ctx: _Ctx, value: object, key: str) -> str | None:
    """An id written as a string or an integer (``list_id = 42``); kept as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(ctx, value, key)


def _url(ctx: _Ctx, value: object, key: str) -> str | None:
    text = _text(ctx, value, key)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a bad port raises ValueError
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError("expected an http(s) URL like https://host/path", key=key)
    return text


def _duration(ctx: _Ctx, value: object, key: str) -> dt.timedelta | None:
    text = _text(ctx, value, key)
    if text is None:
        return None
    duration = parse_duration(text, key=key)
    if duration <= dt.timedelta(0):
        raise ConfigError("must be longer than 0s", key=key)
    return duration


def _rate_limit(ctx: _Ctx, value: object, key: str) -> str | None:
    text = _text(ctx, value, key)
    if text is not None:
        try:
            RateLimiter.parse(text)  # the adapters read it with this same parser
        except ValueError:
            raise ConfigError('expected requests per window like "100/10s", "5/s" or "300/m"', key=key) from None
    return text


def _positive_int(ctx: _Ctx, value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"expected an integer, got {_kind(value)}", key=key)
    if value < 1:
        raise ConfigError("must be 1 or more", key=key)
    return value


def _path(ctx: _Ctx, value: object, key: str) -> str | None:
    text = _text(ctx, value, key)
    if text is None:
        return None
    if "\0" in text:
        raise ConfigError("a path cannot hold a NUL character", key=key)
    return os.path.normpath(ctx.base_dir / Path(text).expanduser())


def _choice(*choices: str) -> Convert:
    def convert(ctx: _Ctx, value: object, key: str) -> str | None:
        text = _text(ctx, value, key)
        if text is not None and text not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}", key=key)
        return text

    return convert


def _str_table(ctx: _Ctx, value: object, key: str) -> dict[str, str]:
    """A table of non-empty strings (``merge_fields``, mapping tables)."""
    result: dict[str, str] = {}
    for name, item in _table(value, key).items():
        text = _text(ctx, item, _join(key, name))
        if text is None:
            raise ConfigError("must not be empty", key=_join(key, name))
        result[name] = text
    return result


def _frozen_str_table(ctx: _Ctx, value: object, key: str) -> FrozenDict[str, str]:
    return FrozenDict(_str_table(ctx, value, key))


def _str_list(ctx: _Ctx, value: object, key: str) -> tuple[str, ...]:
    """An array of non-empty strings (``add_tags``, ``extra_fields``, ``properties``)."""
    if not isinstance(value, list):
        raise ConfigError(f"expected an array of strings, got {_kind(value)}", key=key)
    return tuple(_nonempty(ctx, item, f"{key}[{index}]") for index, item in enumerate(value))


_MAILCHIMP_KEY: Final = re.compile(r"[^\s-]+-[a-z]+[0-9]+\Z")


def _mailchimp_key(ctx: _Ctx, value: object, key: str) -> Secret | None:
    # The data centre is the key's suffix ("...-us21" -> us21.api.mailchimp.com); see providers/mailchimp.md.
    secret = _secret(ctx, value, key)
    if secret is not None and not _MAILCHIMP_KEY.match(secret.reveal()):
        raise ConfigError('must look like "<key>-<dc>", e.g. "...-us21" (the data centre suffix)', key=key)
    return secret


# The channel token is echoed in every notification, at most 50 characters:
# https://zoho.com/crm/developer/docs/api/v7/notifications/enable.html
ZOHO_TOKEN_MAX: Final = 50


def _zoho_token(ctx: _Ctx, value: object, key: str) -> Secret | None:
    secret = _secret(ctx, value, key)
    if secret is not None and len(secret.reveal()) > ZOHO_TOKEN_MAX:
        raise ConfigError(f"Zoho accepts at most {ZOHO_TOKEN_MAX} characters", key=key)
    return secret


# --- providers ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One key of a provider table: how to read it, whether it must be there, its default."""

    convert: Convert
    required: bool = False
    default: Any = None
    secret: bool = False


def _req(convert: Convert) -> Option:
    return Option(convert, required=True)


COMMON_OPTIONS: Final[Mapping[str, Option]] = {
    "type": _req(_text),
    "interval": Option(_duration),  # per-provider poll interval
    "rate_limit": Option(_rate_limit),  # "190/10s": requests per window (default: the provider's published limit)
    "base_url": Option(_url),  # tests, proxies, emulators
    "page_size": Option(_positive_int),
}
DATA_CENTERS: Final = ("com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa")  # providers/zoho.md
PROVIDER_OPTIONS: Final[Mapping[str, Mapping[str, Option]]] = {
    "hubspot": {
        "access_token": Option(_secret, required=True, secret=True),
        "client_secret": Option(_secret, secret=True),  # verifies X-HubSpot-Signature-v3
        "app_id": Option(_ident),
        "portal_id": Option(_ident),
        "subscription_id": Option(_ident),  # Communication Preferences subscription for consent writes
        "properties": Option(_str_list),  # more contact property names to read (custom properties)
        "search_rate_limit": Option(_rate_limit),  # CRM search's own limit (default "5/1s", HubSpot's published one)
    },
    "mailchimp": {
        "api_key": Option(_mailchimp_key, required=True, secret=True),
        "list_id": _req(_ident),
        "webhook_secret": Option(_secret, secret=True),
        "new_member_status": Option(_choice("pending", "subscribed"), default="pending"),
        "merge_fields": Option(_frozen_str_table),
    },
    "zoho": {
        "client_id": _req(_text),
        "client_secret": Option(_secret, required=True, secret=True),
        "refresh_token": Option(_secret, required=True, secret=True),
        "data_center": Option(_choice(*DATA_CENTERS), default="com"),
        "accounts_url": Option(_url),
        "notify_token": Option(_zoho_token, secret=True),
        "notify_url": Option(_url),
        "extra_fields": Option(_str_list),  # more Contacts field API names to read (v8 reads name their fields)
        "max_connections": Option(_positive_int),  # concurrent calls (Zoho caps them per edition; default 5)
    },
    "activecampaign": {
        "api_url": _req(_url),
        "api_token": Option(_secret, required=True, secret=True),
        "list_id": _req(_ident),
        "webhook_token": Option(_secret, secret=True),  # ?token= in the webhook URL: ActiveCampaign signs nothing
    },
    "getresponse": {
        "api_key": Option(_secret, required=True, secret=True),
        "campaign_id": _req(_ident),
        "webhook_secret": Option(_secret, secret=True),  # ?secret= in the webhook URL: GetResponse signs nothing
        "domain": Option(_text),  # X-Domain for GetResponse MAX accounts
    },
    "csv": {"path": _req(_path)},
    "jsonl": {"path": _req(_path)},
}
KNOWN_TYPES: Final = tuple(PROVIDER_OPTIONS)


def options_for(provider_type: str) -> Mapping[str, Option]:
    """Every key a provider table of this type accepts, common keys first."""
    return {**COMMON_OPTIONS, **PROVIDER_OPTIONS[provider_type]}


def _providers(ctx: _Ctx, raw: object) -> dict[str, ProviderConfig]:
    return {name: _provider(ctx, name, value) for name, value in _table(raw, "providers").items()}


def _provider(ctx: _Ctx, name: str, raw: object) -> ProviderConfig:
    key = _join("providers", name)
    if not _PROVIDER_NAME.match(name):
        raise ConfigError("provider names use only a-z, 0-9, _ and -", key=key)
    table = _table(raw, key)
    provider_type = _read(ctx, table, "type", key, _text)
    if provider_type is None:
        raise ConfigError("missing required key", key=_join(key, "type"))
    if provider_type not in PROVIDER_OPTIONS:
        raise ConfigError(f"unknown type {provider_type!r} (known: {', '.join(KNOWN_TYPES)})", key=_join(key, "type"))
    spec = options_for(provider_type)
    _reject_unknown(table, spec, key)
    options: dict[str, Any] = {"type": provider_type}
    for option_name, option in spec.items():
        value = _read(ctx, table, option_name, key, option.convert)
        if value is None and option.required:
            raise ConfigError("missing required key", key=_join(key, option_name))
        value = option.default if value is None else value
        if value is not None:
            options[option_name] = value
    interval = cast(dt.timedelta | None, options.get("interval"))
    return ProviderConfig(name=name, type=provider_type, options=FrozenDict(options), interval=interval)


# --- the other tables ---------------------------------------------------------------------------------------


def _state(ctx: _Ctx, raw: object) -> StateConfig:
    table = _table(raw, "state")
    _reject_unknown(table, ("url", "hash_key"), "state")
    url = _read(ctx, table, "url", "state", _text)
    hash_key = _read(ctx, table, "hash_key", "state", _secret)
    if hash_key is not None and len(hash_key.reveal()) < MIN_HASH_KEY_CHARS:
        raise ConfigError(f"must be at least {MIN_HASH_KEY_CHARS} characters", key="state.hash_key")
    return StateConfig(url=_database_url(url or DEFAULT_STATE_URL, ctx.base_dir), hash_key=hash_key)


def _database_url(url: str, base_dir: Path) -> str:
    """Check the backend; make a relative SQLite path absolute against the config file's directory."""
    scheme, sep, rest = url.partition("://")
    backend = scheme.partition("+")[0].lower()
    if sep and scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"  # psycopg 3 is the driver `pip install .` brings
    if not sep or backend not in ("sqlite", "postgresql"):
        raise ConfigError('expected "sqlite:///FILE" or "postgresql+psycopg://USER@HOST/DB"', key="state.url")
    if backend == "postgresql":
        return url
    if rest and not rest.startswith("/"):
        raise ConfigError('a SQLite URL has no host: "sqlite:///relative.db" or "sqlite:////abs.db"', key="state.url")
    file_part, qmark, query = rest[1:].partition("?")
    if file_part in ("", ":memory:") or file_part.startswith("file:"):
        return url
    if "\0" in file_part:
        raise ConfigError("a path cannot hold a NUL character", key="state.url")
    absolute = os.path.normpath(base_dir / Path(file_part).expanduser())
    return f"{scheme}:///{absolute}{qmark}{query}"  # four slashes: an absolute path


def _sync(ctx: _Ctx, raw: object, providers: Mapping[str, ProviderConfig]) -> SyncConfig:
    table = _table(raw, "sync")
    fields = ("interval", "conflict_policy", "priority", "default_region", "retention")
    _reject_unknown(table, fields, "sync")
    defaults = SyncConfig()
    policy = _read(ctx, table, "conflict_policy", "sync", _choice(*CONFLICT_POLICIES)) or defaults.conflict_policy
    priority = _priority(ctx, table.get("priority", []), providers)
    if policy == "priority" and not priority:
        raise ConfigError('required when conflict_policy = "priority"', key="sync.priority")
    return SyncConfig(
        interval=_read(ctx, table, "interval", "sync", _duration) or defaults.interval,
        conflict_policy=cast(ConflictPolicy, policy),
        priority=priority,
        default_region=_read(ctx, table, "default_region", "sync", _region),
        retention=_read(ctx, table, "retention", "sync", _duration) or defaults.retention,
    )


def _priority(ctx: _Ctx, raw: object, providers: Mapping[str, ProviderConfig]) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"expected an array of provider names, got {_kind(raw)}", key="sync.priority")
    names: list[str] = []
    for index, item in enumerate(raw):
        key = f"sync.priority[{index}]"
        name = _nonempty(ctx, item, key)
        if name not in providers:
            known = ", ".join(providers) or "none"
            raise ConfigError(f"{name!r} is not a configured provider (configured: {known})", key=key)
        if name in names:
            raise ConfigError(f"{name!r} is listed twice", key=key)
        names.append(name)
    return tuple(names)


def _region(ctx: _Ctx, value: object, key: str) -> str | None:
    text = _text(ctx, value, key)
    if text is not None and not is_phone_region(text.upper()):
        raise ConfigError('expected a two-letter region code like "US" or "DE"', key=key)
    return None if text is None else text.upper()


def _mappings(ctx: _Ctx, raw: object, providers: Mapping[str, ProviderConfig]) -> Mapping[str, MappingConfig]:
    result: dict[str, MappingConfig] = {}
    for name, value in _table(raw, "mapping").items():
        key = _join("mapping", name)
        if name not in providers:
            known = ", ".join(providers) or "none"
            raise ConfigError(f"no provider of that name (configured: {known})", key=key)
        table = _table(value, key)
        _reject_unknown(table, ("fields", "tags"), key)
        fields = _field_map(ctx, table.get("fields", {}), _join(key, "fields"))
        tags = _str_table(ctx, table.get("tags", {}), _join(key, "tags"))
        result[name] = MappingConfig(fields=FrozenDict(fields), tags=FrozenDict(tags))
    return FrozenDict(result)


def _field_map(ctx: _Ctx, raw: object, key: str) -> dict[str, str]:
    """Canonical field -> provider path; ``custom.score = ...`` (a dotted TOML key) is a nested table."""
    table = _table(raw, key)
    custom = table.pop("custom", None)
    flat = _str_table(ctx, table, key)
    if custom is not None:
        extra = _str_table(ctx, custom, _join(key, "custom"))
        flat.update({f"{CUSTOM_PREFIX}{name}": path for name, path in extra.items()})
    for name in flat:
        if name not in MAPPABLE_FIELDS and not (name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX)):
            problem = "not a canonical field (email, first_name, ..., tags, consent, custom.<name>)"
            raise ConfigError(problem, key=_join(key, name))
    return flat


def _rules(ctx: _Ctx, raw: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"expected an array of tables ([[rules]]), got {_kind(raw)}", key="rules")
    return tuple(_rule(ctx, item, f"rules[{index}]") for index, item in enumerate(raw))


def _rule(ctx: _Ctx, raw: object, key: str) -> Mapping[str, Any]:
    table = _table(raw, key)
    _reject_unknown(table, RULE_KEYS, key)
    rule: dict[str, Any] = {}
    when = _read(ctx, table, "when", key, _text)
    if when is None:
        raise ConfigError("missing required key", key=f"{key}.when")
    rule["when"] = when
    if "add_tags" in table:
        tags = table["add_tags"]
        if not isinstance(tags, list):
            raise ConfigError(f"expected an array of tag names, got {_kind(tags)}", key=f"{key}.add_tags")
        rule["add_tags"] = _str_list(ctx, tags, f"{key}.add_tags")
    if "set_lifecycle" in table:
        rule["set_lifecycle"] = _nonempty(ctx, table["set_lifecycle"], f"{key}.set_lifecycle")
    if not rule.get("add_tags") and "set_lifecycle" not in rule:
        raise ConfigError("a rule needs add_tags or set_lifecycle", key=key)
    return FrozenDict(rule)


def _nonempty(ctx: _Ctx, value: object, key: str) -> str:
    text = _text(ctx, value, key)
    if text is None:
        raise ConfigError("must not be empty", key=key)
    return text


def _webhooks(ctx: _Ctx, raw: object) -> WebhooksConfig:
    table = _table(raw, "webhooks")
    _reject_unknown(table, ("listen", "public_url"), "webhooks")
    listen = _read(ctx, table, "listen", "webhooks", _text)
    public_url = _read(ctx, table, "public_url", "webhooks", _url)
    return WebhooksConfig(listen=_listen(listen or DEFAULT_LISTEN), public_url=public_url)


def _listen(text: str) -> str:
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    valid_host = bool(host) and (not any(c in host for c in "[]:") or bracketed) and " " not in host
    if not (sep and valid_host and port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ConfigError('expected "HOST:PORT" like "127.0.0.1:8080" or "[::1]:8080"', key="webhooks.listen")
    return text


# --- for `crmsync check --json` -----------------------------------------------------------------------------


def redacted_summary(config: Config) -> dict[str, Any]:
    """What is configured, as JSON-ready data: types, names and which keys are set, never a secret."""
    state_backend = config.state.url.partition("://")[0].partition("+")[0]
    return {
        "path": str(config.path),
        "state": {
            "backend": state_backend,
            "url": redact_url(config.state.url),
            "hash_key_set": config.state.hash_key is not None,
        },
        "sync": {
            "interval_s": config.sync.interval.total_seconds(),
            "conflict_policy": config.sync.conflict_policy,
            "priority": list(config.sync.priority),
            "default_region": config.sync.default_region,
            "retention_s": config.sync.retention.total_seconds(),
        },
        "providers": {name: _provider_summary(config, provider) for name, provider in config.providers.items()},
        "mapping": {
            name: {"fields": sorted(mapping.fields), "tags": sorted(mapping.tags)}
            for name, mapping in config.mapping.items()
        },
        "rules": len(config.rules),
        "webhooks": {"listen": config.webhooks.listen, "public_url_set": config.webhooks.public_url is not None},
    }


def _provider_summary(config: Config, provider: ProviderConfig) -> dict[str, Any]:
    spec = options_for(provider.type)
    keys = sorted(key for key in provider.options if key != "type")
    return {
        "type": provider.type,
        "keys": keys,
        "secrets": [key for key in keys if spec[key].secret],
        "interval_s": config.interval_for(provider.name).total_seconds(),
    }
