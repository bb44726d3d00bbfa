"""One call running beside the caller: a migration's next page is stored while the target takes the last batch.

The caller stays the only thread that touches the store: the call runs in the worker, its answer is
handed back (``then``) in the caller's thread, when the caller next submits, settles or closes. At most
one call is in flight, so writes reach the provider in the order they were submitted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class OneAhead:
    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: tuple[Future[Any], Callable[[Any], None]] | None = None

    def submit(self, call: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """Settle the call in flight (its error is raised here), then start ``call``."""
        self.settle()
        self._pending = (self._pool.submit(call), then)

    def settle(self) -> None:
        """Wait for the call in flight and hand its answer to its ``then``; raise what the call raised."""
        if self._pending is None:
            return
        future, then = self._pending
        self._pending = None
        then(future.result())

    def close(self, *, failing: bool) -> None:
        """Settle and stop. While another error is on its way out (``failing``), the call's answer is still
        recorded if it came, and its own error only logged: the first error is the one the run reports.
        """
        try:
            if not failing:
                self.settle()
                return
            try:
                self.settle()
            except Exception as exc:  # secondary to the error already propagating
                log.warning("a write in flight failed while the run was stopping: %s", type(exc).__name__)
        finally:
            self._pending = None
            with contextlib.suppress(RuntimeError):
                self._pool.shutdown(wait=True)
