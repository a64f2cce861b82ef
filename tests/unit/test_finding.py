"""The finding builder: every finding is complete, bounded, and says what happened."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from cloudtrail import read_record
from finding import (
    MAX_DESCRIPTION,
    RUNBOOK_URL,
    TRUNCATION_MARKER,
    DetectorAccount,
    build_finding,
    finding_id,
)
from grading import BEHAVIOURS
from rule import DetectorIdentity, FunctionRef, RuleSettings, evaluate
from tests.asff import assert_valid_finding, finding_errors
from tests.conftest import DETECTOR_ACCOUNT, SAMPLE_RULE_SETTINGS
from tests.support.cases import load_cases

DETECTOR = DetectorAccount(account_id=DETECTOR_ACCOUNT, partition="aws", region="us-east-1")
FINDING_CASES = [case for case in load_cases() if case.expected_verdict == "finding"]


def finding_for(detail: dict[str, Any], detector: DetectorAccount = DETECTOR) -> dict[str, Any]:
    event = read_record(detail)  # the record alone: the builder must cope with records no envelope check would pass
    verdict = evaluate(detail, SAMPLE_RULE_SETTINGS)
    assert verdict.kind == "finding"
    finding = build_finding(event, verdict, detector)
    assert_valid_finding(finding)
    return finding


def sample(file: str) -> dict[str, Any]:
    return copy.deepcopy(next(case.event["detail"] for case in load_cases() if case.file == file))


@pytest.mark.parametrize("case", FINDING_CASES, ids=lambda case: case.file)
def test_every_sample_finding_is_valid_asff(case: Any) -> None:
    finding = finding_for(copy.deepcopy(case.event["detail"]))
    fields = finding["ProductFields"]
    detail = case.event["detail"]
    for key in ("RuleId", "eventID", "eventName", "eventSource", "recipientAccountId", "awsRegion", "sourceIPAddress"):
        assert fields[key], key
    assert fields["eventName"] == detail["eventName"]  # raw, with its suffix
    assert detail["eventID"] in finding["Id"]
    assert finding["GeneratorId"] == "AWS.LAMBDA.CRUD"
    severity = case.expected_severity
    assert finding["FindingProviderFields"]["Severity"] == {"Label": severity, "Original": severity.capitalize()}
    behaviour = BEHAVIOURS[case.expected_behaviour]
    assert finding["FindingProviderFields"]["Types"] == [behaviour.finding_type]
    assert fields["behaviour"] == case.expected_behaviour
    assert fields["callerKind"] in ("person", "automation", "unknown")
    assert finding["Title"].startswith(behaviour.title)
    assert finding["Remediation"]["Recommendation"] == {"Text": behaviour.runbook, "Url": RUNBOOK_URL}


def test_identity_and_timing_make_redelivery_a_no_op() -> None:
    detail = sample("update-function-code-by-iam-user.json")
    first, again = finding_for(detail), finding_for(copy.deepcopy(detail))
    assert first == again
    prefix = "AWS.LAMBDA.CRUD/111122223333/eu-west-1/0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a01/"
    assert re.fullmatch(re.escape(prefix) + "[0-9a-f]{32}", first["Id"])
    assert first["CreatedAt"] == first["UpdatedAt"] == first["FirstObservedAt"] == "2026-11-20T09:15:31.000Z"


def test_cross_account_event_is_recorded_under_the_detector_account() -> None:
    finding = finding_for(sample("cross-account-create-alias.json"))
    assert finding["AwsAccountId"] == DETECTOR_ACCOUNT
    assert (
        finding["ProductArn"] == f"arn:aws:securityhub:us-east-1:{DETECTOR_ACCOUNT}:product/{DETECTOR_ACCOUNT}/default"
    )
    function = finding["Resources"][0]
    assert function == {
        "Type": "AwsLambdaFunction",
        "Id": "arn:aws:lambda:us-east-2:444455556666:function:orders-worker",
        "Partition": "aws",
        "Region": "us-east-2",
    }
    assert finding["ProductFields"]["recipientAccountId"] == "444455556666"
    assert "in 444455556666 us-east-2]" in finding["Title"]


def test_product_arn_follows_the_detector_partition() -> None:
    detector = DetectorAccount.from_function_arn(
        "arn:aws-us-gov:lambda:us-gov-west-1:210987654321:function:D", "us-gov-west-1"
    )
    finding = finding_for(sample("update-function-code-by-iam-user.json"), detector)
    assert finding["ProductArn"] == "arn:aws-us-gov:securityhub:us-gov-west-1:210987654321:product/210987654321/default"
    assert finding["AwsAccountId"] == "210987654321"


def test_title_names_the_behaviour_the_function_and_the_caller() -> None:
    finding = finding_for(sample("spoofed-deployrole-session-name.json"))
    assert finding["Title"] == (
        "New code on backdoor by arn:aws:sts::111122223333:assumed-role/DevSandboxRole/xDeployRole "
        "[CreateFunction in 111122223333 eu-west-1]"
    )
    assert finding["Resources"][1] == {"Type": "AwsIamRole", "Id": "arn:aws:iam::111122223333:role/DevSandboxRole"}


def test_title_says_when_the_detector_itself_was_changed() -> None:
    detail = sample("spoofed-deployrole-session-name.json")
    detail["userIdentity"]["arn"] = "arn:aws:sts::111122223333:assumed-role/DevSandboxRole/" + "s" * 64
    detail["requestParameters"]["functionName"] = "backdoor"
    verdict = evaluate(detail, RuleSettings(), DetectorIdentity(FunctionRef("111122223333", "eu-west-1", "backdoor")))
    finding = build_finding(read_record(detail), verdict, DETECTOR)
    assert_valid_finding(finding)
    assert finding["Title"].startswith("Detector changed on backdoor (the detector itself) by arn:aws:sts::")
    assert finding["Severity"]["Label"] == "CRITICAL"
    assert finding["ProductFields"]["verdictReason"].startswith("CreateFunction (detector-changed, CRITICAL) performed")


@pytest.mark.parametrize(
    ("function_name", "expected"),
    [
        ("payments-api", "arn:aws:lambda:eu-west-1:111122223333:function:payments-api"),
        ("payments-api:live", "arn:aws:lambda:eu-west-1:111122223333:function:payments-api"),
        (
            "arn:aws:lambda:eu-west-1:111122223333:function:payments-api:7",
            "arn:aws:lambda:eu-west-1:111122223333:function:payments-api",
        ),
        ("555566667777:function:payments-api:$LATEST", "arn:aws:lambda:eu-west-1:555566667777:function:payments-api"),
    ],
)
def test_function_resource_is_the_unqualified_arn(function_name: str, expected: str) -> None:
    detail = sample("update-function-code-by-iam-user.json")
    detail["requestParameters"] = {"functionName": function_name}
    assert finding_for(detail)["Resources"][0]["Id"] == expected


def test_event_source_mapping_by_uuid_names_the_mapping() -> None:
    finding = finding_for(sample("aws-service-caller.json"))
    assert finding["Resources"][0] == {
        "Type": "Other",
        "Id": "arn:aws:lambda:eu-west-1:111122223333:event-source-mapping:a1b2c3d4-5678-90ab-cdef-11112222aaaa",
        "Partition": "aws",
        "Region": "eu-west-1",
    }
    assert finding["Title"].startswith("Deployment changed on event-source-mapping:")
    call = finding["Action"]["AwsApiCallAction"]
    assert call["CallerType"] == "domain"
    assert call["DomainDetails"] == {"Domain": "cloudformation.amazonaws.com"}


def test_record_naming_nothing_still_says_what_was_called() -> None:
    detail = sample("failed-call-access-denied.json")
    assert detail["requestParameters"] is None
    resource = finding_for(detail)["Resources"][0]
    assert resource["Type"] == "Other"
    assert "UpdateFunctionCode20150331v2" in resource["Id"]


def test_ip_address_callers_are_remote_ips() -> None:
    call = finding_for(sample("update-function-code-by-iam-user.json"))["Action"]["AwsApiCallAction"]
    assert call["CallerType"] == "remoteip"
    assert call["RemoteIpDetails"] == {"IpAddressV4": "198.51.100.23"}
    assert call["Api"] == "UpdateFunctionCode20150331v2"
    assert call["ServiceName"] == "lambda.amazonaws.com"


def test_failed_call_shows_its_error() -> None:
    finding = finding_for(sample("failed-call-access-denied.json"))
    assert "AccessDenied" in finding["Description"]
    assert "attempted" in finding["Description"]
    assert finding["ProductFields"]["errorCode"] == "AccessDenied"


def test_any_aws_arns_are_collected_outside_the_environment() -> None:
    detail = sample("spoofed-deployrole-session-name.json")
    secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-password-AbCdEf"
    detail["requestParameters"]["environment"] = {"variables": {"DB": secret, "TOKEN": "hunter2-secret-value"}}
    finding = finding_for(detail)
    arns = finding["ProductFields"]["p_any_aws_arns"].split(", ")
    assert "arn:aws:iam::111122223333:role/AdminRole" in arns
    assert "arn:aws:iam::111122223333:role/DevSandboxRole" in arns
    text = json.dumps(finding)
    assert secret not in text
    assert "hunter2-secret-value" not in text


def test_source_url_opens_the_event_in_the_cloudtrail_console() -> None:
    finding = finding_for(sample("update-function-code-by-iam-user.json"))
    assert finding["SourceUrl"] == (
        "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1"
        "#/events/0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a01"
    )


HOSTILE_TEXT = [
    "x" * 5000,
    "ƒunction-名前-🙂" * 400,
    "line\nbreak\ttab\x00nul\x1bescape\x7f\x9f",
    "\ud800 lone surrogate",
    "\u202eRTL override",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=["long", "unicode", "control", "surrogate", "bidi"])
@pytest.mark.parametrize(
    "field",
    [
        "functionName",
        "arn",
        "issuer",
        "sourceIPAddress",
        "userAgent",
        "errorCode",
        "errorMessage",
        "eventID",
        "awsRegion",
        "recipientAccountId",
        "eventName",
    ],
)
def test_hostile_values_still_yield_a_valid_finding(field: str, text: str) -> None:
    detail = sample("spoofed-deployrole-session-name.json")
    if field == "functionName":
        detail["requestParameters"]["functionName"] = text
    elif field == "arn":
        detail["userIdentity"]["arn"] = f"arn:aws:sts::111122223333:assumed-role/Dev/{text}"
    elif field == "issuer":
        detail["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = f"arn:aws:iam::111122223333:role/{text}"
    elif field == "eventName":
        detail["eventName"] = "CreateFunction20150331"  # the name must stay in scope; pad the rest instead
        detail["requestParameters"]["description"] = text
    else:
        detail[field] = text
    finding = finding_for(detail)
    if field == "eventID":
        assert finding["Id"].startswith("AWS.LAMBDA.CRUD/sha256/")
        assert finding == finding_for(copy.deepcopy(detail)), "the fallback Id must be stable"


def test_huge_request_parameters_cost_nothing_in_the_finding() -> None:
    detail = sample("update-function-code-by-iam-user.json")
    detail["requestParameters"]["blob"] = [
        {"arn": f"arn:aws:s3:::bucket-{i}", "nested": {"deeper": ["x" * 100] * 10}} for i in range(20_000)
    ]
    finding = finding_for(detail)
    assert len(json.dumps(finding)) < 20_000


def test_long_values_are_truncated_visibly() -> None:
    detail = sample("update-function-code-by-iam-user.json")
    detail["userAgent"] = "a" * 5000
    detail["errorCode"] = "Denied"
    detail["errorMessage"] = "m" * 5000
    finding = finding_for(detail)
    assert finding["ProductFields"]["userAgent"].endswith(TRUNCATION_MARKER)
    assert len(finding["Description"]) <= MAX_DESCRIPTION


@pytest.mark.parametrize("account", ["ANONYMIZED", "", "12345", None, 111122223333, "👀" * 20])
def test_malformed_account_ids_still_yield_a_valid_finding(account: Any) -> None:
    detail = sample("update-function-code-by-iam-user.json")
    detail["recipientAccountId"] = account
    detail["awsRegion"] = "not-a-region-at-all-really"
    finding = finding_for(detail)
    assert "Region" not in finding["Resources"][0]
    assert "SourceUrl" not in finding


def test_finding_id_falls_back_to_a_digest_for_odd_parts() -> None:
    plain = {"recipientAccountId": "111122223333", "awsRegion": "eu-west-1", "eventID": "abc-123"}
    assert re.fullmatch(r"AWS\.LAMBDA\.CRUD/111122223333/eu-west-1/abc-123/[0-9a-f]{32}", finding_id(plain))
    odd = dict(plain, eventID="abc/../123")
    assert finding_id(odd).startswith("AWS.LAMBDA.CRUD/sha256/")
    assert finding_id(odd) != finding_id(dict(plain, eventID="abc/../124"))


def test_event_time_becomes_an_asff_timestamp() -> None:
    detail = sample("update-function-code-by-iam-user.json")
    detail["eventTime"] = "2026-11-20T10:15:31.5+01:00"
    finding = finding_for(detail)
    assert finding["CreatedAt"] == "2026-11-20T09:15:31.500Z"


def test_harness_validator_rejects_what_security_hub_rejects() -> None:
    good = finding_for(sample("update-function-code-by-iam-user.json"))
    broken_copies = {
        "long title": dict(good, Title="t" * 257),
        "other account": dict(good, AwsAccountId="999999999999"),
        "bad timestamp": dict(good, UpdatedAt="2026-11-20 09:15:31"),
        "no resources": dict(good, Resources=[]),
        "reserved key": dict(good, ProductFields={"aws/securityhub/x": "y"}),
        "bad type": dict(good, FindingProviderFields={**good["FindingProviderFields"], "Types": ["Persistence/T1525"]}),
        "long region": dict(good, Resources=[dict(good["Resources"][0], Region="r" * 17)]),
    }
    for name, finding in broken_copies.items():
        assert finding_errors(finding), name
