"""Findings in the account where the change happened (FINDINGS_ACCOUNT=source), on moto's several accounts.

moto gives credentials from ``sts.assume_role`` on ``arn:aws:iam::ACCOUNT:role/X`` to ACCOUNT, with a Security Hub of
its own, so each account's findings can be read apart. moto's Security Hub does not enforce that a finding's
``AwsAccountId`` and ``ProductArn`` are the caller's, and its STS assumes any role, existing or not: the account and
product are asserted here, and a role STS refuses is STS's real answer, stubbed.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.stub import Stubber
from moto.sts.models import sts_backends

from app import Detector
from cloudtrail import unwrap
from finding import DetectorAccount, build_finding
from findings_account import FindingsAccountSettings, FindingsDestination, findings_destination
from lambda_crud_detector import findings as viewer
from publisher import CREDENTIALS_REFRESH_MARGIN, ROLE_SESSION_NAME, AssumedRolePublishers, FindingsRoleError
from rule import evaluate
from tests.asff import assert_valid_finding
from tests.conftest import DETECTOR_ACCOUNT, FakeLambdaContext, json_log_lines, new_detector, stored_findings
from tests.support.cases import load_cases

MEMBER = "111122223333"
OTHER_MEMBER = "444455556666"
ROLE_NAME = "LambdaCrudDetectorFindings"
MEMBER_ROLE_ARN = f"arn:aws:iam::{MEMBER}:role/{ROLE_NAME}"
REGION = "us-east-1"
DETECTOR = DetectorAccount(account_id=DETECTOR_ACCOUNT, partition="aws", region=REGION)
SOURCE = FindingsAccountSettings(mode="source", role_name=ROLE_NAME)


def product_arn(account: str, region: str = REGION) -> str:
    return f"arn:aws:securityhub:{region}:{account}:product/{account}/default"


def member_event(account: str = MEMBER) -> dict[str, Any]:
    """A finding-worthy change made in ``account``, eu-west-1 (a Region other than the detector's)."""
    event = copy.deepcopy(
        next(case.event for case in load_cases() if case.file == "spoofed-deployrole-session-name.json")
    )
    event["account"] = event["detail"]["recipientAccountId"] = account
    return event


def client_in(account: str, service: str = "securityhub") -> Any:
    """A client acting in ``account``, the way moto tells accounts apart: credentials of a role assumed there."""
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/FindingsReader", RoleSessionName="test-reader"
    )["Credentials"]
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def detector_sessions_in(account: str) -> list[Any]:
    """The sessions of the detector's findings role that the account's STS handed out."""
    return [
        role
        for role in sts_backends[account]["aws"].assumed_roles
        if role.role_arn == f"arn:aws:iam::{account}:role/{ROLE_NAME}" and role.session_name == ROLE_SESSION_NAME
    ]


@pytest.fixture
def source_mode(security_hub: Any) -> Iterator[Detector]:
    """The detector as a new container builds it with FINDINGS_ACCOUNT=source."""
    with mock.patch.dict(os.environ, {"FINDINGS_ACCOUNT": "source", "FINDINGS_ROLE_NAME": ROLE_NAME}):
        yield new_detector()


# Settings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "role"), [(None, None), ("", None), ("detector", None), (" detector ", ROLE_NAME)])
def test_unset_or_detector_means_every_finding_stays_in_the_detectors_account(
    mode: str | None, role: str | None
) -> None:
    assert FindingsAccountSettings.from_config(mode, role) == FindingsAccountSettings(mode="detector", role_name=None)


def test_source_mode_reads_the_role_name() -> None:
    assert FindingsAccountSettings.from_config("source", f" {ROLE_NAME} ") == SOURCE


@pytest.mark.parametrize(
    ("mode", "role", "message"),
    [
        ("source", None, "needs FINDINGS_ROLE_NAME"),
        ("source", "  ", "needs FINDINGS_ROLE_NAME"),
        ("source", "path/Role", "needs FINDINGS_ROLE_NAME"),
        ("source", "r" * 65, "needs FINDINGS_ROLE_NAME"),
        ("member", ROLE_NAME, "must be one of detector, source"),
        ("Source", ROLE_NAME, "must be one of detector, source"),
    ],
)
def test_unusable_settings_stop_the_detector_from_starting(mode: str, role: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FindingsAccountSettings.from_config(mode, role)


def test_a_container_with_unusable_settings_fails_to_load(security_hub: Any) -> None:
    with mock.patch.dict(os.environ, {"FINDINGS_ACCOUNT": "source", "FINDINGS_ROLE_NAME": ""}):
        with pytest.raises(ValueError, match="needs FINDINGS_ROLE_NAME"):
            new_detector()


# Destination ---------------------------------------------------------------------------------------------------


def test_detector_mode_keeps_every_finding_in_the_detectors_account() -> None:
    record = member_event()["detail"]
    assert findings_destination(record, DETECTOR, FindingsAccountSettings()) == FindingsDestination(DETECTOR)


def test_source_mode_sends_another_accounts_finding_there_through_its_role() -> None:
    destination = findings_destination(member_event()["detail"], DETECTOR, SOURCE)
    assert destination == FindingsDestination(
        DetectorAccount(account_id=MEMBER, partition="aws", region=REGION), role_arn=MEMBER_ROLE_ARN
    )
    assert destination.account.product_arn == product_arn(MEMBER)


def test_source_mode_stays_in_the_detectors_partition_and_region() -> None:
    detector = DetectorAccount(account_id="210987654321", partition="aws-us-gov", region="us-gov-west-1")
    destination = findings_destination(member_event()["detail"], detector, SOURCE)
    assert destination.role_arn == f"arn:aws-us-gov:iam::{MEMBER}:role/{ROLE_NAME}"
    assert (
        destination.account.product_arn == f"arn:aws-us-gov:securityhub:us-gov-west-1:{MEMBER}:product/{MEMBER}/default"
    )


def test_source_mode_imports_the_detectors_own_events_directly() -> None:
    record = member_event(DETECTOR_ACCOUNT)["detail"]
    assert findings_destination(record, DETECTOR, SOURCE) == FindingsDestination(DETECTOR)


@pytest.mark.parametrize(
    "recipient", [None, "", "11112222333", "1111222233334", "11112222333a", 111122223333, "１１１１２２２２３３３３"]
)
def test_source_mode_keeps_a_finding_without_a_usable_account_in_the_detectors_account(recipient: Any) -> None:
    record = member_event()["detail"]
    record["recipientAccountId"] = recipient
    destination = findings_destination(record, DETECTOR, SOURCE)
    assert destination.account == DETECTOR and destination.role_arn is None
    assert destination.reason is not None and "not a 12-digit account ID" in destination.reason


# The handler, on several accounts ----------------------------------------------------------------------------------


def test_a_members_finding_lands_only_in_the_members_security_hub(
    source_mode: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    result = source_mode.lambda_handler(member_event(), lambda_context)
    assert result["verdict"] == "finding"

    [finding] = stored_findings(client_in(MEMBER))
    assert_valid_finding(finding)
    assert finding["Id"] == result["findingId"]
    assert finding["AwsAccountId"] == MEMBER
    assert finding["ProductArn"] == product_arn(MEMBER)
    assert stored_findings(security_hub) == []
    assert stored_findings(client_in(OTHER_MEMBER)) == []
    assert len(detector_sessions_in(MEMBER)) == 1


def test_the_detectors_own_events_land_locally_without_assuming_a_role(
    source_mode: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    source_mode.lambda_handler(member_event(DETECTOR_ACCOUNT), lambda_context)
    [finding] = stored_findings(security_hub)
    assert finding["AwsAccountId"] == DETECTOR_ACCOUNT
    assert finding["ProductArn"] == product_arn(DETECTOR_ACCOUNT)
    assert detector_sessions_in(DETECTOR_ACCOUNT) == []
    assert stored_findings(client_in(MEMBER)) == []


def test_the_default_mode_is_unchanged(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    assert "FINDINGS_ACCOUNT" not in os.environ
    detector.lambda_handler(member_event(), lambda_context)
    assert "member_publishers" not in vars(detector.deployment(lambda_context))  # no role, no STS client
    [finding] = stored_findings(security_hub)
    assert finding["AwsAccountId"] == DETECTOR_ACCOUNT
    assert finding["ProductArn"] == product_arn(DETECTOR_ACCOUNT)
    assert "findingsAccountReason" not in finding["ProductFields"]
    assert stored_findings(client_in(MEMBER)) == []
    assert detector_sessions_in(MEMBER) == []


def test_warm_invocations_reuse_the_members_credentials(
    source_mode: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    first, second = member_event(), member_event()
    second["detail"]["eventID"] = "0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6aff"
    source_mode.lambda_handler(first, lambda_context)
    source_mode.lambda_handler(second, lambda_context)
    source_mode.lambda_handler(member_event(OTHER_MEMBER), lambda_context)
    assert len(stored_findings(client_in(MEMBER))) == 2
    assert len(stored_findings(client_in(OTHER_MEMBER))) == 1
    assert len(detector_sessions_in(MEMBER)) == 1
    assert len(detector_sessions_in(OTHER_MEMBER)) == 1


def test_a_role_that_cannot_be_assumed_raises_and_nothing_is_imported_anywhere(
    source_mode: Detector,
    security_hub: Any,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What STS answers for a role that does not exist, or does not trust the caller (it does not say which).
    sts = boto3.client("sts", region_name=REGION)
    stubber = Stubber(sts)
    stubber.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message=f"User: arn:aws:sts::{DETECTOR_ACCOUNT}:assumed-role/DetectorRole/lambda-crud-detector is not "
        f"authorized to perform: sts:AssumeRole on resource: {MEMBER_ROLE_ARN}",
        http_status_code=403,
        expected_params={"RoleArn": MEMBER_ROLE_ARN, "RoleSessionName": ROLE_SESSION_NAME},
    )
    stubber.activate()
    source_mode.deployment(lambda_context).member_publishers = AssumedRolePublishers(
        sts.assume_role, partial(boto3.client, "securityhub", region_name=REGION)
    )

    with pytest.raises(FindingsRoleError, match=f"Could not assume {MEMBER_ROLE_ARN}.*AccessDenied"):
        source_mode.lambda_handler(member_event(), lambda_context)

    stubber.assert_no_pending_responses()
    assert stored_findings(security_hub) == []  # never a fallback to the detector's account
    assert stored_findings(client_in(MEMBER)) == []
    [error_line] = [line for line in json_log_lines(caplog) if line["level"] == "ERROR"]
    assert error_line["roleArn"] == MEMBER_ROLE_ARN and error_line["findingsAccount"] == MEMBER
    assert '"FindingsRoleFailures"' in capsys.readouterr().out


def test_source_mode_keeps_a_finding_without_a_usable_account_locally_and_says_why(
    source_mode: Detector, security_hub: Any, lambda_context: FakeLambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    event = member_event()
    event["account"] = event["detail"]["recipientAccountId"] = "not-an-account"
    source_mode.lambda_handler(event, lambda_context)

    [finding] = stored_findings(security_hub)
    assert_valid_finding(finding)
    assert finding["AwsAccountId"] == DETECTOR_ACCOUNT
    assert "'not-an-account' is not a 12-digit account ID" in finding["ProductFields"]["findingsAccountReason"]
    [warning] = [line for line in json_log_lines(caplog) if line["level"] == "WARNING"]
    assert warning["findingId"] == finding["Id"] and "kept in the detector's account" in warning["message"]


# Credentials ---------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_credentials_are_kept_while_fresh_and_renewed_before_they_expire(security_hub: Any) -> None:
    sts = boto3.client("sts", region_name=REGION)
    answers: list[dict[str, Any]] = []

    def assume_role(**request: Any) -> dict[str, Any]:
        answers.append(sts.assume_role(**request))
        return answers[-1]

    clock = Clock()
    publishers = AssumedRolePublishers(assume_role, partial(boto3.client, "securityhub", region_name=REGION), clock)
    first = publishers.publisher_for(MEMBER_ROLE_ARN)
    expiry = answers[0]["Credentials"]["Expiration"]
    assert expiry > clock.now + CREDENTIALS_REFRESH_MARGIN

    clock.now = expiry - CREDENTIALS_REFRESH_MARGIN - timedelta(seconds=1)
    assert publishers.publisher_for(MEMBER_ROLE_ARN) is first
    assert len(answers) == 1

    clock.now = expiry - CREDENTIALS_REFRESH_MARGIN
    renewed = publishers.publisher_for(MEMBER_ROLE_ARN)
    assert renewed is not first and len(answers) == 2
    assert answers[1]["Credentials"]["AccessKeyId"] != answers[0]["Credentials"]["AccessKeyId"]

    clock.now = expiry + timedelta(hours=1)  # long expired: renewed again, never reused
    assert publishers.publisher_for(MEMBER_ROLE_ARN) is not renewed and len(answers) == 3

    # The renewed credentials still act in the member's account.
    finding = member_finding(DetectorAccount(account_id=MEMBER, partition="aws", region=REGION))
    publishers.publisher_for(MEMBER_ROLE_ARN).publish([finding])
    assert [stored["Id"] for stored in stored_findings(client_in(MEMBER))] == [finding["Id"]]
    assert stored_findings(security_hub) == []


def test_each_role_has_credentials_of_its_own(security_hub: Any) -> None:
    sts = boto3.client("sts", region_name=REGION)
    publishers = AssumedRolePublishers(sts.assume_role, partial(boto3.client, "securityhub", region_name=REGION))
    other_role = f"arn:aws:iam::{OTHER_MEMBER}:role/{ROLE_NAME}"
    assert publishers.publisher_for(MEMBER_ROLE_ARN) is not publishers.publisher_for(other_role)
    assert publishers.publisher_for(MEMBER_ROLE_ARN) is publishers.publisher_for(MEMBER_ROLE_ARN)


# Pointers --------------------------------------------------------------------------------------------------------


def member_finding(owner: DetectorAccount, event: dict[str, Any] | None = None) -> dict[str, Any]:
    event = event or member_event()
    finding = build_finding(unwrap(event), evaluate(event["detail"]), owner)
    assert_valid_finding(finding)
    return finding


def test_only_the_owner_differs_between_the_modes_and_every_pointer_names_where_the_change_happened() -> None:
    in_detector = member_finding(DETECTOR)
    in_member = member_finding(findings_destination(member_event()["detail"], DETECTOR, SOURCE).account)
    assert in_member == {**in_detector, "AwsAccountId": MEMBER, "ProductArn": product_arn(MEMBER)}

    for finding in (in_detector, in_member):
        assert finding["SourceUrl"].startswith(
            "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#"
        )
        assert f"in account {MEMBER}, Region eu-west-1" in finding["Description"]
        function = finding["Resources"][0]
        assert function["Id"] == f"arn:aws:lambda:eu-west-1:{MEMBER}:function:backdoor"
        assert function["Region"] == "eu-west-1"
        assert finding["Resources"][1]["Id"] == f"arn:aws:iam::{MEMBER}:role/DevSandboxRole"


def test_a_call_that_names_no_function_still_names_its_account_and_region() -> None:
    event = member_event()
    event["detail"]["requestParameters"] = None
    finding = member_finding(DETECTOR, event)
    assert f"in account {MEMBER}, Region eu-west-1" in finding["Description"]
    assert finding["Resources"][0]["Region"] == "eu-west-1"


# The findings viewer ----------------------------------------------------------------------------------------------


def test_the_viewers_account_filter_finds_a_members_finding_in_source_mode(
    source_mode: Detector, security_hub: Any, lambda_context: FakeLambdaContext
) -> None:
    source_mode.lambda_handler(member_event(), lambda_context)
    member_hub = client_in(MEMBER)
    [listed] = viewer.list_findings(member_hub, viewer.Criteria(account=MEMBER))
    assert listed["AwsAccountId"] == MEMBER
    row = viewer.finding_row(listed)
    assert (row.account, row.region, row.function) == (MEMBER, "eu-west-1", "backdoor")
    assert viewer.list_findings(member_hub, viewer.Criteria(account=OTHER_MEMBER)) == []
    assert viewer.list_findings(security_hub, viewer.Criteria(account=MEMBER)) == []


def test_the_viewers_account_filter_is_the_same_in_detector_mode(
    detector: Detector, security_hub: Any, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    detector.lambda_handler(member_event(), lambda_context)
    capsys.readouterr()  # the handler's own output (its metrics)
    assert viewer.main(["--account", MEMBER, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["AwsAccountId"] == DETECTOR_ACCOUNT
    assert listed["ProductFields"]["recipientAccountId"] == MEMBER
