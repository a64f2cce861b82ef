"""The local Security Hub the tests, the demo and the end-to-end tests use (tests/support/strict_securityhub.py): it must
refuse what AWS refuses, in the way AWS refuses it, or the other tests prove nothing about the real service.

These tests exercise the test harness, not the detector; their names say so."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.securityhub.models import securityhub_backends

from tests.conftest import DETECTOR_ACCOUNT, stored_findings
from tests.support.local_runtime import local_security_hub
from tests.support.strict_securityhub import finding_errors, strict_batch_import_findings

OTHER_ACCOUNT = "444455556666"


def a_finding(account: str = DETECTOR_ACCOUNT, **changes: Any) -> dict[str, Any]:
    finding = {
        "SchemaVersion": "2018-10-08",
        "Id": "AWS.LAMBDA.CRUD/111122223333/eu-west-1/example",
        "ProductArn": f"arn:aws:securityhub:us-east-1:{account}:product/{account}/default",
        "GeneratorId": "AWS.LAMBDA.CRUD",
        "AwsAccountId": account,
        "CreatedAt": "2026-11-20T09:15:31.000Z",
        "UpdatedAt": "2026-11-20T09:15:31.000Z",
        "Title": "A title",
        "Description": "A description",
        "FindingProviderFields": {"Severity": {"Label": "HIGH"}, "Types": ["TTPs/Persistence/T1525"]},
        "Resources": [{"Type": "AwsLambdaFunction", "Id": "arn:aws:lambda:eu-west-1:111122223333:function:f"}],
    }
    finding.update(changes)
    return finding


def test_harness_local_security_hub_stores_a_valid_finding(security_hub: Any) -> None:
    answer = security_hub.batch_import_findings(Findings=[a_finding()])
    assert (answer["SuccessCount"], answer["FailedCount"], answer["FailedFindings"]) == (1, 0, [])
    assert [finding["Title"] for finding in stored_findings(security_hub)] == ["A title"]


def test_harness_local_security_hub_refuses_a_300_character_title_as_aws_does(security_hub: Any) -> None:
    answer = security_hub.batch_import_findings(Findings=[a_finding(Title="t" * 300)])
    assert (answer["SuccessCount"], answer["FailedCount"]) == (0, 1)
    [failed] = answer["FailedFindings"]
    assert failed["ErrorCode"] == "InvalidInput"
    assert failed["ErrorMessage"] == (
        "Finding does not adhere to Amazon Finding Format. data.Title should NOT be longer than 256 characters."
    )
    assert stored_findings(security_hub) == []


def test_harness_local_security_hub_refuses_a_foreign_account_for_the_whole_call(security_hub: Any) -> None:
    foreign_account = a_finding(AwsAccountId=OTHER_ACCOUNT, Id="foreign")
    foreign_product = a_finding(account=OTHER_ACCOUNT, Id="foreign-product")
    for finding in (foreign_account, foreign_product):
        with pytest.raises(ClientError) as refused:
            security_hub.batch_import_findings(Findings=[a_finding(), finding])
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert stored_findings(security_hub) == []


def test_harness_local_security_hub_takes_the_caller_account_from_the_request(security_hub: Any) -> None:
    """A finding of another account is accepted from that account's own credentials, as moto serves several."""
    sts = boto3.client("sts", region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/Importer", RoleSessionName="importer")[
        "Credentials"
    ]
    member_hub = boto3.client(
        "securityhub",
        region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    assert member_hub.batch_import_findings(Findings=[a_finding(account=OTHER_ACCOUNT)])["SuccessCount"] == 1
    with pytest.raises(ClientError, match="AccessDeniedException"):
        member_hub.batch_import_findings(Findings=[a_finding()])
    assert [finding["AwsAccountId"] for finding in stored_findings(member_hub)] == [OTHER_ACCOUNT]
    assert stored_findings(security_hub) == []


def test_harness_local_security_hub_ignores_an_import_not_newer_than_the_stored_one(security_hub: Any) -> None:
    security_hub.batch_import_findings(Findings=[a_finding(Title="first")])
    for updated_at, title in (("2026-11-20T09:15:31.000Z", "same time"), ("2026-11-20T10:15:30+01:00", "older")):
        answer = security_hub.batch_import_findings(Findings=[a_finding(Title=title, UpdatedAt=updated_at)])
        assert (answer["SuccessCount"], answer["FailedCount"]) == (1, 0)  # ignored, not refused
    assert [finding["Title"] for finding in stored_findings(security_hub)] == ["first"]

    security_hub.batch_import_findings(Findings=[a_finding(Title="newer", UpdatedAt="2026-11-20T09:15:32Z")])
    assert [finding["Title"] for finding in stored_findings(security_hub)] == ["newer"]


def test_harness_local_security_hub_takes_at_most_100_findings_per_call(security_hub: Any) -> None:
    findings = [a_finding(Id=f"finding-{index}") for index in range(101)]
    with pytest.raises(ClientError) as refused:
        security_hub.batch_import_findings(Findings=findings)
    assert refused.value.response["Error"]["Code"] == "InvalidInputException"
    assert security_hub.batch_import_findings(Findings=findings[:100])["SuccessCount"] == 100


def test_harness_local_security_hub_refuses_a_finding_over_240_kb(security_hub: Any) -> None:
    fields = {f"field{index}": "v" * 2048 for index in range(50)}
    resources = [{"Type": "Other", "Id": f"{index}-" + "r" * 500, "Details": {"Other": fields}} for index in range(3)]
    answer = security_hub.batch_import_findings(Findings=[a_finding(Resources=resources)])
    assert answer["FailedCount"] == 1
    assert "240 KB" in answer["FailedFindings"][0]["ErrorMessage"]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("whitespace title", {"Title": "   "}),
        ("no resources", {"Resources": []}),
        ("33 resources", {"Resources": [{"Type": "Other", "Id": str(index)} for index in range(33)]}),
        ("resource without Id", {"Resources": [{"Type": "Other"}]}),
        ("long Region", {"Resources": [{"Type": "Other", "Id": "x", "Region": "r" * 17}]}),
        ("unknown partition", {"Resources": [{"Type": "Other", "Id": "x", "Partition": "mars"}]}),
        ("bad severity", {"FindingProviderFields": {"Severity": {"Label": "SEVERE"}, "Types": ["TTPs"]}}),
        ("no severity", {"FindingProviderFields": {"Types": ["TTPs"]}}),
        ("bad type", {"FindingProviderFields": {"Severity": {"Label": "LOW"}, "Types": ["Persistence/T1525"]}}),
        ("bad timestamp", {"UpdatedAt": "2026-11-20 09:15:31"}),
        ("reserved product field", {"ProductFields": {"aws/securityhub/x": "y"}}),
        ("long product field", {"ProductFields": {"k": "v" * 2049}}),
        ("51 product fields", {"ProductFields": {str(index): "v" for index in range(51)}}),
        ("number as string", {"Criticality": "10"}),
        ("unknown member", {"Titel": "typo"}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_harness_local_security_hub_judges_what_the_model_and_the_documentation_state(
    security_hub: Any, name: str, change: dict[str, Any]
) -> None:
    """Judged by the backend directly: boto3 would refuse some of these (types, unknown members) before sending."""
    finding = a_finding(**copy.deepcopy(change))
    assert finding_errors(finding), name
    backend = securityhub_backends[DETECTOR_ACCOUNT]["us-east-1"]
    failed_count, success_count, failed = strict_batch_import_findings(backend, [finding])
    assert (failed_count, success_count) == (1, 0), name
    assert failed[0]["ErrorCode"] == "InvalidInput"
    assert failed[0]["ErrorMessage"].startswith("Finding does not adhere to Amazon Finding Format. data")
    assert stored_findings(security_hub) == []


@pytest.mark.integration
def test_harness_local_security_hub_server_of_the_demo_is_as_strict() -> None:
    """The moto server in its own process (make demo, the end-to-end tests) runs the same checks."""
    with local_security_hub(account_id=DETECTOR_ACCOUNT) as hub:
        client = hub.client()
        answer = client.batch_import_findings(Findings=[a_finding(Title="t" * 300)])
        assert [failed["ErrorCode"] for failed in answer["FailedFindings"]] == ["InvalidInput"]
        with pytest.raises(ClientError, match="AccessDeniedException"):
            client.batch_import_findings(Findings=[a_finding(AwsAccountId=OTHER_ACCOUNT)])
        client.batch_import_findings(Findings=[a_finding(Title="first")])
        client.batch_import_findings(Findings=[a_finding(Title="older", UpdatedAt="2026-11-20T09:15:30Z")])
        assert [finding["Title"] for finding in stored_findings(client)] == ["first"]
