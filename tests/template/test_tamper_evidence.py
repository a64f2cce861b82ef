"""Tamper evidence in template.yaml: the tamper alert rule, the canary and its heartbeat alarm, and the
notification of new findings.

The event patterns are evaluated with moto's implementation of EventBridge matching, on realistic CloudTrail
records of each change that could blind the detector and on records that must not raise an alert. What this
proves is what the patterns match as written; that CloudTrail delivers these records, and that SNS accepts
EventBridge's messages (the topic policy), only a deployment can show.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from moto.events.models import EventPattern

from cloudtrail import unwrap
from finding import DetectorAccount, build_finding
from rule import evaluate
from tests.asff import assert_valid_finding
from tests.support.cases import load_cases
from tests.support.cloudformation import (
    ACCOUNT_ID,
    FORWARDER_PATH,
    FUNCTION_ID,
    REGION,
    STACK_NAME,
    TEMPLATE_PATH,
    Stack,
    generated_name,
    load_template,
    to_json,
    translate,
)

ALARM_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:security-alerts"
FINDINGS_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:lambda-findings"
ORGANIZATION_ID = "o-a1b2c3d4e5"
DETECTOR_NAME = STACK_NAME
CANARY_NAME = f"{STACK_NAME}-canary"
DETECTOR_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{DETECTOR_NAME}"
CANARY_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{CANARY_NAME}"
UNIVERSAL_TARGET = "arn:aws:scheduler:::aws-sdk:lambda:updateFunctionConfiguration"
LONGEST_STACK_NAME = 51
"""The longest stack name for which every name the template derives from it fits its service's limit."""


def detector_stack(**parameters: str) -> Stack:
    return Stack(_translated(tuple(sorted(parameters.items()))), parameters)


@functools.cache
def _translated(parameters: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return translate(load_template(TEMPLATE_PATH), dict(parameters))


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(copy.deepcopy(dict(event)))


def render(transformer: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """An input transformer's text for ``event``: each <name> replaced by the value at its path ("" if absent)."""
    message = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value = value_at(event, path)
        text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        message = message.replace(f"<{name}>", text)
    return message


def value_at(event: Any, path: str) -> Any:
    """The value at an EventBridge input path such as ``$.detail.findings[0].Title``; None when absent."""
    assert path.startswith("$."), path
    value = event
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", path[2:]):
        if step.startswith("["):
            index = int(step[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(step) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


# Realistic CloudTrail records -----------------------------------------------------------------------------------

ATTACKER = {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLEID7654321:mallory",
    "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/OpsAdmin/mallory",
    "accountId": ACCOUNT_ID,
    "accessKeyId": "ASIAEXAMPLEKEY654321",
    "sessionContext": {
        "sessionIssuer": {
            "type": "Role",
            "principalId": "AROAEXAMPLEID7654321",
            "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/OpsAdmin",
            "accountId": ACCOUNT_ID,
            "userName": "OpsAdmin",
        },
        "attributes": {"creationDate": "2026-11-20T09:14:02Z", "mfaAuthenticated": "false"},
    },
}


def api_call(
    service: str, event_name: str, request_parameters: Mapping[str, Any] | None, *, read_only: bool = False
) -> dict[str, Any]:
    """The EventBridge event CloudTrail delivers for a call to ``service`` (e.g. "lambda") in the detector's
    account and Region, made by an administrator's assumed-role session."""
    return {
        "version": "0",
        "id": "7f0e2a4c-0000-4000-8000-0000000000aa",
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{service}",
        "account": ACCOUNT_ID,
        "time": "2026-11-20T09:15:31Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": ATTACKER,
            "eventTime": "2026-11-20T09:15:31Z",
            "eventSource": f"{service}.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "aws-cli/2.22.4 Python/3.12.6 Linux/6.1",
            "requestParameters": request_parameters,
            "responseElements": None,
            "requestID": "1d2c3b4a-0000-4000-8000-0000000000bb",
            "eventID": "9e8d7c6b-0000-4000-8000-0000000000cc",
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT_ID,
            "eventCategory": "Management",
        },
    }


def lambda_call(event_name: str, function_name: str, *, read_only: bool = False, **parameters: Any) -> dict[str, Any]:
    return api_call("lambda", event_name, {"functionName": function_name, **parameters}, read_only=read_only)


def names_of(function_name: str, function_arn: str) -> list[str]:
    """Every way a Lambda call can name a function: name, name:qualifier, ARN, qualified ARN, partial ARN."""
    return [
        function_name,
        f"{function_name}:prod",
        function_arn,
        f"{function_arn}:$LATEST",
        f"{ACCOUNT_ID}:function:{function_name}",
        f"{ACCOUNT_ID}:function:{function_name}:7",
    ]


DETECTOR_RULE = f"{STACK_NAME}-lambda-calls"
BLINDING_CALLS: dict[str, dict[str, Any]] = {
    **{
        f"UpdateFunctionConfiguration on {name}": lambda_call(
            "UpdateFunctionConfiguration20150331v2", name, environment={"variables": "***"}
        )
        for name in names_of(DETECTOR_NAME, DETECTOR_ARN)
    },
    "UpdateFunctionCode": lambda_call("UpdateFunctionCode20150331v2", DETECTOR_NAME, s3Bucket="b", s3Key="k"),
    "DeleteFunction": lambda_call("DeleteFunction20150331", DETECTOR_ARN),
    "PutFunctionConcurrency to zero": lambda_call(
        "PutFunctionConcurrency20171031", DETECTOR_NAME, reservedConcurrentExecutions=0
    ),
    "DeleteFunctionEventInvokeConfig": lambda_call("DeleteFunctionEventInvokeConfig20190925", DETECTOR_NAME),
    "PutFunctionEventInvokeConfig": lambda_call(
        "PutFunctionEventInvokeConfig20190925", DETECTOR_NAME, maximumRetryAttempts=0
    ),
    "AddPermission (failed)": {
        **(event := lambda_call("AddPermission20150331v2", DETECTOR_NAME, statementId="x", action="lambda:*")),
        "detail": {**event["detail"], "errorCode": "AccessDenied", "errorMessage": "not authorized"},
    },
    "DeleteFunction on the canary": lambda_call("DeleteFunction20150331", CANARY_NAME),
    "UpdateFunctionCode on the canary": lambda_call("UpdateFunctionCode20150331v2", CANARY_ARN),
    "DisableRule on the detector's rule": api_call("events", "DisableRule", {"name": DETECTOR_RULE}),
    "DeleteRule on the detector's rule": api_call("events", "DeleteRule", {"name": DETECTOR_RULE, "force": False}),
    "PutRule on the detector's rule": api_call(
        "events", "PutRule", {"name": DETECTOR_RULE, "eventPattern": '{"source":["nothing"]}', "state": "ENABLED"}
    ),
    "RemoveTargets on the detector's rule": api_call(
        "events", "RemoveTargets", {"rule": DETECTOR_RULE, "ids": ["DetectorFunction"]}
    ),
    "PutTargets on the detector's rule": api_call(
        "events", "PutTargets", {"rule": DETECTOR_RULE, "targets": [{"id": "x", "arn": "arn:aws:sqs:::q"}]}
    ),
    "DisableRule on the tamper alert rule": api_call("events", "DisableRule", {"name": f"{STACK_NAME}-tamper-alert"}),
    "RemoveTargets on the notification rule": api_call(
        "events", "RemoveTargets", {"rule": f"{STACK_NAME}-new-findings", "ids": ["FindingsTopic"]}
    ),
    "DisableRule on the forwarder rule": api_call("events", "DisableRule", {"name": "lambda-crud-detector-forwarder"}),
    "StopLogging": api_call(
        "cloudtrail", "StopLogging", {"name": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/org"}
    ),
    "DeleteTrail": api_call("cloudtrail", "DeleteTrail", {"name": "management-events"}),
    "UpdateTrail": api_call("cloudtrail", "UpdateTrail", {"name": "management-events", "isMultiRegionTrail": False}),
    "PutEventSelectors": api_call(
        "cloudtrail",
        "PutEventSelectors",
        {"trailName": "management-events", "eventSelectors": [{"readWriteType": "ReadOnly"}]},
    ),
    "PutAdvancedEventSelectors": api_call(
        "cloudtrail", "PutAdvancedEventSelectors", {"trailName": "management-events", "advancedEventSelectors": []}
    ),
    "DeleteSchedule on the canary schedule": api_call(
        "scheduler", "DeleteSchedule", {"name": CANARY_NAME, "groupName": CANARY_NAME}
    ),
    "UpdateSchedule on the canary schedule": api_call(
        "scheduler", "UpdateSchedule", {"Name": CANARY_NAME, "GroupName": CANARY_NAME, "State": "DISABLED"}
    ),
    "DisableAlarmActions on the heartbeat alarm": api_call(
        "monitoring", "DisableAlarmActions", {"alarmNames": [f"{STACK_NAME}-canary-heartbeat"]}
    ),
    "SetAlarmState on the heartbeat alarm": api_call(
        "monitoring", "SetAlarmState", {"alarmName": f"{STACK_NAME}-canary-heartbeat", "stateValue": "OK"}
    ),
    "DisableAlarmActions on the Errors alarm": api_call(
        "monitoring", "DisableAlarmActions", {"alarmNames": ["cpu-high", generated_name("DetectorErrorsAlarm")]}
    ),
    "DeleteAlarms on the failed-invocation queue alarm": api_call(
        "monitoring", "DeleteAlarms", {"alarmNames": [generated_name("FailedInvocationQueueAlarm")]}
    ),
    "PutMetricAlarm on the dropped-events alarm": api_call(
        "monitoring", "PutMetricAlarm", {"alarmName": generated_name("DetectorAsyncEventsDroppedAlarm")}
    ),
}

HARMLESS_CALLS: dict[str, dict[str, Any]] = {
    **{
        f"UpdateFunctionConfiguration on {name}": lambda_call("UpdateFunctionConfiguration20150331v2", name)
        for name in [
            "payments-api",
            f"{DETECTOR_NAME}2",
            f"{DETECTOR_NAME}-x:prod",
            f"arn:aws:lambda:eu-west-1:{ACCOUNT_ID}:function:{DETECTOR_NAME}",
            f"arn:aws:lambda:{REGION}:111122223333:function:{DETECTOR_NAME}",
            f"111122223333:function:{DETECTOR_NAME}",
            # The canary's name starts with the detector's: it must not be taken for the detector.
            *names_of(CANARY_NAME, CANARY_ARN),
        ]
    },
    "GetFunction on the detector (read-only)": lambda_call("GetFunction20150331v2", DETECTOR_NAME, read_only=True),
    "ListVersionsByFunction on the detector (read-only)": lambda_call(
        "ListVersionsByFunction20150331", DETECTOR_ARN, read_only=True
    ),
    "DisableRule on another rule": api_call("events", "DisableRule", {"name": "nightly-report"}),
    "DisableRule on a rule named like the detector's": api_call(
        "events", "DisableRule", {"name": f"{DETECTOR_RULE}-old"}
    ),
    "PutTargets on another rule": api_call("events", "PutTargets", {"rule": "nightly-report", "targets": []}),
    "EnableRule on the detector's rule": api_call("events", "EnableRule", {"name": DETECTOR_RULE}),
    "StartLogging": api_call("cloudtrail", "StartLogging", {"name": "management-events"}),
    "DeleteSchedule on another schedule": api_call(
        "scheduler", "DeleteSchedule", {"name": "nightly", "groupName": "default"}
    ),
    "DisableAlarmActions on another alarm": api_call("monitoring", "DisableAlarmActions", {"alarmNames": ["cpu-high"]}),
    "a custom event claiming to be CloudTrail's": {
        **lambda_call("DeleteFunction20150331", DETECTOR_NAME),
        "source": "custom.lambda",
    },
    "a CloudTrail service event, not an API call": {
        **lambda_call("DeleteFunction20150331", DETECTOR_NAME),
        "detail-type": "AWS Service Event via CloudTrail",
    },
}

# The canary's own hourly change, exactly as the schedule's role makes it: expected, so never a tamper alert.
CANARY_HEARTBEAT_CALL = {
    **(
        heartbeat := lambda_call(
            "UpdateFunctionConfiguration20150331v2",
            CANARY_NAME,
            description="lambda-crud-detector canary 2026-11-20T09:00:00Z",
        )
    ),
    "detail": {
        **heartbeat["detail"],
        "userIdentity": {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{STACK_NAME}-CanaryScheduleRole-1A2B3C4D5E6F/abc",
            "invokedBy": "scheduler.amazonaws.com",
        },
        "sourceIPAddress": "scheduler.amazonaws.com",
    },
}


TAMPER_RULES = ("TamperAlertRule", "FunctionTamperAlertRule", "HubTamperAlertRule")
"""The tamper alert's rules: one pattern of 4,096 characters cannot hold every name they watch."""


def tamper_rule(logical_id: str = "TamperAlertRule", **parameters: str) -> dict[str, Any]:
    return detector_stack(AlarmTopicArn=ALARM_TOPIC, **parameters).properties(logical_id)


CALLERS_TEXT = {"function", "resource", "resourceArn", "rule", "name", "queue", "alarm", "alarms", "roleName"}
"""The alert's fields that quote the caller's request: labelled as the caller's text in the message."""


def alerts(event: Mapping[str, Any], **parameters: str) -> bool:
    """Whether any of the tamper alert's rules matches ``event``.

    EventBridge matches a pattern's fields inside arrays of objects (a data event's ``resources``); moto's matcher
    does not descend into them, so a one-element ``resources`` is given to it as that element.
    """
    detail = event.get("detail", {})
    resources = detail.get("resources") if isinstance(detail, Mapping) else None
    if isinstance(resources, list) and len(resources) == 1:
        event = {**event, "detail": {**detail, "resources": resources[0]}}
    return any(matches(tamper_rule(rule, **parameters)["EventPattern"], event) for rule in TAMPER_RULES)


# The tamper alert rule ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", sorted(BLINDING_CALLS), ids=str)
def test_every_blinding_call_raises_a_tamper_alert(call: str) -> None:
    assert alerts(BLINDING_CALLS[call])


@pytest.mark.parametrize("call", sorted(HARMLESS_CALLS), ids=str)
def test_harmless_calls_raise_no_tamper_alert(call: str) -> None:
    assert not alerts(HARMLESS_CALLS[call])


def test_the_canarys_hourly_change_is_no_tamper_alert_but_reaches_the_detector() -> None:
    detector = detector_stack(AlarmTopicArn=ALARM_TOPIC)
    assert not alerts(CANARY_HEARTBEAT_CALL)
    detector_pattern = detector.properties(f"{FUNCTION_ID}LambdaApiCall")["EventPattern"]
    assert matches(detector_pattern, CANARY_HEARTBEAT_CALL)


def test_sample_lambda_changes_to_other_functions_raise_no_tamper_alert() -> None:
    alerted = [case.file for case in load_cases() if alerts(case.event)]
    assert alerted == []


def test_organisation_bus_changes_raise_a_tamper_alert_in_organisation_mode() -> None:
    bus = f"{STACK_NAME}-organization"
    bus_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{bus}"
    pattern = tamper_rule(OrganizationId=ORGANIZATION_ID)["EventPattern"]
    assert matches(pattern, api_call("events", "RemovePermission", {"eventBusName": bus, "statementId": "x"}))
    assert matches(pattern, api_call("events", "PutPermission", {"eventBusName": bus_arn, "policy": "{}"}))
    assert matches(pattern, api_call("events", "DeleteEventBus", {"name": bus}))
    assert not matches(pattern, api_call("events", "DeleteEventBus", {"name": "other-bus"}))
    # And the detector's own rule on that bus is still named.
    assert matches(pattern, api_call("events", "DisableRule", {"name": DETECTOR_RULE, "eventBusName": bus}))


def test_without_a_canary_the_rule_names_no_canary() -> None:
    for rule in TAMPER_RULES:
        assert CANARY_NAME not in to_json(tamper_rule(rule, EnableCanary="false")["EventPattern"]), rule
    assert not alerts(lambda_call("DeleteFunction20150331", CANARY_NAME), EnableCanary="false")
    assert alerts(lambda_call("DeleteFunction20150331", DETECTOR_NAME), EnableCanary="false")


@pytest.mark.parametrize(
    "parameters", [{}, {"OrganizationId": ORGANIZATION_ID}, {"EventBusName": "audit-events"}], ids=str
)
def test_tamper_rule_listens_on_the_default_bus_and_alerts_the_alarm_topic(parameters: dict[str, str]) -> None:
    # CloudTrail delivers this account's calls to its default bus, whichever bus the detector watches.
    names = set()
    for logical_id in TAMPER_RULES:
        rule = tamper_rule(logical_id, **parameters)
        assert rule["EventBusName"] == "default"
        assert rule["State"] == "ENABLED"  # also: EventBridge then delivers no read-only calls
        names.add(rule["Name"])
        (target,) = rule["Targets"]
        assert target["Arn"] == ALARM_TOPIC
        assert "RoleArn" not in target  # SNS authorises EventBridge through the topic policy
    assert names == {f"{STACK_NAME}-tamper-alert", f"{STACK_NAME}-tamper-fn", f"{STACK_NAME}-tamper-hub"}


def test_tamper_alert_says_who_did_what_where() -> None:
    (target,) = tamper_rule()["Targets"]
    transformer = target["InputTransformer"]
    call = BLINDING_CALLS["DisableRule on the detector's rule"]
    message = render(transformer, call)
    for expected in (
        ATTACKER["arn"],
        "DisableRule",
        "events.amazonaws.com",
        DETECTOR_RULE,
        f"account {ACCOUNT_ID}",
        f"Region {REGION}",
        "203.0.113.7",
        "2026-11-20T09:15:31Z",
        call["detail"]["eventID"],
        STACK_NAME,
    ):
        assert expected in message, (expected, message)
    # Every path of what AWS recorded names a field such a record has; the error is present only when the call
    # failed, and the request's names (the caller's text) only where that API has them.
    missing = {name for name, path in transformer["InputPathsMap"].items() if value_at(call, path) is None}
    assert missing - CALLERS_TEXT == {"errorCode", "invokedBy"}
    assert "AccessDenied" in render(transformer, BLINDING_CALLS["AddPermission (failed)"])


def test_no_tamper_rule_without_an_alarm_topic() -> None:
    detector = detector_stack()
    assert not detector.exists("TamperAlertRule")
    assert not detector.exists("TamperAlertDeliveryAlarm")


def test_tamper_delivery_failures_alarm() -> None:
    alarm = detector_stack(AlarmTopicArn=ALARM_TOPIC).properties("TamperAlertDeliveryAlarm")
    watched = {
        (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Metric"]["Dimensions"][0]["Value"])
        for metric in alarm["Metrics"]
        if (stat := metric.get("MetricStat"))
    }
    assert watched == {
        ("AWS/Events", "FailedInvocations", f"{STACK_NAME}-tamper-{suffix}") for suffix in ("alert", "fn", "hub")
    }
    (expression,) = [metric["Expression"] for metric in alarm["Metrics"] if "Expression" in metric]
    assert all(f"FILL({metric['Id']}, 0)" in expression for metric in alarm["Metrics"] if "MetricStat" in metric)
    assert alarm["AlarmActions"] == [ALARM_TOPIC]


@pytest.mark.parametrize("parameters", [{}, {"OrganizationId": ORGANIZATION_ID}, {"EnableCanary": "false"}], ids=str)
def test_tamper_pattern_fits_eventbridge_size_limit_with_the_longest_stack_name(parameters: dict[str, str]) -> None:
    for rule in TAMPER_RULES:
        pattern = to_json(tamper_rule(rule, **parameters)["EventPattern"])
        longest = len(pattern) + pattern.count(STACK_NAME) * (LONGEST_STACK_NAME - len(STACK_NAME))
        assert longest <= 4096, rule  # PutRule refuses longer patterns


def test_every_derived_name_fits_with_the_longest_stack_name() -> None:
    # Rules, functions, schedules and schedule groups allow 64 characters; alarms 255.
    detector = detector_stack(AlarmTopicArn=ALARM_TOPIC, FindingsTopicArn=FINDINGS_TOPIC)
    names = {
        f"{FUNCTION_ID}LambdaApiCall": detector.properties(f"{FUNCTION_ID}LambdaApiCall")["Name"],
        **{rule: detector.properties(rule)["Name"] for rule in TAMPER_RULES},
        "FindingsNotificationRule": detector.properties("FindingsNotificationRule")["Name"],
        "CanaryFunction": detector.properties("CanaryFunction")["FunctionName"],
        "CanarySchedule": detector.properties("CanarySchedule")["Name"],
        "CanaryScheduleGroup": detector.properties("CanaryScheduleGroup")["Name"],
    }
    for logical_id, name in names.items():
        assert name.startswith(STACK_NAME), logical_id
        assert len(name) - len(STACK_NAME) + LONGEST_STACK_NAME <= 64, (logical_id, name)


# The canary -----------------------------------------------------------------------------------------------------


def test_canary_is_a_tiny_function_allowed_only_its_own_logs() -> None:
    detector = detector_stack()
    canary = detector.properties("CanaryFunction")
    assert canary["FunctionName"] == CANARY_NAME
    assert (canary["Runtime"], canary["MemorySize"]) == ("python3.13", 128)
    assert "def handler(event, context):" in canary["Code"]["ZipFile"] and canary["Handler"] == "index.handler"
    assert canary["Role"] == detector.attribute("CanaryFunctionRole", "Arn")
    role = detector.properties("CanaryFunctionRole")
    assert "ManagedPolicyArns" not in role
    ((policy,),) = [role["Policies"]]
    log_group = detector.attribute("CanaryLogGroup", "Arn")
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": log_group}
    ]
    assert canary["LoggingConfig"]["LogGroup"] == f"/aws/lambda/{CANARY_NAME}"


def test_schedule_changes_the_canary_every_hour_through_the_universal_target() -> None:
    detector = detector_stack()
    schedule = detector.properties("CanarySchedule")
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == UNIVERSAL_TARGET
    assert target["RoleArn"] == detector.attribute("CanaryScheduleRole", "Arn")
    request = json.loads(target["Input"])
    assert request == {
        "FunctionName": CANARY_NAME,
        "Description": "lambda-crud-detector canary <aws.scheduler.scheduled-time>",
    }


def test_schedule_role_is_for_this_schedule_and_may_only_update_the_canary() -> None:
    detector = detector_stack()
    group_arn = detector.attribute("CanaryScheduleGroup", "Arn")
    # Scheduler sets aws:SourceArn to the schedule group; the canary's group holds the canary schedule alone.
    assert detector.properties("CanarySchedule")["GroupName"] == detector.attribute("CanaryScheduleGroup", "Ref")
    assert [
        logical_id
        for logical_id, resource in detector.resources_of_type("AWS::Scheduler::Schedule").items()
        if resource["Properties"].get("GroupName") == detector.attribute("CanaryScheduleGroup", "Ref")
    ] == ["CanarySchedule"]
    role = detector.properties("CanaryScheduleRole")
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                "ArnEquals": {"aws:SourceArn": group_arn},
            },
        }
    ]
    ((policy,),) = [role["Policies"]]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "lambda:UpdateFunctionConfiguration", "Resource": CANARY_ARN}
    ]


def test_detector_is_told_the_canary_it_must_recognise() -> None:
    variables = detector_stack().properties(FUNCTION_ID)["Environment"]["Variables"]
    assert variables["CANARY_FUNCTION_NAME"] == CANARY_NAME
    assert variables["CANARY_ROLE_ARN"] == detector_stack().attribute("CanaryScheduleRole", "Arn")
    # Exactly the role the schedule assumes: a change by any other principal is not the canary.
    assert variables["CANARY_ROLE_ARN"] == detector_stack().properties("CanarySchedule")["Target"]["RoleArn"]


@pytest.mark.parametrize("hours", ["2", "3", "24"])
def test_heartbeat_alarm_fires_when_no_heartbeat_arrives_for_the_set_hours(hours: str) -> None:
    detector = detector_stack(CanaryMissingHours=hours, AlarmTopicArn=ALARM_TOPIC)
    alarm = detector.properties("CanaryHeartbeatAlarm")
    # EventBridge's own count of the detector rule's invocations, which no invoker of the detector can write
    # (CloudWatch refuses PutMetricData in AWS/ namespaces); the detector's CanaryHeartbeat metric, which a direct
    # invocation can make it write, is not what the alarm rests on.
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Events", "Invocations")
    assert alarm["Dimensions"] == [{"Name": "RuleName", "Value": f"{STACK_NAME}-lambda-calls"}]
    assert not alarm["Namespace"].startswith(
        detector.properties(FUNCTION_ID)["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    )
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 3600)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == hours
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == alarm["OKActions"] == [ALARM_TOPIC]
    assert alarm["AlarmName"] == f"{STACK_NAME}-canary-heartbeat"


def test_enable_canary_false_creates_no_canary_and_tells_the_detector_nothing() -> None:
    detector = detector_stack(EnableCanary="false")
    canary_parts = {
        "CanaryFunction",
        "CanaryLogGroup",
        "CanaryFunctionRole",
        "CanaryScheduleGroup",
        "CanarySchedule",
        "CanaryScheduleRole",
        "CanaryHeartbeatAlarm",
    }
    canary_template = load_template(TEMPLATE_PATH.parent / "stacks" / "canary.yaml")
    assert canary_parts <= set(detector.template["Resources"]) | set(canary_template["Resources"])
    assert not canary_parts & set(detector.resources)
    assert "Canary" not in detector.nested_stacks
    variables = detector.properties(FUNCTION_ID)["Environment"]["Variables"]
    assert (variables["CANARY_FUNCTION_NAME"], variables["CANARY_ROLE_ARN"]) == ("", "")


def test_canary_is_on_by_default() -> None:
    assert load_template(TEMPLATE_PATH)["Parameters"]["EnableCanary"]["Default"] == "true"
    assert load_template(TEMPLATE_PATH)["Parameters"]["CanaryMissingHours"]["Default"] == 3


# Notifications --------------------------------------------------------------------------------------------------

PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{ACCOUNT_ID}:product/{ACCOUNT_ID}/default"


def imported_finding_event(case_file: str = "spoofed-deployrole-session-name.json") -> dict[str, Any]:
    """A "Security Hub Findings - Imported" event, shaped as the Security Hub user guide documents it, carrying
    the finding this detector builds for a sample event, with the fields Security Hub adds on import."""
    (case,) = [case for case in load_cases() if case.file == case_file]
    cloudtrail_event = unwrap(case.event)
    finding = build_finding(
        cloudtrail_event,
        evaluate(cloudtrail_event.record),
        DetectorAccount(account_id=ACCOUNT_ID, partition="aws", region=REGION),
    )
    assert_valid_finding(finding)
    imported = {
        **finding,
        "ProductName": "Default",
        "CompanyName": "Personal",
        "Region": REGION,
        "Severity": {"Label": "HIGH", "Normalized": 70, "Original": "High"},
        "Workflow": {"Status": "NEW"},
        "WorkflowState": "NEW",
        "RecordState": "ACTIVE",
        "ProductFields": {
            **finding["ProductFields"],
            "aws/securityhub/FindingId": f"{PRODUCT_ARN}/{finding['Id']}",
            "aws/securityhub/ProductName": "Default",
            "aws/securityhub/CompanyName": "Personal",
        },
    }
    return {
        "version": "0",
        "id": "3c9f1e2d-0000-4000-8000-0000000000dd",
        "detail-type": "Security Hub Findings - Imported",
        "source": "aws.securityhub",
        "account": ACCOUNT_ID,
        "time": "2026-11-20T09:16:02Z",
        "region": REGION,
        "resources": [f"{PRODUCT_ARN}/{finding['Id']}"],
        "detail": {"findings": [imported]},
    }


def with_finding(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["detail"]["findings"][0].update(changes)
    return changed


def as_moto_matches(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with its one finding in place of the one-element list.

    EventBridge matches a pattern's fields inside arrays of objects; moto's matcher does not descend into them.
    Security Hub sends exactly one finding per event, so matching the finding itself is what EventBridge does.
    """
    (finding,) = event["detail"]["findings"]
    return {**event, "detail": {**event["detail"], "findings": finding}}


def notification_rule() -> dict[str, Any]:
    return detector_stack(FindingsTopicArn=FINDINGS_TOPIC).properties("FindingsNotificationRule")


def test_a_new_active_finding_of_this_detector_is_notified() -> None:
    assert matches(notification_rule()["EventPattern"], as_moto_matches(imported_finding_event()))


@pytest.mark.parametrize(
    ("why", "changes", "detail_type"),
    [
        ("another generator", {"GeneratorId": "aws-foundational-security-best-practices/v/1.0.0/Lambda.1"}, None),
        ("another product", {"ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty"}, None),
        ("workflow NOTIFIED", {"Workflow": {"Status": "NOTIFIED"}}, None),
        ("workflow RESOLVED", {"Workflow": {"Status": "RESOLVED"}}, None),
        ("workflow SUPPRESSED", {"Workflow": {"Status": "SUPPRESSED"}}, None),
        ("archived", {"RecordState": "ARCHIVED"}, None),
        ("a custom action, not an import", {}, "Security Hub Findings - Custom Action"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_other_findings_and_events_are_not_notified(why: str, changes: dict[str, Any], detail_type: str | None) -> None:
    event = with_finding(imported_finding_event(), **changes)
    if detail_type:
        event["detail-type"] = detail_type
    assert not matches(notification_rule()["EventPattern"], as_moto_matches(event)), why


@pytest.mark.parametrize(
    ("lowest", "notified"),
    [
        (None, {"CRITICAL", "HIGH"}),  # the default
        ("CRITICAL", {"CRITICAL"}),
        ("MEDIUM", {"CRITICAL", "HIGH", "MEDIUM"}),
        ("INFORMATIONAL", {"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"}),
    ],
)
def test_the_lowest_severity_notified_is_a_setting(lowest: str | None, notified: set[str]) -> None:
    settings = {"FindingsTopicArn": FINDINGS_TOPIC, **({"NotifyMinimumSeverity": lowest} if lowest else {})}
    pattern = detector_stack(**settings).properties("FindingsNotificationRule")["EventPattern"]
    for label in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"):
        event = with_finding(imported_finding_event(), Severity={"Label": label, "Original": label.capitalize()})
        assert matches(pattern, as_moto_matches(event)) is (label in notified), label


def test_notification_is_readable_with_title_account_region_principal_function_and_link() -> None:
    event = imported_finding_event()
    finding = event["detail"]["findings"][0]
    (target,) = notification_rule()["Targets"]
    assert target["Arn"] == FINDINGS_TOPIC
    transformer = target["InputTransformer"]
    missing = {name for name, path in transformer["InputPathsMap"].items() if value_at(event, path) is None}
    assert missing == set()
    message = render(transformer, event)
    assert finding["Title"] in message
    assert "Account: 111122223333" in message and "Region: eu-west-1" in message
    assert "Principal: arn:aws:iam::111122223333:role/DevSandboxRole" in message
    assert "Function: arn:aws:lambda:eu-west-1:111122223333:function:backdoor" in message
    links = re.findall(r"https://\S+", message)
    assert f"https://{REGION}.console.aws.amazon.com/securityhub/home?region={REGION}#/findings?search=Id" in links[0]
    assert links[0].endswith(finding["Id"])
    assert links[1] == finding["SourceUrl"]
    # The Id sits in the link unencoded: it must hold no character a URL would need escaped.
    assert re.fullmatch(r"[A-Za-z0-9._/-]+", finding["Id"])


def test_no_notification_rule_without_a_findings_topic() -> None:
    detector = detector_stack()
    assert not detector.exists("FindingsNotificationRule")
    assert not detector.exists("FindingsNotificationDeliveryAlarm")
    rule = notification_rule()
    assert (rule["EventBusName"], rule["State"], rule["Name"]) == ("default", "ENABLED", f"{STACK_NAME}-new-findings")


# The member forwarder ------------------------------------------------------------------------------------------

CENTRAL_BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{STACK_NAME}-organization"
FORWARDER_RULE = "lambda-crud-detector-forwarder"


def forwarder_stack(**parameters: str) -> Stack:
    return Stack(load_template(FORWARDER_PATH), {"CentralEventBusArn": CENTRAL_BUS_ARN, **parameters})


def test_forwarding_rule_has_the_name_the_detectors_tamper_rule_watches() -> None:
    assert forwarder_stack().properties("ForwardLambdaApiCallsRule")["Name"] == FORWARDER_RULE
    assert FORWARDER_RULE in to_json(tamper_rule()["EventPattern"])


@pytest.mark.parametrize(
    ("call", "alert"),
    [
        (api_call("events", "DisableRule", {"name": FORWARDER_RULE}), True),
        (api_call("events", "DeleteRule", {"name": FORWARDER_RULE}), True),
        (api_call("events", "PutRule", {"name": FORWARDER_RULE, "eventPattern": "{}"}), True),
        (api_call("events", "RemoveTargets", {"rule": FORWARDER_RULE, "ids": ["CentralEventBus"]}), True),
        (api_call("events", "PutTargets", {"rule": FORWARDER_RULE, "targets": []}), True),
        (api_call("events", "DisableRule", {"name": f"{FORWARDER_RULE}-tamper"}), True),
        (BLINDING_CALLS["StopLogging"], True),
        (BLINDING_CALLS["PutEventSelectors"], True),
        (api_call("events", "DisableRule", {"name": "nightly-report"}), False),
        (api_call("events", "EnableRule", {"name": FORWARDER_RULE}), False),
        (lambda_call("DeleteFunction20150331", "payments-api"), False),
        (HARMLESS_CALLS["StartLogging"], False),
    ],
    ids=lambda value: value if isinstance(value, bool) else "",
)
def test_forwarder_tamper_rule_alerts_on_calls_that_stop_forwarding(call: dict[str, Any], alert: bool) -> None:
    rule = forwarder_stack(AlarmTopicArn=ALARM_TOPIC).properties("ForwarderTamperAlertRule")
    assert matches(rule["EventPattern"], call) is alert


def test_forwarder_tamper_alert_reads_like_the_detectors() -> None:
    forwarder = forwarder_stack(AlarmTopicArn=ALARM_TOPIC)
    rule = forwarder.properties("ForwarderTamperAlertRule")
    assert (rule["EventBusName"], rule["State"]) == ("default", "ENABLED")
    (target,) = rule["Targets"]
    assert target["Arn"] == ALARM_TOPIC
    (detector_target,) = tamper_rule()["Targets"]
    ours, theirs = target["InputTransformer"], detector_target["InputTransformer"]
    assert ours["InputPathsMap"] == theirs["InputPathsMap"]
    # The same lines but the first, which says what this stack's calls can do.
    assert ours["InputTemplate"].splitlines()[1:] == theirs["InputTemplate"].splitlines()[1:]
    assert not forwarder_stack().exists("ForwarderTamperAlertRule")
    alarm = forwarder.properties("ForwarderTamperAlertDeliveryAlarm")
    assert alarm["Dimensions"] == [{"Name": "RuleName", "Value": f"{FORWARDER_RULE}-tamper"}]
