"""A flood of failed calls costs few imports and hides nothing: it folds, a real finding or a change to the detector
lands at once, and every failed call is accounted for. Run on simulated time against the strict Security Hub with
its documented import rate (bench/flood.py), so that nothing here depends on the machine's speed."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from app import Detector
from bench.flood import denied_call, real_change, run_flood
from cloudtrail import unwrap
from finding import DetectorAccount, fold_finding
from flood import FOLD_AFTER, MAX_KEPT_RECORD_CHARACTERS, MAX_LISTED_EVENT_IDS, WINDOW, FloodFolder, window_start
from rule import DetectorIdentity, FunctionRef, RuleSettings, evaluate
from tests.conftest import DETECTOR_ACCOUNT, FakeLambdaContext, stored_findings
from tests.support import strict_securityhub

START = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
DETECTOR = DetectorIdentity(FunctionRef(DETECTOR_ACCOUNT, "us-east-1", "DetectorFunction"))


def judged(event: dict[str, Any]) -> tuple[Any, Any]:
    cloudtrail_event = unwrap(event)
    return cloudtrail_event, evaluate(cloudtrail_event.record, RuleSettings(), DETECTOR)


@pytest.mark.parametrize("real_function", ["payments-api", "DetectorFunction"])
def test_400_denied_calls_cost_at_most_40_imports_and_a_real_finding_lands_at_once(
    detector: Detector, security_hub: Any, real_function: str
) -> None:
    # 40 calls a second: four times what Security Hub takes, so one import per call would be throttled.
    result = run_flood(detector, FakeLambdaContext(), calls=400, seconds=10.0, real_function=real_function)
    assert result.handler_errors == 0
    assert result.import_calls <= 40
    assert result.throttled_calls == 0
    assert result.real_finding_delay_seconds == 0


def test_every_failed_call_is_in_a_finding_of_its_own_or_counted_in_its_fold(
    detector: Detector, security_hub: Any
) -> None:
    result = run_flood(detector, FakeLambdaContext(), calls=400, seconds=10.0)
    # The count may lag: the next invocation after REIMPORT_AFTER imports what is pending.
    account, deployment = (
        DetectorAccount(DETECTOR_ACCOUNT, "aws", "us-east-1"),
        detector.deployment(FakeLambdaContext()),
    )
    detector.import_folds(account, deployment, datetime.now(timezone.utc))
    stored = stored_findings(security_hub)
    folds = [finding for finding in stored if "/fold/" in finding["Id"]]
    alone = [finding for finding in stored if finding["ProductFields"].get("errorCode") and finding not in folds]
    [fold] = folds
    assert len(alone) == FOLD_AFTER
    assert int(fold["ProductFields"]["folded.count"]) + len(alone) == result.calls == 400
    listed = fold["ProductFields"]["folded.eventIDs"].split(", ")
    assert len(listed) == MAX_LISTED_EVENT_IDS
    assert fold["ProductFields"]["folded.eventIDsListed"] == f"{MAX_LISTED_EVENT_IDS} of 395"
    assert not {finding["ProductFields"]["eventID"] for finding in alone} & set(listed)


def test_a_successful_change_is_never_folded() -> None:
    folder = FloodFolder("environment")
    for index in range(50):
        event, verdict = judged(real_change(START + timedelta(seconds=index), index))
        assert verdict.kind == "finding" and folder.admit(event, verdict) is None


def test_a_failed_call_on_the_detector_is_never_folded() -> None:
    folder = FloodFolder("environment")
    for index in range(50):
        event = denied_call(START + timedelta(seconds=index), index)
        event["detail"]["requestParameters"] = {"functionName": "DetectorFunction"}
        cloudtrail_event, verdict = judged(event)
        assert verdict.changes_detector and folder.admit(cloudtrail_event, verdict) is None


def test_windows_are_cut_on_event_time_whatever_the_order_of_arrival() -> None:
    folder = FloodFolder("environment")
    times = [START + timedelta(seconds=index * 30) for index in range(60)]  # 30 minutes: two windows
    shuffled = times[1::2] + times[::2]
    folded = [folder.admit(*judged(denied_call(moment, index))) for index, moment in enumerate(shuffled)]
    windows = {fold.key.window_start for fold in folded if fold is not None}
    assert windows == {window_start(START), window_start(START) + WINDOW}
    assert sum(fold is None for fold in folded) == 2 * FOLD_AFTER
    assert window_start(START + timedelta(minutes=14, seconds=59)) == window_start(START)


def test_the_strict_security_hub_enforces_ten_imports_a_second_with_a_burst_of_thirty() -> None:
    now = [0.0]
    with strict_securityhub.rate_limited(lambda: now[0]) as rate:
        assert all(rate.take("111122223333", "us-east-1") for _ in range(30))
        assert not rate.take("111122223333", "us-east-1")
        assert rate.take("111122223333", "eu-west-1")  # per account and Region
        now[0] += 0.1
        assert rate.take("111122223333", "us-east-1")
        assert not rate.take("111122223333", "us-east-1")
    assert sum(rate.throttled.values()) == 2


def test_the_flood_scenario_is_realistic_input_to_the_handler() -> None:
    event = copy.deepcopy(denied_call(START, 1))
    cloudtrail_event, verdict = judged(event)
    assert verdict.kind == "finding" and cloudtrail_event.record["errorCode"] == "AccessDenied"


def test_backtest_folds_on_the_same_windows_as_the_detector(detector: Detector, security_hub: Any) -> None:
    from lambda_crud_detector.trail_judge import Judge, JudgeConfig

    calls = [denied_call(START + timedelta(minutes=index), index)["detail"] for index in range(30)]  # two windows
    judgement = Judge(JudgeConfig()).records(calls, "memory")
    ids = [summary["id"] for summary in judgement.findings]
    folds = {finding_id for finding_id in ids if "/fold/" in finding_id}
    assert len(folds) == 2 and judgement.folded == 30 - 2 * FOLD_AFTER
    # The handler folds the same calls into the same windows: 2 * FOLD_AFTER findings of their own.
    for index, record in enumerate(calls):
        event = denied_call(START + timedelta(minutes=index), index)
        event["detail"] = record
        answer = detector.lambda_handler(event, FakeLambdaContext())
        assert ("/fold/" in answer["findingId"]) == ("/fold/" in ids[index])


def test_memory_is_bounded_and_a_forgotten_fold_never_loses_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import flood

    monkeypatch.setattr(flood, "MAX_FOLDS", 3)
    folder = FloodFolder("environment")
    moment = START

    def fail(principal: str, index: int) -> Any:
        event = denied_call(moment, index)
        event["detail"]["userIdentity"] = {"type": "IAMUser", "arn": principal, "accountId": DETECTOR_ACCOUNT}
        return folder.admit(*judged(event))

    principals = [f"arn:aws:iam::{DETECTOR_ACCOUNT}:user/flooder{number}" for number in range(6)]
    for principal in principals:
        for index in range(FOLD_AFTER + 1):
            fold = fail(principal, index)
        if fold is not None:
            fold.imported(moment, fold.next_updated_at(), fold.count)  # settled: may be forgotten
    assert len(list(folder.folds())) <= 3
    # The first principal's fold was forgotten: its later calls are findings of their own, not a fold restarted
    # at zero under the same Id, whose imports Security Hub would ignore as not newer.
    assert fail(principals[0], 99) is None


def denied_add_permission(index: int, function_name: str, principal: str) -> dict[str, Any]:
    """A denied AddPermission by the flooding role (built from the API reference, as bench.flood's calls are)."""
    event = denied_call(START + timedelta(seconds=index), index)
    event["detail"]["eventName"] = "AddPermission20150331v2"
    event["detail"]["requestParameters"] = {
        "functionName": function_name,
        "statementId": f"s{index}",
        "action": "lambda:InvokeFunction",
        "principal": principal,
    }
    return event


def test_a_flood_of_harmless_failed_calls_never_folds_away_an_attempt_at_something_worse() -> None:
    folder = FloodFolder("environment")
    for index in range(FOLD_AFTER + 3):  # enough harmless failures to open a fold of their own
        folder.admit(*judged(denied_add_permission(index, "dev-fn", "s3.amazonaws.com")))
    attempt = judged(denied_add_permission(99, "payments-prod", "*"))
    assert attempt[1].behaviour == "public-permission"
    # The public grant is another behaviour: it starts its own count, and is reported on its own.
    assert folder.admit(*attempt) is None


def test_a_fold_names_every_function_its_calls_named_up_to_its_bound() -> None:
    folder = FloodFolder("environment")
    folds = [
        folder.admit(*judged(denied_add_permission(index, f"fn-{index}", "s3.amazonaws.com")))
        for index in range(FOLD_AFTER + 12)
    ]
    fold = folds[-1]
    assert fold is not None and fold.count == 12
    assert fold.targets == [f"fn-{index}" for index in range(FOLD_AFTER, FOLD_AFTER + 10)]
    assert fold.more_targets
    finding = fold_finding(fold, DetectorAccount(DETECTOR_ACCOUNT, "aws", "us-east-1"), START + timedelta(hours=1))
    assert finding["ProductFields"]["folded.targets"].startswith(f"fn-{FOLD_AFTER}, ")
    assert finding["ProductFields"]["folded.targets"].endswith(" and others")
    assert f"fn-{FOLD_AFTER}" in finding["Description"]


def test_a_fold_keeps_a_large_first_record_without_its_request() -> None:
    folder = FloodFolder("environment")
    padding = "x" * (MAX_KEPT_RECORD_CHARACTERS * 4)
    events = [denied_add_permission(index, "dev-fn", "s3.amazonaws.com") for index in range(FOLD_AFTER + 2)]
    for event in events:
        event["detail"]["requestParameters"]["description"] = padding
    folds = [folder.admit(*judged(event)) for event in events]
    fold = folds[-1]
    assert fold is not None and fold.count == 2
    assert fold.first.record["requestParameters"] is None
    assert fold.first.record["eventID"] == events[FOLD_AFTER]["detail"]["eventID"]
    assert fold.targets == ["dev-fn"]  # what the request named is still listed
    finding = fold_finding(fold, DetectorAccount(DETECTOR_ACCOUNT, "aws", "us-east-1"), START + timedelta(hours=1))
    assert padding not in json.dumps(finding)
