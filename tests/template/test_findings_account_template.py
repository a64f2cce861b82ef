"""The templates in both findings modes: who may assume what, what the findings role may do, and the outputs.

template.yaml is evaluated as tests/template/test_template.py does; deploy/member-forwarder.yaml as CloudFormation would
for one stack instance, in account 123456789012 and Region us-east-1 (tests.support.cloudformation's pseudo parameters),
with the detector elsewhere or here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cloudformation import (
    ACCOUNT_ID,
    FORWARDER_PATH,
    REGION,
    Stack,
    as_list,
    load_template,
    policy_statements,
)
from tests.template.test_template import ORGANIZATION_ID, PARAMETER_SETS, actions_of, stack

SECURITY_ACCOUNT = "999988887777"
DETECTOR_ROLE_ARN = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/lambda-crud-detector-DetectorRole-1A2B3C4D5E6F"
OWN_PRODUCT = f"arn:aws:securityhub:{REGION}:{ACCOUNT_ID}:product/{ACCOUNT_ID}/default"


def central_bus(account: str = SECURITY_ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:events:{region}:{account}:event-bus/lambda-crud-detector-organization"


def forwarder(**parameters: str) -> Stack:
    return Stack(load_template(FORWARDER_PATH), {"CentralEventBusArn": central_bus(), **parameters})


def role_grants(detector: Stack, action: str) -> list[dict[str, Any]]:
    return [statement for _, statement in policy_statements(detector) if action in actions_of(statement)]


# The detector ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameter_set", sorted(PARAMETER_SETS))
def test_the_detector_may_assume_only_the_findings_role_and_only_in_source_mode(parameter_set: str) -> None:
    detector = stack(parameter_set)
    grants = role_grants(detector, "sts:AssumeRole")
    if detector.parameters["FindingsAccount"] == "source":
        role_name = detector.parameters["FindingsRoleName"]
        grant = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::*:role/{role_name}"}
        organization = detector.parameters["OrganizationId"]
        if organization:  # only in the organisation's accounts: a forged record cannot aim it elsewhere
            grant["Condition"] = {"StringEquals": {"aws:ResourceOrgID": organization}}
        assert grants == [grant]
        assert detector.outputs["DetectorRoleArn"] == detector.attribute("DetectorRole", "Arn")
        assert detector.outputs["FindingsRoleName"] == role_name
    else:
        assert grants == []
        assert not {"DetectorRoleArn", "FindingsRoleName"} & set(detector.outputs)


def test_source_mode_is_chosen_by_the_parameter_and_told_to_the_function() -> None:
    variables = stack("source-findings").properties("DetectorFunction")["Environment"]["Variables"]
    assert (variables["FINDINGS_ACCOUNT"], variables["FINDINGS_ROLE_NAME"]) == ("source", "SecurityFindingsImporter")
    assert (
        stack("defaults").properties("DetectorFunction")["Environment"]["Variables"]["FINDINGS_ACCOUNT"] == "detector"
    )


# The forwarder's findings role --------------------------------------------------------------------------------------


def test_the_findings_role_trusts_only_the_detectors_role_and_may_only_import_here() -> None:
    member = forwarder(DetectorRoleArn=DETECTOR_ROLE_ARN)
    role = member.properties("FindingsRole")
    assert role["RoleName"] == "LambdaCrudDetectorFindings"
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"AWS": DETECTOR_ROLE_ARN}, "Action": "sts:AssumeRole"}
    ]
    assert "ManagedPolicyArns" not in role
    assert [statement for owner, statement in policy_statements(member) if owner == "FindingsRole"] == [
        {"Effect": "Allow", "Action": "securityhub:BatchImportFindings", "Resource": OWN_PRODUCT}
    ]
    assert member.outputs["FindingsRoleArn"] == member.attribute("FindingsRole", "Arn")


def test_with_an_organization_the_findings_role_also_requires_it() -> None:
    role = forwarder(DetectorRoleArn=DETECTOR_ROLE_ARN, OrganizationId=ORGANIZATION_ID).properties("FindingsRole")
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": DETECTOR_ROLE_ARN},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORGANIZATION_ID}},
        }
    ]


def test_the_role_name_follows_the_detectors_setting() -> None:
    member = forwarder(DetectorRoleArn=DETECTOR_ROLE_ARN, FindingsRoleName="SecurityFindingsImporter")
    assert member.properties("FindingsRole")["RoleName"] == "SecurityFindingsImporter"


@pytest.mark.parametrize(
    ("case", "parameters"),
    [
        ("detector mode: no DetectorRoleArn", {}),
        (
            "another Region of the member: the role is global, made once",
            {"CentralEventBusArn": central_bus(region="eu-west-1"), "DetectorRoleArn": DETECTOR_ROLE_ARN},
        ),
        (
            "the detector's own account imports directly",
            {"CentralEventBusArn": central_bus(account=ACCOUNT_ID), "DetectorRoleArn": DETECTOR_ROLE_ARN},
        ),
    ],
)
def test_no_findings_role_where_none_is_needed(case: str, parameters: dict[str, str]) -> None:
    member = forwarder(**parameters)
    assert not member.resources_of_type("AWS::IAM::Role").keys() - {"ForwarderRole"}, case
    assert "FindingsRoleArn" not in member.outputs, case
    assert not any(
        "securityhub:BatchImportFindings" in as_list(statement.get("Action", []))
        for _, statement in policy_statements(member)
    ), case


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"DetectorRoleArn": DETECTOR_ROLE_ARN},
        {"CentralEventBusArn": central_bus(account=ACCOUNT_ID, region="eu-west-1")},
    ],
)
def test_forwarding_is_the_same_in_every_mode_and_for_every_account(parameters: dict[str, str]) -> None:
    member = forwarder(**parameters)
    bus = member.parameters["CentralEventBusArn"]
    (target,) = member.properties("ForwardLambdaApiCallsRule")["Targets"]
    assert target["Arn"] == bus and target["RoleArn"] == member.attribute("ForwarderRole", "Arn")
    assert [statement for owner, statement in policy_statements(member) if owner == "ForwarderRole"] == [
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus}
    ]
