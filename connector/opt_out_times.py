"""Real opt-out times, asked of the providers that can tell, for the opt-outs only they can settle.

A CRM's opt-out is otherwise timed by its record's last change, and an edit after the opt-out moves that time:
an older opt-out would then look newer than an explicit opt-in made since elsewhere, and win over it (SPEC
promise 2: only an explicit opt-in newer than the opt-out lifts it). The planner names the sides where this can
happen (``untimed_opt_outs``); HubSpot answers from a property's history, at most once per such opt-out, since
the merge makes the opt-out the side's base and it is no longer new.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

from adapters.base import SupportsOptOutTimes
from adapters.errors import UNREADABLE_ANSWER, ProviderError
from connector.planner import Side, untimed_opt_outs
from connector.runtime import ProviderRuntime
from mappings.contact import OPT_OUT_AT
from state.store import HubContact

log = logging.getLogger("crmsync.engine")
# a refused call, or an answer the adapter could not read, as Engine._guard has them
UNANSWERED = (ProviderError, OSError, *UNREADABLE_ANSWER)


def link_sides(contact: HubContact) -> list[Side]:
    """What each linked provider last reported of the contact, against its base."""
    return [
        Side(provider=link.provider, observed=link.observed, base=link.base, updated_at=link.observed_at)
        for link in contact.links if link.observed is not None
    ]


def with_opt_out_times(
    contacts: Sequence[HubContact], sides: Sequence[list[Side]], runtimes: Mapping[str, ProviderRuntime]
) -> list[list[Side]]:
    """``sides`` (one list per contact), where an untimed opt-out's provider could time it, with that time."""
    wanted: dict[str, dict[str, int]] = defaultdict(dict)  # provider -> remote id -> index of the contact
    for index, (contact, own) in enumerate(zip(contacts, sides, strict=True)):
        for provider in untimed_opt_outs(own):
            for link in contact.links:
                if link.provider == provider and link.remote_id:
                    wanted[provider][link.remote_id] = index
    if not wanted:
        return list(sides)
    times: dict[tuple[int, str], dt.datetime] = {}
    for provider, ids in wanted.items():
        runtime = runtimes.get(provider)
        adapter = runtime.adapter if runtime is not None else None
        if not isinstance(adapter, SupportsOptOutTimes):
            continue
        try:
            answered = adapter.opt_out_times(list(ids))
        except UNANSWERED as exc:  # the opt-out keeps its record's time: that errs towards the opt-out
            log.warning("opt-out times unavailable", extra={"provider": provider, "why": type(exc).__name__})
            continue
        times.update({(ids[rid], provider): at for rid, at in answered.items() if rid in ids})
    out = [list(own) for own in sides]
    for (index, provider), at in times.items():
        out[index] = [
            replace(side, observed={**side.observed, OPT_OUT_AT: at.isoformat()}) if side.provider == provider else side
            for side in out[index]
        ]
    return out
