"""Progress on long runs: a rich bar on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class ProgressSink(Protocol):
    def advance(self, label: str, count: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def advance(self, label: str, count: int) -> None:
        return

    def close(self) -> None:
        return


class RichProgress:
    """One counting line per phase ("pull hubspot", "push mailchimp"), on stderr."""

    def __init__(self) -> None:
        # Imported here: only a terminal gets a bar, so a --json or scheduled run never loads rich.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def advance(self, label: str, count: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=None)
        self._progress.advance(self._tasks[label], count)

    def close(self) -> None:
        self._progress.stop()


def progress_for_terminal(*, enabled: bool = True) -> ProgressSink:
    if enabled and sys.stderr.isatty():
        return RichProgress()
    return NoProgress()
