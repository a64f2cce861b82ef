"""deploy/detector-protection-scp.json: a well-formed service control policy that denies, to everyone but the
deployment role, the calls that could switch the detector off, on the resources the templates really create.

Whether a request is denied is worked out here the way IAM evaluates a Deny statement (action, resource and
condition all match; ``*`` and ``?`` wildcards; actions case-insensitive). What AWS Organizations accepts on
upload, and what it does to the management account (nothing: SCPs never apply there), only AWS can show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.cloudformation import (
    ACCOUNT_ID,
    FORWARDER_PATH,
    PROJECT_ROOT,
    STACK_NAME,
    TEMPLATE_PATH,
    Stack,
    load_template,
    translate,
)

SCP_PATH = PROJECT_ROOT / "deploy" / "detector-protection-scp.json"
SCP_SIZE_LIMIT = 5120
DEPLOYMENT_ROLE_PLACEHOLDER = "arn:aws:iam::*:role/REPLACE-WITH-DEPLOYMENT-ROLE-NAME"
DEPLOYMENT_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/REPLACE-WITH-DEPLOYMENT-ROLE-NAME"
ATTACKER = f"arn:aws:iam::{ACCOUNT_ID}:role/OpsAdmin"
REDRIVE_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/REPLACE-WITH-REDRIVE-ROLE-NAME"
SECURITY_HUB_ROUTING = [
    "securityhub:CreateAutomationRule",
    "securityhub:BatchUpdateAutomationRules",
    "securityhub:BatchDeleteAutomationRules",
    "securityhub:CreateAutomationRuleV2",
    "securityhub:UpdateAutomationRuleV2",
    "securityhub:DeleteAutomationRuleV2",
    "securityhub:CreateFindingAggregator",
    "securityhub:UpdateFindingAggregator",
    "securityhub:DeleteFindingAggregator",
]

LAMBDA_WRITES = [
    "lambda:UpdateFunctionConfiguration",
    "lambda:UpdateFunctionCode",
    "lambda:DeleteFunction",
    "lambda:PutFunctionConcurrency",
    "lambda:DeleteFunctionConcurrency",
    "lambda:PutFunctionEventInvokeConfig",
    "lambda:UpdateFunctionEventInvokeConfig",
    "lambda:DeleteFunctionEventInvokeConfig",
    "lambda:AddPermission",
    "lambda:RemovePermission",
]
RULE_CHANGES = [
    "events:DisableRule",
    "events:DeleteRule",
    "events:PutRule",
    "events:PutTargets",
    "events:RemoveTargets",
]
ROLE_CHANGES = [
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:PassRole",
]
QUEUE_CHANGES = ["sqs:DeleteQueue", "sqs:PurgeQueue", "sqs:SetQueueAttributes"]
ALARM_CHANGES = ["cloudwatch:DisableAlarmActions", "cloudwatch:DeleteAlarms", "cloudwatch:SetAlarmState"]
TRAIL_CHANGES = [
    "cloudtrail:StopLogging",
    "cloudtrail:DeleteTrail",
    "cloudtrail:UpdateTrail",
    "cloudtrail:PutEventSelectors",
    "cloudtrail:PutAdvancedEventSelectors",
]


def load_policy() -> dict[str, Any]:
    return json.loads(SCP_PATH.read_text(encoding="utf-8"))


def _wildcard(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        for key, expected in keys.items():
            actual = context.get(key)
            if operator == "ArnNotLike":
                holds = actual is None or not any(_wildcard(p, actual) for p in _as_list(expected))
            elif operator == "StringEquals":
                holds = actual in _as_list(expected)
            elif operator == "ForAnyValue:StringEquals":  # a request value is a list of strings here
                holds = any(value in _as_list(expected) for value in _as_list(actual or []))
            else:
                raise AssertionError(f"condition operator {operator} not understood by this test")
            if not holds:
                return False
    return True


def denied(action: str, resource: str, principal: str, **context: Any) -> bool:
    """Whether the policy denies ``principal`` calling ``action`` on ``resource``."""
    request = {"aws:PrincipalArn": principal, **context}
    return any(
        any(_wildcard(pattern, action, ignore_case=True) for pattern in _as_list(statement["Action"]))
        and any(_wildcard(pattern, resource) for pattern in _as_list(statement["Resource"]))
        and _condition_holds(statement.get("Condition", {}), request)
        for statement in load_policy()["Statement"]
        if statement["Effect"] == "Deny"
    )


def stack_for(parameters: Mapping[str, str]) -> Stack:
    return Stack(translate(load_template(TEMPLATE_PATH), parameters), parameters)


def protected_requests() -> list[tuple[str, str]]:
    """(action, resource) pairs that could switch off or blind the detector, on the resources the templates
    create, with every option on."""
    parameters = {
        "OrganizationId": "o-a1b2c3d4e5",
        "AlarmTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:alerts",
        "FindingsTopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:findings",
    }
    detector = stack_for(parameters)
    requests: list[tuple[str, str]] = []
    for function in ("DetectorFunction", "CanaryFunction"):
        arn = detector.attribute(function, "Arn")
        requests += [(action, resource) for action in LAMBDA_WRITES for resource in (arn, f"{arn}:prod")]
    requests.append(("lambda:InvokeFunction", detector.attribute("DetectorFunction", "Arn")))
    rules = detector.resources_of_type("AWS::Events::Rule")
    rule_arns = [detector.attribute(logical_id, "Arn") for logical_id in rules]
    on_custom_bus = stack_for({"EventBusName": "audit-events"})
    rule_arns.append(on_custom_bus.attribute("DetectorFunctionLambdaApiCall", "Arn"))  # rule/audit-events/NAME
    requests += [(action, arn) for action in RULE_CHANGES for arn in rule_arns]
    bus = detector.attribute("OrganizationEventBus", "Arn")
    requests += [
        (action, bus) for action in ("events:DeleteEventBus", "events:RemovePermission", "events:PutPermission")
    ]
    for logical_id in detector.resources_of_type("AWS::SQS::Queue"):
        requests += [(action, detector.attribute(logical_id, "Arn")) for action in QUEUE_CHANGES]
    for logical_id in detector.resources_of_type("AWS::Logs::LogGroup"):
        requests.append(("logs:DeleteLogGroup", detector.attribute(logical_id, "Arn")))
    for logical_id in detector.resources_of_type("AWS::IAM::Role"):
        requests += [(action, detector.attribute(logical_id, "Arn")) for action in ROLE_CHANGES]
    schedule = detector.attribute("CanarySchedule", "Arn")
    requests += [(action, schedule) for action in ("scheduler:UpdateSchedule", "scheduler:DeleteSchedule")]
    requests.append(("scheduler:DeleteScheduleGroup", detector.attribute("CanaryScheduleGroup", "Arn")))
    heartbeat_alarm = detector.attribute("CanaryHeartbeatAlarm", "Arn")
    requests += [(action, heartbeat_alarm) for action in ALARM_CHANGES]
    forwarder = Stack(load_template(FORWARDER_PATH), {"CentralEventBusArn": bus})
    requests += [(action, forwarder.attribute("ForwardLambdaApiCallsRule", "Arn")) for action in RULE_CHANGES]
    trail = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:trail/management-events"
    requests += [(action, trail) for action in TRAIL_CHANGES]
    hub = f"arn:aws:securityhub:us-east-1:{ACCOUNT_ID}:hub/default"
    requests.append(("securityhub:DisableSecurityHub", hub))
    requests += [(action, hub) for action in SECURITY_HUB_ROUTING]
    requests += [(action, f"arn:aws:iam::{ACCOUNT_ID}:role/REPLACE-WITH-REDRIVE-ROLE-NAME") for action in ROLE_CHANGES]
    return requests


# Well-formed ----------------------------------------------------------------------------------------------------


def test_policy_is_a_well_formed_service_control_policy() -> None:
    text = SCP_PATH.read_text(encoding="utf-8")
    assert len(text) < SCP_SIZE_LIMIT  # as written, whitespace included
    policy = json.loads(text)
    assert set(policy) == {"Version", "Statement"} and policy["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(sids) == len(set(sids)) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for statement in policy["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource", "Condition"}, statement["Sid"]
        assert statement["Effect"] == "Deny"
        assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", action) for action in _as_list(statement["Action"]))
        assert all(resource == "*" or resource.startswith("arn:aws:") for resource in _as_list(statement["Resource"]))
        # Nobody but the deployment role is exempt from any statement.
        assert DEPLOYMENT_ROLE_PLACEHOLDER in statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"]


# What it denies -------------------------------------------------------------------------------------------------


def test_every_call_that_could_switch_the_detector_off_is_denied_to_others() -> None:
    requests = protected_requests()
    assert len(requests) > 80
    allowed = [request for request in requests if not denied(*request, ATTACKER)]
    assert allowed == []


def test_the_deployment_role_is_denied_nothing() -> None:
    assert [request for request in protected_requests() if denied(*request, DEPLOYMENT_ROLE)] == []


def test_the_canary_schedule_may_change_the_canary_and_nothing_else() -> None:
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/{STACK_NAME}-CanaryScheduleRole-1A2B3C4D5E6F"
    canary = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}-canary"
    detector = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}"
    assert not denied("lambda:UpdateFunctionConfiguration", canary, role)
    assert denied("lambda:UpdateFunctionConfiguration", detector, role)
    assert denied("events:DisableRule", f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/{STACK_NAME}-lambda-calls", role)


def test_only_the_redrive_role_and_the_deployment_role_may_invoke_the_detector() -> None:
    detector = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}"
    for action in ("lambda:InvokeFunction", "lambda:InvokeAsync"):
        assert denied(action, detector, ATTACKER) and denied(action, f"{detector}:live", ATTACKER)
        assert not denied(action, detector, REDRIVE_ROLE)
    # The redrive role may invoke, and nothing more.
    assert denied("lambda:UpdateFunctionCode", detector, REDRIVE_ROLE)
    assert denied("securityhub:CreateAutomationRuleV2", "*", REDRIVE_ROLE)


def test_suppressing_findings_is_left_to_the_deployment_role_and_resolving_to_everyone() -> None:
    hub = f"arn:aws:securityhub:us-east-1:{ACCOUNT_ID}:hub/default"
    status = "securityhub:ASFFSyntaxPath/Workflow.Status"
    assert denied("securityhub:BatchUpdateFindings", hub, ATTACKER, **{status: ["SUPPRESSED"]})
    assert not denied("securityhub:BatchUpdateFindings", hub, DEPLOYMENT_ROLE, **{status: ["SUPPRESSED"]})
    assert not denied("securityhub:BatchUpdateFindings", hub, ATTACKER, **{status: ["RESOLVED"]})


def test_no_one_but_the_deployment_role_can_forge_a_heartbeat_metric() -> None:
    assert denied("cloudwatch:PutMetricData", "*", ATTACKER, **{"cloudwatch:namespace": "LambdaCrudDetector"})
    assert not denied("cloudwatch:PutMetricData", "*", ATTACKER, **{"cloudwatch:namespace": "MyApp"})


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("lambda:UpdateFunctionConfiguration", f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:payments-api"),
        ("lambda:UpdateFunctionConfiguration", f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}2"),
        ("lambda:GetFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}"),
        ("events:DisableRule", f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/nightly-report"),
        ("sqs:DeleteQueue", f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:orders"),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT_ID}:role/OpsAdmin"),
        ("cloudtrail:StartLogging", f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:trail/management-events"),
    ],
)
def test_the_rest_of_the_account_is_left_alone(action: str, resource: str) -> None:
    assert not denied(action, resource, ATTACKER)


def test_the_evaluation_can_deny() -> None:
    # The checks above pass vacuously if nothing is ever denied; this one cannot.
    assert denied("cloudtrail:StopLogging", "*", ATTACKER)
    assert not denied("cloudtrail:StopLogging", "*", DEPLOYMENT_ROLE)


def test_a_public_url_or_a_tag_on_the_detector_is_denied_to_all_but_the_deployment_role() -> None:
    detector = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{STACK_NAME}"
    for action in ("lambda:CreateFunctionUrlConfig", "lambda:TagResource", "lambda:UntagResource"):
        assert denied(action, detector, ATTACKER), action
        assert not denied(action, detector, DEPLOYMENT_ROLE), action
