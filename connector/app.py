"""Wiring: a config becomes a store, provider runtimes and an engine. The CLI and daemon share it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from connector.config import Config, ConfigError
from connector.engine import Engine, EngineSettings
from connector.planner import ConflictPolicy
from connector.progress import ProgressSink
from connector.runtime import ProviderRuntime, build_runtime
from mappings.rules import RuleError, apply_rules, compile_rules
from state.store import Store


def engine_settings(config: Config) -> EngineSettings:
    try:
        rules = compile_rules(config.rules)
    except RuleError as exc:
        raise ConfigError(str(exc)) from None
    classify = partial(_classify, rules=rules) if rules else None
    return EngineSettings(
        policy=ConflictPolicy(config.sync.conflict_policy),
        priority=tuple(config.sync.priority),
        classify=classify,
        providers=tuple(config.providers),
    )


def _classify(fields: Mapping[str, Any], *, rules: Sequence[Any]) -> dict[str, Any]:
    return apply_rules(fields, rules)


def open_store(config: Config, *, dry_run: bool = False) -> Store:
    hash_key = config.state.hash_key.reveal() if config.state.hash_key else None
    return Store(config.state.url, hash_key=hash_key, dry_run=dry_run)


@contextlib.contextmanager
def open_engine(
    config: Config, *, names: Sequence[str] | None = None, dry_run: bool = False, progress: ProgressSink | None = None
) -> Iterator[Engine]:
    """An engine over the named providers (all by default); closes adapters and store after use."""
    settings = engine_settings(config)
    for name in names or ():
        config.provider(name)  # an unknown name is a usage error before anything opens
    store = open_store(config, dry_run=dry_run)
    runtimes: dict[str, ProviderRuntime] = {}
    try:
        for name in names or list(config.providers):
            runtimes[name] = build_runtime(config, name, store)
        yield Engine(store, runtimes, settings, progress=progress)
    finally:
        for rt in runtimes.values():
            with contextlib.suppress(Exception):
                rt.adapter.close()
        store.close()
