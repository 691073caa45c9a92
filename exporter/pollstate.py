"""Each account's poll state as immutable snapshots: what scrapes read instead of calling the pollers.

An account's loops publish after each batch or pass: the collector its pauses and lag (every
housekeeping tick, 1 s), liveness the last time each task was on the running list and the SdkAppIds
without the action (after each SdkAppId of a pass). ``PollStates`` swaps in a new mapping on each
publish, so a scrape, the freshness gauges and the status page take one reference and never wait on
a poller's lock (the YACE pattern: the background loop swaps, scrapes only read).

Liveness seen-times live only here: the liveness loop builds the next ``LivenessState`` from the
last one, and everyone else, the collector's cadence included, reads the published one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from exporter.model import TaskKey

EMPTY: Mapping[Any, Any] = MappingProxyType({})


def _empty() -> Mapping[Any, Any]:
    return EMPTY


@dataclass(frozen=True)
class LivenessState:
    """What one account's running list said, per SdkAppId: each task's last time on the list."""

    seen: Mapping[int, Mapping[TaskKey, float]] = field(default_factory=_empty)  # SdkAppId -> task -> when listed
    stale_after: float = 15.0  # seconds: a task listed within this is covered
    unsupported: Mapping[int, str] = field(default_factory=_empty)  # SdkAppId -> code: the account has no such action
    queued: Mapping[int, int] = field(default_factory=_empty)  # SdkAppId -> push tasks the list showed QUEUED

    def last_seen(self, key: TaskKey) -> float | None:
        return self.seen.get(key[0], EMPTY).get(key)

    def covered(self, key: TaskKey, now: float) -> bool:
        """Confirmed running recently enough that detail polling may wait."""
        at = self.last_seen(key)
        return at is not None and now - at <= self.stale_after

    def with_app(self, sdk_app_id: int, by_task: Mapping[TaskKey, float], queued: int | None = None) -> LivenessState:
        """This state with ``sdk_app_id``'s seen-times (and, when given, its queued count) replaced: copy on
        write of that one app's entries. An app without entries leaves the state, queued count included."""
        seen = dict(self.seen)
        counts = dict(self.queued)
        if by_task:
            seen[sdk_app_id] = MappingProxyType(dict(by_task))
        else:
            seen.pop(sdk_app_id, None)
        if queued is not None:
            counts[sdk_app_id] = queued
        elif not by_task:
            counts.pop(sdk_app_id, None)
        return replace(self, seen=MappingProxyType(seen), queued=MappingProxyType(counts))


@dataclass(frozen=True)
class PollState:
    """One account's polling as of its last publish."""

    account: str
    credential_pause: str | None = None  # the code that paused the whole credential
    paused_sdk_app_ids: Mapping[int, str] = field(default_factory=_empty)  # a credential pause: all
    lag: float = 0.0  # how overdue the most overdue active task was
    liveness: LivenessState | None = None  # the pushes' (None: liveness is off, or pushes are not watched)
    kind_liveness: Mapping[str, LivenessState] = field(default_factory=_empty)  # the other kinds' (merged in)

    def every_liveness(self) -> list[LivenessState]:
        """The liveness of every kind of this account (pushes first)."""
        return ([] if self.liveness is None else [self.liveness]) + list(self.kind_liveness.values())


@dataclass
class PollStates:
    """The latest ``PollState`` of every account: its loops ``publish``, readers take ``current()``."""

    accounts: Iterable[str]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._own: dict[str, PollState] = {name: PollState(name) for name in self.accounts}
        self._kinds: dict[tuple[str, str], PollState] = {}  # (account, kind): the loops of a kind beside the first
        self._states: Mapping[str, PollState] = MappingProxyType(dict(self._own))

    def publish(self, account: str, kind: str | None = None, **changes: Any) -> None:
        """``kind`` None: the account's pushes; else another kind's loops, each with its own pauses, lag and
        liveness, merged into the account's state that readers see."""
        with self._lock:
            if kind is None:
                self._own[account] = replace(self._own[account], **changes)
            else:
                self._kinds[account, kind] = replace(self._kinds.get((account, kind)) or PollState(account), **changes)
            self._states = MappingProxyType({name: self._merged(name) for name in self._own})

    def _merged(self, account: str) -> PollState:
        """The account as one: paused if any kind is paused (the pushes' code wins), its worst lag."""
        own = self._own[account]
        kinds = {kind: state for (name, kind), state in self._kinds.items() if name == account}
        if not kinds:
            return own
        paused: dict[int, str] = {}
        for state in (*kinds.values(), own):
            paused.update(state.paused_sdk_app_ids)
        pause = own.credential_pause or next((s.credential_pause for s in kinds.values() if s.credential_pause), None)
        return replace(own, credential_pause=pause, paused_sdk_app_ids=MappingProxyType(paused),
                       lag=max([own.lag, *(s.lag for s in kinds.values())]),
                       kind_liveness=MappingProxyType({k: s.liveness for k, s in kinds.items() if s.liveness}))

    def current(self) -> Mapping[str, PollState]:
        return self._states

    def lag(self) -> float:
        return max((s.lag for s in self._states.values()), default=0.0)

    def paused_sdk_app_ids(self) -> dict[int, str]:
        return {app: code for s in self._states.values() for app, code in s.paused_sdk_app_ids.items()}

    def paused_credentials(self) -> dict[str, str]:
        return {s.account: s.credential_pause for s in self._states.values() if s.credential_pause is not None}

    def liveness_unsupported(self) -> dict[int, str]:
        return {app: code for s in self._states.values() for live in s.every_liveness()
                for app, code in live.unsupported.items()}

    def queued(self) -> dict[int, int]:
        """Push tasks each SdkAppId's running list showed QUEUED at its last liveness pass."""
        return {app: count for s in self._states.values() if s.liveness for app, count in s.liveness.queued.items()}

    def liveness_seen(self, now: float) -> tuple[dict[TaskKey, float], set[TaskKey]]:
        """Every account's seen-times merged, and the keys covered at ``now``."""
        seen: dict[TaskKey, float] = {}
        covered: set[TaskKey] = set()
        for live in (live for state in self._states.values() for live in state.every_liveness()):
            horizon = now - live.stale_after
            for by_task in live.seen.values():
                seen.update(by_task)
                covered.update(key for key, at in by_task.items() if at >= horizon)
        return seen, covered
