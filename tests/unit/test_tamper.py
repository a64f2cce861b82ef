"""Tamper-evidence in the function: a change to the detector is always a finding; only the real canary is a heartbeat.

The rule is tested on records, the handler through the conftest fixtures (its identity from the Lambda runtime, its
canary from the two variables the template gives it, its heartbeat as an EMF metric).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app import Detector
from rule import CRUD_ACTIONS, DetectorIdentity, FunctionRef, RuleSettings, evaluate
from tests.asff import assert_valid_finding
from tests.conftest import DETECTOR_ACCOUNT, FakeLambdaContext, json_log_lines, new_detector, stored_findings

REGION = "us-east-1"
DETECTOR_NAME = "DetectorFunction"
DETECTOR_ARN = f"arn:aws:lambda:{REGION}:{DETECTOR_ACCOUNT}:function:{DETECTOR_NAME}"
CANARY_NAME = "lambda-crud-detector-canary"
CANARY_ARN = f"arn:aws:lambda:{REGION}:{DETECTOR_ACCOUNT}:function:{CANARY_NAME}"
CANARY_ROLE = f"arn:aws:iam::{DETECTOR_ACCOUNT}:role/lambda-crud-detector-CanaryScheduleRole-1A2B3C4D5E6F"
DEPLOY_ROLE = f"arn:aws:iam::{DETECTOR_ACCOUNT}:role/DeployRole"
MEMBER_ACCOUNT = "444455556666"
SCHEDULER = "scheduler.amazonaws.com"

DETECTOR = DetectorIdentity(FunctionRef(DETECTOR_ACCOUNT, REGION, DETECTOR_NAME), CANARY_NAME, CANARY_ROLE)
ALLOW_EVERYONE = RuleSettings(allowlist_patterns=("*",))


def role_session(role_arn: str, session: str, **identity: Any) -> dict[str, Any]:
    """``userIdentity`` of a call made with a session of ``role_arn`` (its path dropped from the session ARN)."""
    account, role_name = role_arn.split(":")[4], role_arn.rpartition("/")[2]
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID1234:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
        "accountId": account,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account, "userName": role_name},
            "attributes": {"creationDate": "2026-11-20T09:00:01Z", "mfaAuthenticated": "false"},
        },
        **identity,
    }


def change_record(
    function_name: Any, event_name: str = "UpdateFunctionConfiguration20150331v2", **fields: Any
) -> dict[str, Any]:
    """A change by the deployment role, from the detector's own account and Region, to the function named."""
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": role_session(DEPLOY_ROLE, "codebuild-detector"),
        "eventTime": "2026-11-20T09:15:31Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.22.4",
        "requestParameters": {"functionName": function_name, "environment": {}},
        "responseElements": None,
        "eventID": "c0ffee00-0000-4000-8000-000000000001",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": DETECTOR_ACCOUNT,
    }
    record.update(fields)
    return record


def canary_record(**fields: Any) -> dict[str, Any]:
    """The scheduled canary call as CloudTrail records it: the canary role's session, made by EventBridge Scheduler
    (invokedBy, and its name as sourceIPAddress), setting the canary's description and nothing else."""
    description = "lambda-crud-detector canary 2026-11-20T09:00:00Z"
    record = change_record(
        CANARY_NAME,
        userIdentity=role_session(CANARY_ROLE, "3f9c2a7b1d6e4f08a5c7e9b1d3f5a7c9", invokedBy=SCHEDULER),
        sourceIPAddress=SCHEDULER,
        userAgent=SCHEDULER,
        requestParameters={"functionName": CANARY_NAME, "description": description},
        responseElements={"functionName": CANARY_NAME, "functionArn": CANARY_ARN, "description": description},
    )
    record.update(fields)
    return record


# --- Changes to the detector itself ------------------------------------------------------------------------------

DETECTOR_REFERENCES = [
    DETECTOR_NAME,
    f"{DETECTOR_NAME}:live",
    f"{DETECTOR_NAME}:$LATEST",
    DETECTOR_ARN,
    f"{DETECTOR_ARN}:7",
    f"{DETECTOR_ACCOUNT}:function:{DETECTOR_NAME}",
    f"{DETECTOR_ACCOUNT}:function:{DETECTOR_NAME}:live",
]


@pytest.mark.parametrize("reference", DETECTOR_REFERENCES)
def test_a_change_to_the_detector_is_a_finding_whatever_the_allowlist_says(reference: str) -> None:
    verdict = evaluate(change_record(reference), ALLOW_EVERYONE, DETECTOR)
    assert verdict.kind == "finding" and verdict.changes_detector
    assert "on the detector itself" in verdict.reason and DEPLOY_ROLE in verdict.reason


@pytest.mark.parametrize("action", sorted(CRUD_ACTIONS))
def test_every_watched_action_on_the_detector_is_a_finding(action: str) -> None:
    verdict = evaluate(change_record(DETECTOR_ARN, action), ALLOW_EVERYONE, DETECTOR)
    assert (verdict.kind, verdict.action, verdict.changes_detector) == ("finding", action, True)


@pytest.mark.parametrize("action", ["CreateEventSourceMapping20150331", "UpdateEventSourceMapping20150331"])
@pytest.mark.parametrize("reference", [DETECTOR_NAME, DETECTOR_ARN])
def test_an_event_source_mapping_that_names_the_detector_is_a_finding(action: str, reference: str) -> None:
    record = change_record(reference, action)
    record["requestParameters"] = {"functionName": reference, "eventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q"}
    assert evaluate(record, ALLOW_EVERYONE, DETECTOR).changes_detector


def test_a_function_named_only_in_the_response_counts() -> None:
    record = change_record(None, "DeleteEventSourceMapping20150331", requestParameters={"uUID": "a1b2c3d4"})
    record["responseElements"] = {"uUID": "a1b2c3d4", "functionArn": DETECTOR_ARN, "state": "Deleting"}
    assert evaluate(record, ALLOW_EVERYONE, DETECTOR).changes_detector


def test_a_record_that_does_not_say_where_is_read_against_the_detector() -> None:
    """Without recipientAccountId and awsRegion a bare name cannot be placed, so it is not ruled out."""
    record = change_record(DETECTOR_NAME)
    del record["recipientAccountId"], record["awsRegion"]
    assert evaluate(record, ALLOW_EVERYONE, DETECTOR).changes_detector


def test_a_denied_attempt_on_the_detector_says_so() -> None:
    record = change_record(DETECTOR_NAME, errorCode="AccessDenied", errorMessage="not authorized")
    verdict = evaluate(record, ALLOW_EVERYONE, DETECTOR)
    assert verdict.kind == "finding" and "attempted on the detector itself" in verdict.reason


def test_a_change_by_a_principal_without_identity_on_the_detector_is_still_marked() -> None:
    service = {"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}
    record = change_record(DETECTOR_NAME, userIdentity=service)
    verdict = evaluate(record, ALLOW_EVERYONE, DETECTOR)
    assert verdict.kind == "finding" and verdict.changes_detector and verdict.principal_arn is None


OTHER_FUNCTIONS = {
    "another function": change_record("payments-api"),
    "a name that starts like the detector's": change_record(f"{DETECTOR_NAME}2"),
    "the name in another case": change_record(DETECTOR_NAME.lower()),
    "the same name in a member account": change_record(DETECTOR_NAME, recipientAccountId=MEMBER_ACCOUNT),
    "the same name in another Region": change_record(DETECTOR_NAME, awsRegion="eu-west-1"),
    "an ARN in another account": change_record(DETECTOR_ARN.replace(DETECTOR_ACCOUNT, MEMBER_ACCOUNT)),
    "an ARN in another Region": change_record(DETECTOR_ARN.replace(REGION, "eu-west-1")),
    "a partial ARN in another account": change_record(f"{MEMBER_ACCOUNT}:function:{DETECTOR_NAME}"),
    "no function at all": change_record(None, "DeleteEventSourceMapping20150331", requestParameters={"uUID": "x"}),
}


@pytest.mark.parametrize("record", OTHER_FUNCTIONS.values(), ids=OTHER_FUNCTIONS.keys())
def test_a_change_to_any_other_function_is_judged_by_the_allowlist(record: dict[str, Any]) -> None:
    verdict = evaluate(record, ALLOW_EVERYONE, DETECTOR)
    assert (verdict.kind, verdict.changes_detector) == ("allowlisted", False)


def test_without_a_detector_identity_the_rule_is_unchanged() -> None:
    assert evaluate(change_record(DETECTOR_NAME), ALLOW_EVERYONE).kind == "allowlisted"


def test_a_canary_named_like_the_detector_is_never_a_heartbeat() -> None:
    """A canary setting that names the detector must not turn changes to the detector into heartbeats."""
    detector = DetectorIdentity(DETECTOR.function, DETECTOR_NAME, CANARY_ROLE)
    record = canary_record(requestParameters={"functionName": DETECTOR_NAME, "description": "x"}, responseElements=None)
    assert evaluate(record, ALLOW_EVERYONE, detector).kind == "finding"


# --- The canary heartbeat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", [CANARY_NAME, CANARY_ARN, f"{DETECTOR_ACCOUNT}:function:{CANARY_NAME}"])
@pytest.mark.parametrize("event_name", ["UpdateFunctionConfiguration", "UpdateFunctionConfiguration20150331v2"])
def test_the_scheduled_canary_call_is_a_heartbeat(reference: str, event_name: str) -> None:
    record = canary_record(eventName=event_name)
    record["requestParameters"]["functionName"] = reference
    verdict = evaluate(record, RuleSettings(), DETECTOR)
    assert (verdict.kind, verdict.action) == ("heartbeat", "UpdateFunctionConfiguration")
    assert verdict.principal_arn == CANARY_ROLE


def with_identity(**changes: Any) -> dict[str, Any]:
    identity = canary_record()["userIdentity"]
    identity.update(changes)
    return canary_record(userIdentity={key: value for key, value in identity.items() if value is not None})


def with_parameters(**changes: Any) -> dict[str, Any]:
    record = canary_record()
    record["requestParameters"].update(changes)
    return record


IMITATIONS = {
    "the canary role from an IP address": canary_record(
        sourceIPAddress="203.0.113.7", userIdentity=role_session(CANARY_ROLE, "stolen")
    ),
    "the canary role from an IP address, claiming the scheduler's user agent": canary_record(
        sourceIPAddress="203.0.113.7", userAgent=SCHEDULER, userIdentity=role_session(CANARY_ROLE, "stolen")
    ),
    "the canary role from an IP address, with invokedBy": canary_record(sourceIPAddress="203.0.113.7"),
    "the canary role without invokedBy": with_identity(invokedBy=None),
    "the canary role passed to another service": canary_record(
        sourceIPAddress="states.amazonaws.com",
        userIdentity=role_session(CANARY_ROLE, "s", invokedBy="states.amazonaws.com"),
    ),
    "the scheduler with another role": canary_record(
        userIdentity=role_session(f"arn:aws:iam::{DETECTOR_ACCOUNT}:role/OpsRole", "3f9c2a7b", invokedBy=SCHEDULER)
    ),
    "a session named like the canary role": canary_record(
        userIdentity=role_session(
            f"arn:aws:iam::{DETECTOR_ACCOUNT}:role/DevSandboxRole", CANARY_ROLE.rpartition("/")[2], invokedBy=SCHEDULER
        )
    ),
    "an issuer that claims the canary role for another role's session": with_identity(
        arn=f"arn:aws:sts::{DETECTOR_ACCOUNT}:assumed-role/DevSandboxRole/3f9c2a7b"
    ),
    "an IAM user whose ARN reads like the canary role": with_identity(
        type="IAMUser", arn=CANARY_ROLE, sessionContext=None
    ),
    "another function": with_parameters(functionName="payments-api"),
    "another function in the response": canary_record(
        responseElements={"functionArn": CANARY_ARN.replace(CANARY_NAME, "payments-api")}
    ),
    "the canary's name in a member account": canary_record(recipientAccountId=MEMBER_ACCOUNT),
    "the canary's name in another Region": canary_record(awsRegion="eu-west-1", responseElements=None),
    "the canary's ARN in another account": with_parameters(
        functionName=CANARY_ARN.replace(DETECTOR_ACCOUNT, MEMBER_ACCOUNT)
    ),
    "the canary's ARN in another Region": with_parameters(functionName=CANARY_ARN.replace(REGION, "eu-west-1")),
    "the canary's ARN in a record of a member account": with_parameters(functionName=CANARY_ARN)
    | {"recipientAccountId": MEMBER_ACCOUNT},
    "the canary's ARN in a record of another Region": with_parameters(functionName=CANARY_ARN)
    | {"awsRegion": "eu-west-1"},
    "another action": canary_record(eventName="UpdateFunctionCode20150331v2"),
    "a denied call": canary_record(errorCode="AccessDeniedException", errorMessage="not authorized"),
    "a call on a canary that is gone": canary_record(errorCode="ResourceNotFoundException", responseElements=None),
    "a call that changes more than the description": with_parameters(environment={"variables": {"X": "1"}}),
    "a call that changes the canary's role": with_parameters(role=DEPLOY_ROLE),
    "a call that names no function": canary_record(requestParameters={"description": "x"}),
}


@pytest.mark.parametrize("record", IMITATIONS.values(), ids=IMITATIONS.keys())
def test_nothing_else_is_a_heartbeat_and_an_imitation_is_judged_as_usual(record: dict[str, Any]) -> None:
    verdict = evaluate(record, RuleSettings(), DETECTOR)
    without_canary = evaluate(record, RuleSettings(), DetectorIdentity(DETECTOR.function))
    assert verdict.kind == without_canary.kind == "finding", verdict.reason
    # Any write on the canary but its heartbeat is a change to the detector's tamper evidence: CRITICAL.
    if verdict.behaviour == "detector-changed":
        assert verdict.severity == "CRITICAL" and without_canary.behaviour != "detector-changed"
    else:
        assert verdict == without_canary


def test_the_imitations_differ_from_the_canary_call_in_one_respect_each() -> None:
    """The control for the test above: each imitation is the canary call with something changed."""
    real = json.dumps(canary_record(), sort_keys=True)
    assert all(json.dumps(record, sort_keys=True) != real for record in IMITATIONS.values())


@pytest.mark.parametrize(
    "detector",
    [
        DetectorIdentity(DETECTOR.function),
        DetectorIdentity(DETECTOR.function, CANARY_NAME, None),
        DetectorIdentity(DETECTOR.function, None, CANARY_ROLE),
    ],
    ids=["no canary", "no canary role", "no canary name"],
)
def test_without_a_canary_nothing_is_a_heartbeat(detector: DetectorIdentity) -> None:
    assert evaluate(canary_record(), RuleSettings(), detector).kind == "finding"


# --- Through the handler -----------------------------------------------------------------------------------------


def lambda_event(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7e1f0c2a-0000-4000-8000-000000000009",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    }


@pytest.fixture
def detector_started(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Detector]]:
    """The handler as a new container starts it, with the variables given (and the canary the template configures)."""

    def start_with(**variables: str) -> Detector:
        for name, value in {"CANARY_FUNCTION_NAME": CANARY_NAME, "CANARY_ROLE_ARN": CANARY_ROLE, **variables}.items():
            monkeypatch.setenv(name, value)
        return new_detector()

    yield start_with


def invoke(detector: Detector, record: dict[str, Any], context: FakeLambdaContext | None = None) -> dict[str, Any]:
    return detector.lambda_handler(lambda_event(copy.deepcopy(record)), context or FakeLambdaContext())


def emf_metrics(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_with_everyone_allowlisted_a_change_to_the_detector_is_stored_and_one_to_another_function_is_not(
    detector_started: Callable[..., Detector], security_hub: Any
) -> None:
    detector = detector_started(ALLOWLIST_PATTERNS="*")
    result = invoke(detector, change_record(DETECTOR_ARN))
    assert result["verdict"] == "finding" and "detector itself" in result["reason"]
    other = invoke(detector, change_record("payments-api", eventID="c0ffee00-0000-4000-8000-000000000002"))
    assert other["verdict"] == "allowlisted"

    [finding] = stored_findings(security_hub)
    assert_valid_finding(finding)
    assert finding["Id"] == result["findingId"]
    assert "(the detector itself)" in finding["Title"]
    assert "detector itself" in finding["ProductFields"]["verdictReason"]


def test_the_detectors_name_is_the_one_the_runtime_gives(
    detector_started: Callable[..., Detector], security_hub: Any
) -> None:
    detector = detector_started(ALLOWLIST_PATTERNS="*", AWS_LAMBDA_FUNCTION_NAME="prod-crud-detector")
    assert invoke(detector, change_record("prod-crud-detector"))["verdict"] == "finding"
    other = change_record(DETECTOR_NAME, eventID="c0ffee00-0000-4000-8000-000000000003")
    assert invoke(detector, other)["verdict"] == "allowlisted"


def test_the_detectors_account_is_the_one_in_its_invoked_arn(
    detector_started: Callable[..., Detector], security_hub: Any
) -> None:
    detector = detector_started(ALLOWLIST_PATTERNS="*")
    elsewhere = FakeLambdaContext(invoked_function_arn=DETECTOR_ARN.replace(DETECTOR_ACCOUNT, MEMBER_ACCOUNT))
    same_name_here = change_record(DETECTOR_NAME)
    same_name_in_member = change_record(DETECTOR_NAME, recipientAccountId=MEMBER_ACCOUNT)
    assert invoke(detector, same_name_here)["verdict"] == "finding"
    assert invoke(detector, same_name_in_member)["verdict"] == "allowlisted"
    # The same record, judged by a detector whose invoked ARN names another account, is not a change to it. (The
    # other way round would need that detector to import into its own account, which the caller here is not.)
    assert invoke(detector, same_name_here, elsewhere)["verdict"] == "allowlisted"


def test_the_canary_call_records_a_heartbeat_metric_and_no_finding(
    detector_started: Callable[..., Detector],
    security_hub: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    detector = detector_started()
    caplog.set_level("INFO")
    result = invoke(detector, canary_record())
    assert (result["verdict"], result["findingId"]) == ("heartbeat", None)
    assert stored_findings(security_hub) == []

    [blob] = [blob for blob in emf_metrics(capsys.readouterr().out) if "CanaryHeartbeat" in blob]
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "LambdaCrudDetector" and directive["Dimensions"] == [["service"]]
    assert {"Name": "CanaryHeartbeat", "Unit": "Count"} in directive["Metrics"]
    assert blob["service"] == "lambda-crud-detector" and blob["CanaryHeartbeat"] == [1.0]
    [line] = [line for line in json_log_lines(caplog) if line["message"].startswith("Verdict")]
    assert (line["verdict"], line["principal"], line["level"]) == ("heartbeat", CANARY_ROLE, "INFO")


def test_an_imitation_of_the_canary_is_stored_as_a_finding_and_counts_no_heartbeat(
    detector_started: Callable[..., Detector], security_hub: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    detector = detector_started()
    result = invoke(detector, IMITATIONS["the canary role from an IP address"])
    assert result["verdict"] == "finding"
    assert [finding["Id"] for finding in stored_findings(security_hub)] == [result["findingId"]]
    assert not any("CanaryHeartbeat" in blob for blob in emf_metrics(capsys.readouterr().out))


def test_with_the_canary_disabled_its_call_is_a_finding(
    detector_started: Callable[..., Detector], security_hub: Any
) -> None:
    """The template gives both variables empty when the canary is disabled."""
    detector = detector_started(CANARY_FUNCTION_NAME="", CANARY_ROLE_ARN="")
    assert invoke(detector, canary_record())["verdict"] == "finding"
