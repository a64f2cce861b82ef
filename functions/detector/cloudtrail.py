"""Unwrap the CloudTrail record that EventBridge delivers, refusing anything that is not one.

Only what the detector cannot work without is checked here. Everything else in a record may be odd, missing
or of the wrong type and still yields a finding: a record that fails here goes to the failure destination
instead, so this module must never refuse a record that is merely unusual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

REQUIRED_RECORD_FIELDS = ("eventSource", "eventName", "eventID", "eventTime")


class InvalidEventError(ValueError):
    """The event is not an EventBridge-delivered CloudTrail record; the message says what is wrong."""


@dataclass(frozen=True)
class CloudTrailEvent:
    """One CloudTrail record, as EventBridge delivered it."""

    record: Mapping[str, Any]
    event_time: datetime
    """``eventTime`` as an aware UTC datetime."""


def unwrap(event: Any) -> CloudTrailEvent:
    """Return the record inside an EventBridge event, or raise InvalidEventError naming the problem."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"event is not an EventBridge envelope: expected an object, got {_kind(event)}")
    missing = [key for key in ("detail-type", "source", "detail") if key not in event]
    if missing:
        raise InvalidEventError(f"event is not an EventBridge envelope: missing {', '.join(missing)}")
    record = event["detail"]
    if not isinstance(record, Mapping):
        raise InvalidEventError(f"event detail is not an object: got {_kind(record)}")
    for field in REQUIRED_RECORD_FIELDS:
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            got = "nothing" if value is None else repr(value)[:80] if isinstance(value, str) else _kind(value)
            raise InvalidEventError(f"CloudTrail record lacks {field}: expected a non-empty string, got {got}")
    return CloudTrailEvent(
        record=record,
        event_time=_parse_event_time(record["eventTime"]),
    )


def _parse_event_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        # CloudTrail writes UTC with a Z; a timestamp without any offset is read as UTC too.
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidEventError(f"CloudTrail record eventTime is not an ISO 8601 timestamp: {value[:80]!r}") from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
