"""Fold floods of failed calls, so that they cost few imports and bury nothing (docs/flood.md).

A failed call (``errorCode`` present) by one principal, of one action and one behaviour, in one window of
``eventTime`` is reported on its own for the first ``FOLD_AFTER``; every later one joins the window's fold: one
finding that lists their eventIDs (at most ``MAX_LISTED_EVENT_IDS``) and the functions or layers they named (at most
``MAX_LISTED_TARGETS``), and counts them all. The behaviour is part of the key, so that a flood of harmless failed
calls can never fold away a failed attempt at something worse (a public grant among failed tag changes). The window is cut on eventTime, never on the time a
record arrives, so that backtest folds as the detector does. A successful call, and a call on the detector itself,
is never folded.

A fold's finding is imported when it is opened, then again only when its count reaches a power of two or
``REIMPORT_AFTER`` has passed with calls not yet imported: the count in Security Hub may lag, and then says
"at least". The folds live in the memory of one execution environment; each environment folds into findings of
its own (the environment is part of the fold's Id), so concurrent environments never overwrite each other's count.

Pure: no I/O, no clock of its own (the caller passes ``now``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from cloudtrail import CloudTrailEvent
from rule import Verdict

FOLD_AFTER = 5
"""Failed calls per principal, action and window reported one by one before the rest are folded."""
WINDOW = timedelta(minutes=15)
REIMPORT_AFTER = timedelta(seconds=60)
MAX_LISTED_EVENT_IDS = 40
MAX_LISTED_TARGETS = 10
"""Distinct functions or layers a fold lists: the calls it absorbs may each name another."""
_TARGET_FIELDS = ("functionName", "layerName", "resource", "resourceArn", "uuid", "name")
"""Where a Lambda request names what it acts on, most specific first."""
MAX_FOLDS = 200
"""Folds kept in memory, each with its first folded record (trimmed, see below). Past it, the oldest whose count is
imported are forgotten, and later calls of theirs reported on their own; if none can be forgotten, so is the call (a
finding too many, never too few)."""
MAX_KEPT_RECORD_CHARACTERS = 16_384
"""A fold keeps its first folded record whole only up to this size as JSON; a larger one is kept without its
``requestParameters`` and ``responseElements`` (the fold still lists the targets its calls named), so that 200 folds
hold a few megabytes at most, never 200 records of EventBridge's 256 KB."""
_NOT_KEPT: dict[str, None] = {"requestParameters": None, "responseElements": None}
MAX_KEYS_COUNTED = 10_000
"""Principal, action, behaviour and window keys whose failed calls are counted towards FOLD_AFTER (a few bytes
each)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FoldKey:
    principal: str
    action: str
    behaviour: str
    window_start: datetime


@dataclass
class Fold:
    """The failed calls of one principal and action in one window, past the first ``FOLD_AFTER``."""

    key: FoldKey
    first: CloudTrailEvent
    """The first folded call: what the fold's finding describes, besides the count."""
    verdict: Verdict
    environment: str
    count: int = 0
    """Folded calls."""
    event_ids: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    """The distinct functions or layers the folded calls named, in the order first seen."""
    more_targets: bool = False
    """Some folded call named a target past ``MAX_LISTED_TARGETS``."""
    earliest_event_time: datetime | None = None
    last_event_time: datetime | None = None
    imported_count: int = 0
    """``count`` as last imported; below ``count`` while the finding lags."""
    imported_at: datetime | None = None
    """The detector's clock when the finding was last imported."""
    updated_at: datetime | None = None
    """The finding's UpdatedAt as last imported: each import must be later, or Security Hub ignores it."""

    @property
    def window_end(self) -> datetime:
        return self.key.window_start + WINDOW

    @property
    def pending(self) -> int:
        return self.count - self.imported_count

    def next_updated_at(self) -> datetime:
        """The UpdatedAt of the next import: the last folded call's eventTime, always later than the last one."""
        latest = self.last_event_time or self.first.event_time
        if self.updated_at is not None and latest <= self.updated_at:
            return self.updated_at + timedelta(milliseconds=1)
        return latest

    def due(self, now: datetime) -> bool:
        if self.pending <= 0:
            return False
        if self.imported_at is None or self.count & (self.count - 1) == 0:  # opened, or a power of two
            return True
        return now - self.imported_at >= REIMPORT_AFTER

    def imported(self, now: datetime, updated_at: datetime, count: int) -> None:
        self.imported_count, self.imported_at, self.updated_at = count, now, updated_at


def window_start(moment: datetime) -> datetime:
    """The start of the ``WINDOW`` that holds ``moment``, counted from the epoch (so the same for everyone)."""
    return _EPOCH + WINDOW * ((moment - _EPOCH) // WINDOW)


def target_of(event: CloudTrailEvent) -> str:
    """What a call named as its target (a function, a layer, a mapping), as the caller wrote it; "-" for none."""
    request = event.record.get("requestParameters")
    if isinstance(request, dict):
        for name in _TARGET_FIELDS:
            value = request.get(name)
            if isinstance(value, str) and value:
                return value[:256]
    return "-"


def kept(event: CloudTrailEvent) -> CloudTrailEvent:
    """``event`` as a fold keeps it: whole when small, else without what the caller's request made large."""
    if len(json.dumps(event.record, default=str)) <= MAX_KEPT_RECORD_CHARACTERS:
        return event
    return replace(event, record={**event.record, **_NOT_KEPT})


def foldable(event: CloudTrailEvent, verdict: Verdict) -> bool:
    """A failed call that is not a call on the detector itself."""
    return bool(event.record.get("errorCode")) and verdict.kind == "finding" and not verdict.changes_detector


class FloodFolder:
    """The folds of one execution environment."""

    def __init__(self, environment: str = "") -> None:
        self.environment = environment
        self._seen: dict[FoldKey, int] = {}
        """Failed calls seen per key, those reported on their own included."""
        self._folds: dict[FoldKey, Fold] = {}
        self._retired: set[FoldKey] = set()
        """Keys whose fold was forgotten: a new fold with the same Id could not be imported as newer."""

    def admit(self, event: CloudTrailEvent, verdict: Verdict) -> Fold | None:
        """The fold that takes this call, or None when it is to be reported on its own."""
        if not foldable(event, verdict):
            return None
        caller = event.record.get("userIdentity")
        caller_arn = caller.get("arn") if isinstance(caller, dict) else None
        principal = verdict.principal_arn or (caller_arn if isinstance(caller_arn, str) else None) or "unidentified"
        key = FoldKey(
            principal, verdict.action or "unknown", verdict.behaviour or "unknown", window_start(event.event_time)
        )
        if key not in self._seen and len(self._seen) >= MAX_KEYS_COUNTED:
            self._forget_counts()
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        if seen <= FOLD_AFTER or key in self._retired:
            return None
        fold = self._folds.get(key)
        if fold is None:
            if not self._room():
                return None
            fold = self._folds[key] = Fold(key, kept(event), verdict, self.environment)
        fold.count += 1
        event_id = event.record.get("eventID")
        if len(fold.event_ids) < MAX_LISTED_EVENT_IDS and isinstance(event_id, str):
            fold.event_ids.append(event_id)
        target = target_of(event)
        if target not in fold.targets:
            if len(fold.targets) < MAX_LISTED_TARGETS:
                fold.targets.append(target)
            else:
                fold.more_targets = True
        if fold.last_event_time is None or event.event_time > fold.last_event_time:
            fold.last_event_time = event.event_time
        if fold.earliest_event_time is None or event.event_time < fold.earliest_event_time:
            fold.earliest_event_time = event.event_time
        return fold

    def due(self, now: datetime) -> list[Fold]:
        """The folds whose finding is to be imported now."""
        return [fold for fold in self._folds.values() if fold.due(now)]

    def folds(self) -> Iterable[Fold]:
        return self._folds.values()

    def _room(self) -> bool:
        if len(self._folds) < MAX_FOLDS:
            return True
        settled = sorted((fold for fold in self._folds.values() if fold.pending == 0), key=lambda f: f.key.window_start)
        for fold in settled[: max(1, len(settled) // 2)]:
            del self._folds[fold.key]
            self._retired.add(fold.key)
        return len(self._folds) < MAX_FOLDS

    def _forget_counts(self) -> None:
        """Forget the counts of windows before the latest two; if that frees nothing, all of them. A forgotten key
        starts again with calls reported on their own: more findings, never fewer."""
        latest = max(key.window_start for key in self._seen)
        for key in [key for key in self._seen if key.window_start < latest - WINDOW]:
            del self._seen[key]
        if len(self._seen) >= MAX_KEYS_COUNTED:
            self._seen.clear()
        self._retired = {key for key in self._retired if key.window_start >= latest - WINDOW}
