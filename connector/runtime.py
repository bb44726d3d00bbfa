"""A configured provider at run time: its adapter and its mapping, built from config."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import ProviderAdapter
from connector.config import Config, ConfigError, MappingConfig, ProviderConfig
from mappings.mapper import MappingError, ProviderMapping, UnknownProviderType, build_mapping
from state.store import Store

ADAPTER_PACKAGES: Final = {
    "csv": "adapters.files",
    "jsonl": "adapters.files",
    "hubspot": "adapters.hubspot",
    "mailchimp": "adapters.mailchimp",
    "zoho": "adapters.zoho",
    "activecampaign": "adapters.activecampaign",
    "getresponse": "adapters.getresponse",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderRuntime:
    name: str
    type: str
    adapter: ProviderAdapter
    mapping: ProviderMapping
    carried: frozenset[str]


def build_adapter(
    provider: ProviderConfig, store: Store | None = None, *, read_fields: tuple[str, ...] = ()
) -> ProviderAdapter:
    package = ADAPTER_PACKAGES.get(provider.type)
    if package is None:
        raise ConfigError(f"providers.{provider.name}.type: unknown provider type {provider.type!r}")
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError:
        raise ConfigError(
            f"providers.{provider.name}.type: provider type {provider.type!r} is not available in this build"
        ) from None
    options: dict[str, Any] = {"type": provider.type, **provider.options}
    if provider.type == "hubspot" and read_fields:  # HubSpot returns only the properties asked for
        extra = options.get("properties") or ()
        listed = extra.split(",") if isinstance(extra, str) else list(extra)
        options["properties"] = tuple(dict.fromkeys([*(p.strip() for p in listed if p.strip()), *read_fields]))
    if provider.type == "zoho" and store is not None:  # one access token shared by threads, runs and replicas
        from connector.tokens import StateTokenStore

        options["token_store"] = StateTokenStore(store, provider.name)
    adapter: ProviderAdapter = module.create_adapter(provider.name, options)
    return adapter


def _overridden_properties(overrides: MappingConfig | None) -> tuple[str, ...]:
    """HubSpot property names that ``[mapping.<name>.fields]`` points at (``properties.<name>``)."""
    if overrides is None:
        return ()
    return tuple(path.split(".", 1)[1] for path in overrides.fields.values() if path.startswith("properties."))


def _merge_field_overrides(provider: ProviderConfig) -> dict[str, str]:
    """Mailchimp's ``merge_fields`` table (custom field = merge tag) as field overrides."""
    if provider.type != "mailchimp":
        return {}
    table = provider.options.get("merge_fields") or {}
    return {f"custom.{field}": f"merge_fields.{tag}" for field, tag in table.items()}


def build_runtime(config: Config, name: str, store: Store | None = None) -> ProviderRuntime:
    provider = config.providers.get(name)
    if provider is None:
        known = ", ".join(config.providers) or "none"
        raise ConfigError(f"--provider {name}: no such provider in the config (configured: {known})")
    overrides = config.mapping.get(name)
    field_overrides = {**_merge_field_overrides(provider), **(overrides.fields if overrides else {})}
    try:
        mapping = build_mapping(
            provider.type,
            field_overrides=field_overrides,
            tag_overrides=overrides.tags if overrides else {},
            default_region=config.sync.default_region,
        )
    except (MappingError, UnknownProviderType) as exc:
        raise ConfigError(f"mapping.{name}: {exc}") from None
    return ProviderRuntime(
        name=name, type=provider.type, mapping=mapping,
        adapter=build_adapter(provider, store, read_fields=_overridden_properties(overrides)),
        carried=mapping.carried_fields,
    )


