"""Unwrap the CloudTrail record that EventBridge delivers, refusing anything that is not one.

Checked here: what the detector cannot work without, and the envelope that EventBridge's CloudTrail integration
always sends. Everything else in a record may be odd, missing or of the wrong type and still yields a finding: a
record that fails here goes to the failure destination instead, so this module must never refuse a record that is
merely unusual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

REQUIRED_RECORD_FIELDS = ("eventSource", "eventName", "eventID", "eventTime")
ENVELOPE_FIELDS = ("detail-type", "source", "detail", "account")
LAMBDA_SOURCE = "aws.lambda"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_FUTURE_SKEW = timedelta(minutes=5)
"""How far ahead of the detector's clock an eventTime may be: CloudTrail stamps a call when AWS receives it, so
only clock skew puts it ahead; a record from further in the future was written by hand."""
MAX_ENVELOPE_DISTANCE = timedelta(minutes=15)
"""How far an eventTime may be from the envelope's ``time``. EventBridge sets ``time`` of a CloudTrail event to
the call's eventTime (every envelope in the AWS documentation's examples, and in events/, carries the same
instant); the margin covers a difference in rounding or delivery not seen here. Inferred, not checked on a real
account."""


class InvalidEventError(ValueError):
    """The event is not an EventBridge-delivered CloudTrail record; the message says what is wrong."""


@dataclass(frozen=True)
class CloudTrailEvent:
    """One CloudTrail record, as EventBridge delivered it."""

    record: Mapping[str, Any]
    event_time: datetime
    """``eventTime`` as an aware UTC datetime."""
    envelope_time: str | None = None
    """The EventBridge envelope's ``time``, as written; None for a record read without one (backtest)."""


def unwrap(event: Any) -> CloudTrailEvent:
    """Return the record inside an EventBridge event, or raise InvalidEventError naming the problem.

    Whatever EventBridge's CloudTrail integration never sends is refused: anyone allowed to invoke the function
    directly could otherwise have an envelope of their own making judged as a real record.
    """
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"event is not an EventBridge envelope: expected an object, got {_kind(event)}")
    missing = [key for key in ENVELOPE_FIELDS if key not in event]
    if missing:
        raise InvalidEventError(f"event is not an EventBridge envelope: missing {', '.join(missing)}")
    # No custom event can carry an aws.* source (PutEvents refuses it), and Lambda's calls come with this one only.
    if event["source"] != LAMBDA_SOURCE:
        raise InvalidEventError(f"event source is {_shown(event['source'])}, not {LAMBDA_SOURCE}")
    if event["detail-type"] != CLOUDTRAIL_DETAIL_TYPE:
        raise InvalidEventError(f"event detail-type is {_shown(event['detail-type'])}, not {CLOUDTRAIL_DETAIL_TYPE}")
    record = event["detail"]
    if not isinstance(record, Mapping):
        raise InvalidEventError(f"event detail is not an object: got {_kind(record)}")
    cloudtrail_event = read_record(record, event.get("time"))
    # Each account gets its own copy of a record, whose recipientAccountId is that account (CloudTrail User Guide,
    # "CloudTrail record contents", recipientAccountId), and EventBridge puts the record on that account's bus with
    # the account as `account`. An event forwarded to another account's bus keeps it: the receiving account's rules
    # tell forwarded events from their own by `account` (EventBridge User Guide, "Sending and receiving events
    # between AWS accounts", rules for events between accounts). So the two always agree, in organisation mode too.
    if not isinstance(event["account"], str) or event["account"] != record.get("recipientAccountId"):
        raise InvalidEventError(
            f"event account {_shown(event['account'])} is not the record's recipientAccountId "
            f"{_shown(record.get('recipientAccountId'))}"
        )
    return cloudtrail_event


def read_record(record: Mapping[str, Any], envelope_time: Any = None) -> CloudTrailEvent:
    """The CloudTrail record itself, or InvalidEventError when it lacks what the detector cannot work without."""
    for field in REQUIRED_RECORD_FIELDS:
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            expected = "expected a non-empty string"
            raise InvalidEventError(f"CloudTrail record lacks {field}: {expected}, got {_shown(value)}")
    return CloudTrailEvent(
        record=record,
        event_time=_parse_event_time(record["eventTime"]),
        envelope_time=envelope_time if isinstance(envelope_time, str) else None,
    )


def implausible_event_time(event: CloudTrailEvent, now: datetime) -> str | None:
    """Why the record's eventTime cannot be CloudTrail's, or None when it can.

    Only someone invoking the detector directly can send such a record: a later eventTime is how a forgery that
    reuses a real record's eventID would make Security Hub take it as newer. The record is reported, never judged.
    """
    ahead = event.event_time - now
    if ahead > MAX_FUTURE_SKEW:
        return f"eventTime {event.record['eventTime'][:40]!r} is {_duration(ahead)} ahead of the detector's clock"
    if event.envelope_time is None:
        return None
    try:
        envelope_time = _parse_event_time(event.envelope_time)
    except InvalidEventError:
        return f"the envelope's time {_shown(event.envelope_time)} is not a timestamp"
    distance = abs(event.event_time - envelope_time)
    if distance > MAX_ENVELOPE_DISTANCE:
        return (
            f"eventTime {event.record['eventTime'][:40]!r} is {_duration(distance)} from the envelope's time "
            f"{_shown(event.envelope_time)}"
        )
    return None


def _duration(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} minutes" if minutes < 2880 else f"{minutes / 1440:.0f} days"


def _parse_event_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        # CloudTrail writes UTC with a Z; a timestamp without any offset is read as UTC too.
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidEventError(f"CloudTrail record eventTime is not an ISO 8601 timestamp: {value[:80]!r}") from None


def _shown(value: Any) -> str:
    """A value fit for an error message: strings quoted and clipped, anything else by its kind."""
    return "nothing" if value is None else repr(value)[:80] if isinstance(value, str) else _kind(value)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
