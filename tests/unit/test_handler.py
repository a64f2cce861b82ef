"""The handler end to end on a mocked Security Hub: verdicts, stored findings, retries and refusals."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from typing import Any
from unittest import mock

import pytest

from app import FOLD_IMPORT_ATTEMPTS, Detector
from cloudtrail import InvalidEventError
from publisher import MAX_ATTEMPTS, PublishError
from tests.asff import assert_valid_finding
from tests.conftest import DETECTOR_ACCOUNT, FakeLambdaContext, json_log_lines, stored_findings
from tests.support.cases import INVALID, PROJECT_ROOT, load_cases

CASES = load_cases()


def test_every_sample_event_gets_its_verdict_and_security_hub_holds_exactly_the_findings(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    expected_ids = set()
    for case in CASES:
        if case.expected_verdict == INVALID:
            with pytest.raises(InvalidEventError):
                detector.lambda_handler(copy.deepcopy(case.event), lambda_context)
            continue
        result = detector.lambda_handler(copy.deepcopy(case.event), lambda_context)
        assert result["verdict"] == case.expected_verdict, case.file
        assert (result["findingId"] is not None) == (case.expected_verdict == "finding"), case.file
        assert result["reason"]
        if result["findingId"]:
            expected_ids.add(result["findingId"])

    findings = stored_findings(security_hub)
    assert {finding["Id"] for finding in findings} == expected_ids
    assert len(findings) == len(expected_ids) == sum(case.expected_verdict == "finding" for case in CASES)
    for finding in findings:
        assert_valid_finding(finding)
        assert finding["AwsAccountId"] == DETECTOR_ACCOUNT


def finding_case_event() -> dict[str, Any]:
    return copy.deepcopy(next(case.event for case in CASES if case.file == "spoofed-deployrole-session-name.json"))


def test_delivering_the_same_event_three_times_leaves_one_finding(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    results = [detector.lambda_handler(finding_case_event(), lambda_context) for _ in range(3)]
    assert len({result["findingId"] for result in results}) == 1
    assert len(stored_findings(security_hub)) == 1


def test_a_replayed_event_is_ignored_by_security_hub_not_written_again(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    """The finding's UpdatedAt is the event's time, so Security Hub ignores every later import of the same event; a
    record altered after the fact, with the same eventID and eventTime, is a finding of its own (its Id binds the
    record's content) and cannot rewrite the first."""
    first = detector.lambda_handler(finding_case_event(), lambda_context)
    replay = detector.lambda_handler(finding_case_event(), lambda_context)
    altered = finding_case_event()
    altered["detail"]["sourceIPAddress"] = "203.0.113.99"
    variant = detector.lambda_handler(altered, lambda_context)

    assert replay["findingId"] == first["findingId"] != variant["findingId"]
    stored = {finding["Id"]: finding for finding in stored_findings(security_hub)}
    assert set(stored) == {first["findingId"], variant["findingId"]}
    assert stored[first["findingId"]]["Action"]["AwsApiCallAction"]["RemoteIpDetails"]["IpAddressV4"] == "192.0.2.44"


def test_rejected_findings_raise_so_the_event_is_retried(
    detector: Detector, lambda_context: FakeLambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    rejected = {
        "FailedCount": 1,
        "SuccessCount": 0,
        "FailedFindings": [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "bad"}],
    }
    with mock.patch.object(
        detector.deployment(lambda_context).publisher._client, "batch_import_findings", return_value=rejected
    ):
        with pytest.raises(PublishError, match="InvalidInput"):
            detector.lambda_handler(finding_case_event(), lambda_context)


def test_a_failed_count_without_details_still_raises(detector: Detector, lambda_context: FakeLambdaContext) -> None:
    with mock.patch.object(
        detector.deployment(lambda_context).publisher._client, "batch_import_findings", return_value={"FailedCount": 2}
    ):
        with pytest.raises(PublishError):
            detector.lambda_handler(finding_case_event(), lambda_context)


def envelope(detail: Any, **fields: Any) -> dict[str, Any]:
    """An EventBridge envelope around ``detail``, from the account the sample records are from (``fields`` replace
    envelope fields)."""
    event = {"id": "e1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.lambda"}
    return {**event, "account": "111122223333", **fields, "detail": detail}


def valid_detail() -> dict[str, Any]:
    return copy.deepcopy(finding_case_event()["detail"])


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "not an EventBridge envelope: expected an object, got list"),
        (None, "expected an object, got null"),
        ("{}", "expected an object, got str"),
        ({"detail": {}}, "missing detail-type, source"),
        (valid_detail(), "missing detail-type, source, detail"),
        (envelope("text"), "detail is not an object: got str"),
        (envelope(None), "detail is not an object: got null"),
        (envelope({k: v for k, v in valid_detail().items() if k != "eventID"}), "lacks eventID"),
        (envelope({k: v for k, v in valid_detail().items() if k != "eventTime"}), "lacks eventTime"),
        (envelope({k: v for k, v in valid_detail().items() if k != "eventSource"}), "lacks eventSource"),
        (envelope(dict(valid_detail(), eventName=42)), "lacks eventName: expected a non-empty string, got int"),
        (envelope(dict(valid_detail(), eventName="  ")), "lacks eventName"),
        (envelope(dict(valid_detail(), eventTime="yesterday")), "eventTime is not an ISO 8601 timestamp"),
        # What EventBridge's CloudTrail integration never sends: an envelope someone made up.
        ({k: v for k, v in envelope(valid_detail()).items() if k != "account"}, "missing account"),
        (envelope(valid_detail(), source="com.example.forged"), "event source is 'com.example.forged', not aws.lambda"),
        (envelope(valid_detail(), source="aws.events"), "event source is 'aws.events', not aws.lambda"),
        (envelope(valid_detail(), source=None), "event source is nothing, not aws.lambda"),
        (envelope(valid_detail(), **{"detail-type": "Scheduled Event"}), "detail-type is 'Scheduled Event', not AWS"),
        (envelope(valid_detail(), **{"detail-type": "AWS API Call via CloudTrail "}), "detail-type is 'AWS API Call"),
        (
            envelope(valid_detail(), account="999999999999"),
            "event account '999999999999' is not the record's recipientAccountId '111122223333'",
        ),
        (envelope(valid_detail(), account=111122223333), "event account int is not the record's recipientAccountId"),
        (
            envelope({k: v for k, v in valid_detail().items() if k != "recipientAccountId"}),
            "event account '111122223333' is not the record's recipientAccountId nothing",
        ),
    ],
)
def test_malformed_events_raise_the_invalid_event_error_naming_the_problem(
    detector: Detector,
    security_hub: Any,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    event: Any,
    message: str,
) -> None:
    with pytest.raises(InvalidEventError, match=message):
        detector.lambda_handler(event, lambda_context)
    [error_line] = [line for line in json_log_lines(caplog) if line["level"] == "ERROR"]
    assert error_line["message"].startswith("Invalid event: ") and message in error_line["message"]
    assert '"InvalidEvents"' in capsys.readouterr().out  # counted in the EMF metrics
    assert stored_findings(security_hub) == []


def test_odd_but_well_formed_records_are_never_errors(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    detail = {
        "eventSource": "lambda.amazonaws.com",
        "eventName": "DeleteFunction20150331",
        "eventID": "only-the-basics",
        "eventTime": "2026-11-20T09:15:31Z",
        "recipientAccountId": "111122223333",
    }
    result = detector.lambda_handler(envelope(detail), lambda_context)
    assert result["verdict"] == "finding"
    [finding] = stored_findings(security_hub)
    assert_valid_finding(finding)


def test_one_info_line_per_event_without_the_record(
    detector: Detector, lambda_context: FakeLambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    event = finding_case_event()
    caplog.set_level("INFO")
    detector.lambda_handler(event, lambda_context)
    lines = json_log_lines(caplog)
    assert len(lines) == 1
    [verdict_line] = [line for line in lines if line["message"].startswith("Verdict")]
    assert verdict_line["level"] == "INFO"
    assert verdict_line["verdict"] == "finding"
    assert verdict_line["eventID"] == event["detail"]["eventID"]
    assert verdict_line["action"] == "CreateFunction"
    assert verdict_line["principal"] == "arn:aws:iam::111122223333:role/DevSandboxRole"
    assert verdict_line["correlation_id"] == event["id"]
    assert "requestParameters" not in json.dumps(lines)
    assert "HIDDEN_DUE_TO_SECURITY_REASONS" not in json.dumps(lines)


def emitted_metrics(output: str) -> dict[str, list[float]]:
    """Each metric the handler flushed (embedded metric format on stdout), with its values."""
    blobs = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    for blob in blobs:
        assert all(directive["Namespace"] == "LambdaCrudDetector" for directive in blob["_aws"]["CloudWatchMetrics"])
    return {
        metric["Name"]: blob[metric["Name"]]
        for blob in blobs
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


def test_metrics_count_each_verdict_and_the_cold_start(
    detector: Detector, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    events = {
        verdict: copy.deepcopy(next(case.event for case in CASES if case.expected_verdict == verdict))
        for verdict in ("finding", "allowlisted", "ignored")
    }
    capsys.readouterr()
    detector.lambda_handler(events["ignored"], lambda_context)
    assert emitted_metrics(capsys.readouterr().out) == {"ColdStart": [1.0], "Ignored": [1.0]}

    detector.lambda_handler(events["finding"], lambda_context)
    assert emitted_metrics(capsys.readouterr().out) == {"Findings": [1.0]}
    detector.lambda_handler(events["allowlisted"], lambda_context)
    assert emitted_metrics(capsys.readouterr().out) == {"Allowlisted": [1.0]}
    with pytest.raises(InvalidEventError):
        detector.lambda_handler({"detail": {}}, lambda_context)
    assert emitted_metrics(capsys.readouterr().out) == {"InvalidEvents": [1.0]}


# --- One detector per container, its clients created on first need -------------------------------------------------

DETECTOR_SOURCES = PROJECT_ROOT / "functions" / "detector"
SDK_PROBE = """\
import json, sys
import app
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore", "s3transfer"))))
"""


def test_importing_the_handler_loads_no_sdk() -> None:
    """Most events are allowlisted or ignored: a cold start pays for boto3 only when a finding needs a client.
    Powertools itself imports the bare botocore package (its __init__ only) to register a user-agent hook."""
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(DETECTOR_SOURCES),
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "DetectorFunction",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    completed = subprocess.run(
        [sys.executable, "-c", SDK_PROBE], env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == ["botocore"]


@pytest.mark.parametrize("verdict", ["allowlisted", "ignored"])
def test_an_event_that_is_no_finding_creates_no_client(
    detector: Detector, lambda_context: FakeLambdaContext, verdict: str
) -> None:
    event = copy.deepcopy(next(case.event for case in CASES if case.expected_verdict == verdict))
    for _ in range(2):
        assert detector.lambda_handler(event, lambda_context)["verdict"] == verdict
    assert not {"publisher", "fold_publisher", "member_publishers"} & set(vars(detector.deployment(lambda_context)))


def test_where_the_detector_runs_is_decided_once_on_the_first_invocation(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    detector.lambda_handler(finding_case_event(), lambda_context)
    deployment = detector.deployment(lambda_context)
    publisher = deployment.publisher
    detector.lambda_handler(finding_case_event(), lambda_context)
    assert (
        detector.deployment(FakeLambdaContext(invoked_function_arn="arn:aws:lambda:us-east-1:012345678912:function:x"))
        is deployment
    )
    assert deployment.publisher is publisher and not deployment.local


def test_the_handler_module_rebinds_no_global() -> None:
    """State lives on the Detector: a ``global`` statement would let an invocation rebuild what the first one set."""
    tree = ast.parse((DETECTOR_SOURCES / "app.py").read_text(encoding="utf-8"))
    assert [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Global | ast.Nonlocal | ast.Assert)] == []


def test_folds_are_imported_with_fewer_attempts_so_that_a_throttled_fold_holds_no_invocation(
    detector: Detector, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECURITYHUB", "https://elsewhere.example")
    deployment = detector.deployment(lambda_context)
    attempts = {
        name: client.meta.config.retries["total_max_attempts"]
        for name, client in (("own", deployment.publisher._client), ("folds", deployment.fold_publisher._client))
    }
    assert attempts == {"own": MAX_ATTEMPTS, "folds": FOLD_IMPORT_ATTEMPTS} and FOLD_IMPORT_ATTEMPTS < MAX_ATTEMPTS
    # Deployed, as the main publisher (tests/unit/test_endpoint_config.py), it ignores the endpoint it is told.
    assert deployment.fold_publisher._client.meta.endpoint_url == "https://securityhub.us-east-1.amazonaws.com"
