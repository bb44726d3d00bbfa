"""What a run reports: per-provider figures, errors, and the exit code of SPEC.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    RECORDS_FAILED = 1
    BAD_CONFIG = 2
    PROVIDER_UNAVAILABLE = 3


@dataclass(slots=True)
class ProviderFigures:
    pulled: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unsubscribed: int = 0
    deleted: int = 0
    failed: int = 0


@dataclass(slots=True)
class RunReport:
    run_id: str
    kind: str
    dry_run: bool = False
    providers: dict[str, ProviderFigures] = field(default_factory=dict)
    conflicts: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    provider_errors: dict[str, str] = field(default_factory=dict)  # provider -> why it stopped (exit 3)
    notes: list[str] = field(default_factory=list)

    def figures(self, provider: str) -> ProviderFigures:
        return self.providers.setdefault(provider, ProviderFigures())

    def record_error(self, provider: str, message: str, *, email: str | None = None, where: str | None = None) -> None:
        entry: dict[str, Any] = {"provider": provider, "email": email, "message": message}
        if where is not None:
            entry["where"] = where
        self.errors.append(entry)

    @property
    def exit_code(self) -> ExitCode:
        if self.provider_errors:
            return ExitCode.PROVIDER_UNAVAILABLE
        if self.errors or any(f.failed for f in self.providers.values()):
            return ExitCode.RECORDS_FAILED
        return ExitCode.OK

    @property
    def status(self) -> str:
        return {ExitCode.OK: "ok", ExitCode.RECORDS_FAILED: "partial"}.get(self.exit_code, "failed")

    def figures_to_keep(self) -> dict[str, Any]:
        """What the run row keeps: figures and counts, no address (``forget`` must leave only a keyed hash)."""
        return {
            "providers": {name: asdict(f) for name, f in self.providers.items()},
            "conflicts": self.conflicts,
            "errors": len(self.errors),
            "provider_errors": self.provider_errors,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "status": self.status,
            "providers": {name: asdict(f) for name, f in self.providers.items()},
            "conflicts": self.conflicts,
            "errors": self.errors,
            "provider_errors": self.provider_errors,
            "notes": self.notes,
        }
