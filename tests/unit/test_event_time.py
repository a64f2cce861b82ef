"""A record whose eventTime CloudTrail cannot have written is refused loudly: a tamper finding stamped with the time
it was processed, and the ImplausibleEventTime metric. It neither counts as a heartbeat nor replaces a finding."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from app import Detector
from cloudtrail import MAX_ENVELOPE_DISTANCE, MAX_FUTURE_SKEW, implausible_event_time, unwrap
from tests.asff import assert_valid_finding
from tests.conftest import stored_findings
from tests.unit.test_tamper import canary_record, change_record, detector_started, emf_metrics, invoke, lambda_event

__all__ = ["detector_started"]  # the fixture, imported for the tests here

FORGED_TIME = "2099-01-01T00:00:00Z"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_heartbeat_forged_with_a_future_event_time_is_a_tamper_finding_not_a_heartbeat(
    detector_started: Callable[..., Detector], security_hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    detector = detector_started()
    before = datetime.now(timezone.utc)
    result = invoke(detector, canary_record(eventTime=FORGED_TIME))
    assert result["verdict"] == "implausible"
    metrics = emf_metrics(capsys.readouterr().out)
    assert not any("CanaryHeartbeat" in blob for blob in metrics)
    assert any(blob.get("ImplausibleEventTime") == [1.0] for blob in metrics)
    [finding] = stored_findings(security_hub)
    assert_valid_finding(finding)
    assert finding["Id"] == result["findingId"] and "/implausible-event-time/" in finding["Id"]
    assert finding["ProductFields"]["tamper"] == "ImplausibleEventTime"
    processed = datetime.fromisoformat(finding["UpdatedAt"])
    assert before - timedelta(seconds=1) <= processed <= datetime.now(timezone.utc) + timedelta(seconds=1)


def test_a_rewrite_through_a_future_event_time_leaves_the_real_finding_as_it_was(
    detector_started: Callable[..., Detector], security_hub: Any
) -> None:
    detector = detector_started(ALLOWLIST_PATTERNS="")
    real = change_record("payments-api")
    stored_real = invoke(detector, real)
    forged = change_record(
        "payments-api",
        eventTime=FORGED_TIME,
        userIdentity={"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/scapegoat", "accountId": "1"},
    )
    assert invoke(detector, forged)["verdict"] == "implausible"
    assert invoke(detector, real)["findingId"] == stored_real["findingId"]  # a redrive of the real record

    stored = {finding["Id"]: finding for finding in stored_findings(security_hub)}
    assert len(stored) == 2
    kept = stored[stored_real["findingId"]]
    assert kept["UpdatedAt"] == "2026-11-20T09:15:31.000Z"
    assert kept["ProductFields"]["userIdentity.arn"] == real["userIdentity"]["arn"]


@pytest.mark.parametrize(
    ("event_time", "envelope_time", "refused"),
    [
        (timedelta(minutes=2), timedelta(minutes=2), False),
        (MAX_FUTURE_SKEW + timedelta(minutes=1), MAX_FUTURE_SKEW + timedelta(minutes=1), True),
        (-timedelta(days=3), -timedelta(days=3), False),
        (-timedelta(days=3), timedelta(0), True),
        (timedelta(0), MAX_ENVELOPE_DISTANCE - timedelta(minutes=1), False),
        (timedelta(0), -MAX_ENVELOPE_DISTANCE - timedelta(minutes=1), True),
    ],
)
def test_how_far_an_event_time_may_be(event_time: timedelta, envelope_time: timedelta, refused: bool) -> None:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    event = lambda_event(change_record("payments-api", eventTime=stamp(now + event_time)))
    event["time"] = stamp(now + envelope_time)
    assert (implausible_event_time(unwrap(copy.deepcopy(event)), now) is not None) == refused


def test_an_envelope_time_that_is_not_a_timestamp_is_refused() -> None:
    event = lambda_event(change_record("payments-api"))
    event["time"] = "yesterday"
    assert "not a timestamp" in str(implausible_event_time(unwrap(event), datetime.now(timezone.utc)))
