"""template.yaml and deploy/member-forwarder.yaml: linted as sam and cfn-lint would, then translated offline.

The translated template is evaluated for several parameter sets (see ``tests.support.cloudformation.Stack``), and the
tests assert on what CloudFormation would create: permissions, dead-letter paths, retries, encryption,
alarms and the optional pieces that parameters switch on.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aws_lambda_powertools.shared.constants import LAMBDA_ADVANCED_LOGGING_LEVELS

from app import Detector, logger, metrics
from rule import RULE_ID as DETECTOR_RULE_ID
from rule import RuleSettings
from tests.conftest import FakeLambdaContext
from tests.support.cloudformation import (
    ACCOUNT_ID,
    FORWARDER_PATH,
    FUNCTION_ID,
    PROJECT_ROOT,
    REGION,
    RULE_ID,
    STACK_NAME,
    TEMPLATE_PATH,
    VENV_BIN,
    Stack,
    TemplateError,
    as_list,
    load_template,
    policy_statements,
    subprocess_environment,
    translate,
)

ORGANIZATION_ID = "o-a1b2c3d4e5"
ALARM_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:security-alerts"
FINDINGS_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:lambda-findings"
PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{ACCOUNT_ID}:product/{ACCOUNT_ID}/default"
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
FOURTEEN_DAYS = 1209600

PARAMETER_SETS: dict[str, dict[str, str]] = {
    "defaults": {},
    "organization": {"OrganizationId": ORGANIZATION_ID},
    "custom-bus-traced": {"EventBusName": "audit-events", "EnableTracing": "true", "CreateInsight": "true"},
    "account-regions": {"CentralEventBus": "true"},
    "source-findings": {
        "CentralEventBus": "true",
        "FindingsAccount": "source",
        "FindingsRoleName": "SecurityFindingsImporter",
    },
    "organization-source-findings": {"OrganizationId": ORGANIZATION_ID, "FindingsAccount": "source"},
    "everything": {
        "OrganizationId": ORGANIZATION_ID,
        "EnableTracing": "true",
        "AlarmTopicArn": ALARM_TOPIC,
        "EnableSecurityHub": "true",
        "CreateInsight": "true",
        "LogLevel": "WARNING",
        "LogRetentionInDays": "30",
        "ReservedConcurrency": "5",
        "TrustedLayerAccounts": "017000801446,444455556666",
        "BehaviourSeverities": "other-write=LOW",
        "AllowlistHidesPublic": "true",
        "NotifyMinimumSeverity": "MEDIUM",
        "AllowlistPatterns": "arn:aws:iam::*:role/DeployRole,*CiRole",
        "FindingsTopicArn": FINDINGS_TOPIC,
        "CanaryMissingHours": "6",
        "Architecture": "x86_64",
    },
    "no-canary-alarm-topic": {"EnableCanary": "false", "AlarmTopicArn": ALARM_TOPIC},
}
every_parameter_set = pytest.mark.parametrize("parameter_set", sorted(PARAMETER_SETS))


@functools.cache
def _translated(parameter_set: str) -> dict[str, Any]:
    return translate(load_template(TEMPLATE_PATH), PARAMETER_SETS[parameter_set])


def stack(parameter_set: str) -> Stack:
    return Stack(_translated(parameter_set), PARAMETER_SETS[parameter_set])


def run_tool(*command: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=subprocess_environment(), capture_output=True, text=True, timeout=300, check=False
    )


def rule_target(detector: Stack) -> dict[str, Any]:
    (target,) = detector.properties(RULE_ID)["Targets"]
    return target


def actions_of(statement: dict[str, Any]) -> set[str]:
    return set(as_list(statement.get("Action", [])))


def canary_function_name(detector: Stack) -> str:
    """The canary's name, or empty when the stack has no canary (what the detector is then told)."""
    return detector.attribute("CanaryFunction", "Ref") if detector.condition("CanaryEnabled") else ""


def canary_role_arn(detector: Stack) -> str:
    return detector.attribute("CanaryScheduleRole", "Arn") if detector.condition("CanaryEnabled") else ""


# Linting ----------------------------------------------------------------------------------------------------


def test_sam_validate_with_lint_passes() -> None:
    result = run_tool(str(VENV_BIN / "sam"), "validate", "--template-file", "template.yaml", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "nested", sorted(path.name for path in (PROJECT_ROOT / "stacks").glob("*.yaml")), ids=lambda name: name
)
def test_sam_validate_with_lint_passes_on_each_nested_template(nested: str) -> None:
    result = run_tool(str(VENV_BIN / "sam"), "validate", "--template-file", f"stacks/{nested}", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_the_optional_parts_are_nested_applications_with_their_conditions() -> None:
    applications = {
        logical_id: resource
        for logical_id, resource in load_template(TEMPLATE_PATH)["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Application"
    }
    assert {name: app["Properties"]["Location"] for name, app in applications.items()} == {
        "CentralBus": "stacks/central-bus.yaml",
        "Canary": "stacks/canary.yaml",
        "TamperEvidence": "stacks/tamper-alerts.yaml",
        "Notifications": "stacks/notifications.yaml",
        "SecurityHubExtras": "stacks/security-hub.yaml",
    }
    assert all("Condition" in app for app in applications.values())
    # By default (no topics, no organisation, no Security Hub extras) the canary and the invocation trail remain.
    assert set(stack("defaults").nested_stacks) == {"Canary", "TamperEvidence"}
    assert set(stack("everything").nested_stacks) == set(applications)


def test_cfn_lint_passes_on_member_forwarder() -> None:
    result = run_tool(str(VENV_BIN / "cfn-lint"), str(FORWARDER_PATH.relative_to(PROJECT_ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_linters_do_reject_a_broken_template(tmp_path: Path) -> None:
    # Proves the two checks above can fail: the same templates with one invalid value each.
    detector = TEMPLATE_PATH.read_text(encoding="utf-8").replace("MemorySize: 256", "MemorySize: 99999")
    (tmp_path / "template.yaml").write_text(detector, encoding="utf-8")
    shutil.copytree(PROJECT_ROOT / "functions", tmp_path / "functions")
    result = run_tool(str(VENV_BIN / "sam"), "validate", "--template-file", "template.yaml", "--lint", cwd=tmp_path)
    assert result.returncode != 0 and "E3034" in result.stdout + result.stderr  # number out of range

    forwarder = FORWARDER_PATH.read_text(encoding="utf-8").replace(
        "MessageRetentionPeriod: 1209600", "MessageRetentionPeriod: 1"
    )
    (tmp_path / "forwarder.yaml").write_text(forwarder, encoding="utf-8")
    result = run_tool(str(VENV_BIN / "cfn-lint"), "forwarder.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "E3034" in result.stdout + result.stderr


# Whole-stack properties -------------------------------------------------------------------------------------


@every_parameter_set
def test_every_reference_resolves(parameter_set: str) -> None:
    # Raises if anything created (or output) refers to a resource these parameters leave out.
    detector = stack(parameter_set)
    assert detector.resources and detector.outputs


def test_harness_evaluator_refuses_a_reference_it_cannot_evaluate() -> None:
    template = {
        "Resources": {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "t", "Value": {"Ref": "Topic"}}]}},
        }
    }
    with pytest.raises(TemplateError, match="Topic.Ref"):
        Stack(template).properties("Queue")
    with pytest.raises(TemplateError, match="Queue.Nonsense"):
        Stack(template).attribute("Queue", "Nonsense")


@every_parameter_set
def test_no_wildcard_actions_and_no_unconditional_wildcard_resource(parameter_set: str) -> None:
    detector = stack(parameter_set)
    tracing = detector.parameters["EnableTracing"] == "true"
    for owner, statement in policy_statements(detector):
        assert "NotAction" not in statement and "NotResource" not in statement, owner
        assert all("*" not in action for action in actions_of(statement)), (owner, statement)
        if statement["Effect"] == "Allow" and "*" in as_list(statement.get("Resource", [])):
            assert tracing and actions_of(statement) <= XRAY_ACTIONS, (owner, statement)


@every_parameter_set
def test_findings_can_only_be_imported_into_the_accounts_own_product(parameter_set: str) -> None:
    security_hub = [
        statement
        for _, statement in policy_statements(stack(parameter_set))
        if any(action.startswith("securityhub:") for action in actions_of(statement))
    ]
    assert security_hub == [{"Effect": "Allow", "Action": "securityhub:BatchImportFindings", "Resource": PRODUCT_ARN}]


@every_parameter_set
def test_function_role_grants_exactly_what_the_function_needs(parameter_set: str) -> None:
    detector = stack(parameter_set)
    role = detector.properties("DetectorRole")
    assert "ManagedPolicyArns" not in role  # AWSLambdaBasicExecutionRole would allow logs on every log group
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    granted = {
        (action, resource)
        for owner, statement in policy_statements(detector)
        if owner == "DetectorRole"
        for action in actions_of(statement)
        for resource in as_list(statement["Resource"])
    }
    expected = {
        ("logs:CreateLogStream", detector.attribute("DetectorLogGroup", "Arn")),
        ("logs:PutLogEvents", detector.attribute("DetectorLogGroup", "Arn")),
        ("securityhub:BatchImportFindings", PRODUCT_ARN),
        ("sqs:SendMessage", detector.attribute("FailedInvocationQueue", "Arn")),
    }
    if detector.parameters["FindingsAccount"] == "source":
        expected.add(("sts:AssumeRole", f"arn:aws:iam::*:role/{detector.parameters['FindingsRoleName']}"))
    if detector.parameters["EnableTracing"] == "true":
        expected |= {(action, "*") for action in XRAY_ACTIONS}
    assert granted == expected
    assert detector.properties(FUNCTION_ID)["Role"] == detector.attribute("DetectorRole", "Arn")


# The function -----------------------------------------------------------------------------------------------


@every_parameter_set
def test_function_configuration(parameter_set: str) -> None:
    detector = stack(parameter_set)
    function = detector.properties(FUNCTION_ID)
    parameters = detector.parameters
    assert function["Runtime"] == "python3.13"
    # arm64 unless chosen otherwise (make invoke chooses the local machine's).
    assert function["Architectures"] == ["arm64" if parameter_set != "everything" else "x86_64"]
    assert function["Handler"] == "app.lambda_handler"
    assert 128 <= function["MemorySize"] <= 1024
    assert 30 <= function["Timeout"] <= 900
    assert len(function["FunctionName"]) <= 64
    assert function["TracingConfig"] == {"Mode": "Active" if parameters["EnableTracing"] == "true" else "PassThrough"}


@every_parameter_set
def test_the_functions_environment_configures_the_handler_as_the_parameters_ask(parameter_set: str) -> None:
    """The detector, built with the environment CloudFormation gives it, works with the parameters' allowlist and
    grading settings, under the product's service name and namespace, on the real Security Hub endpoint. A variable renamed on one side only, or a stray value, fails here. (The log level is checked by
    test_lambda_and_powertools_filter_logs_at_the_same_level: Powertools configures a logger only once per
    process.)"""
    detector = stack(parameter_set)
    parameters = detector.parameters
    variables = detector.properties(FUNCTION_ID)["Environment"]["Variables"]
    with mock.patch.dict(os.environ, {key: str(value) for key, value in variables.items()}):
        handler = Detector(os.environ)
        endpoint = handler.deployment(FakeLambdaContext()).publisher._client.meta.endpoint_url
    assert handler.settings == RuleSettings.from_config(
        parameters["AllowlistPatterns"],
        trusted_layer_accounts=parameters["TrustedLayerAccounts"],
        behaviour_severities=parameters["BehaviourSeverities"],
        allowlist_hides_public=parameters["AllowlistHidesPublic"],
    )
    # Read when the module is imported, as the runtime imports it with these variables.
    assert variables["POWERTOOLS_SERVICE_NAME"] == logger.service == "lambda-crud-detector"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == metrics.namespace == "LambdaCrudDetector"
    assert endpoint == f"https://securityhub.{REGION}.amazonaws.com"
    assert handler.canary_function_name == (canary_function_name(detector) or None)
    assert handler.canary_role_arn == (canary_role_arn(detector) or None)
    assert handler.findings_settings.mode == parameters["FindingsAccount"]


@pytest.mark.parametrize("reserved", ["1", "2", "1000"])
def test_a_reserved_concurrency_is_reserved_as_given(reserved: str) -> None:
    parameters = {"ReservedConcurrency": reserved}
    function = Stack(translate(load_template(TEMPLATE_PATH), parameters), parameters).properties(FUNCTION_ID)
    assert int(function["ReservedConcurrentExecutions"]) == int(reserved)


def test_reserved_concurrency_0_reserves_nothing_rather_than_throttling_everything() -> None:
    # A reservation of 0 would throttle every invocation; 0 must leave the property out altogether.
    parameters = {"ReservedConcurrency": "0"}
    function = Stack(translate(load_template(TEMPLATE_PATH), parameters), parameters).properties(FUNCTION_ID)
    assert "ReservedConcurrentExecutions" not in function


def test_by_default_no_concurrency_is_reserved_so_a_new_account_can_create_the_function() -> None:
    # Lambda keeps 100 executions unreserved; an account with a quota of 10 cannot reserve any.
    declared = load_template(TEMPLATE_PATH)["Parameters"]["ReservedConcurrency"]
    assert declared["MinValue"] == 0 and str(declared["Default"]) == "0"
    assert "ReservedConcurrentExecutions" not in stack("defaults").properties(FUNCTION_ID)


@every_parameter_set
def test_function_logs_to_its_own_log_group_with_retention(parameter_set: str) -> None:
    detector = stack(parameter_set)
    function = detector.properties(FUNCTION_ID)
    log_group = detector.properties("DetectorLogGroup")
    assert log_group["LogGroupName"] == f"/aws/lambda/{function['FunctionName']}"
    assert log_group["RetentionInDays"] == detector.parameters["LogRetentionInDays"]
    assert function["LoggingConfig"]["LogGroup"] == log_group["LogGroupName"]
    assert function["LoggingConfig"]["LogFormat"] == "JSON"


@pytest.mark.parametrize("level", load_template(TEMPLATE_PATH)["Parameters"]["LogLevel"]["AllowedValues"])
def test_lambda_and_powertools_filter_logs_at_the_same_level(level: str) -> None:
    function = Stack(_translated("defaults"), {"LogLevel": level}).properties(FUNCTION_ID)
    lambda_level = function["LoggingConfig"]["ApplicationLogLevel"]
    powertools_level = function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"]
    assert powertools_level == level
    # How Powertools reads AWS_LAMBDA_LOG_LEVEL, which Lambda sets from ApplicationLogLevel.
    assert LAMBDA_ADVANCED_LOGGING_LEVELS[lambda_level] == level


# Delivery: retries and dead letters -------------------------------------------------------------------------


def readers_only(detector: Stack, queue: str) -> dict[str, Any]:
    """The statement that lets only the detector's role and the redrive role read, hide, delete or purge."""
    return {
        "Sid": "OnlyTheDetectorAndTheRedriveRoleRead",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:PurgeQueue"],
        "Resource": detector.attribute(queue, "Arn"),
        "Condition": {
            "ArnNotEquals": {
                "aws:PrincipalArn": [
                    detector.attribute("DetectorRole", "Arn"),
                    f"arn:aws:iam::{ACCOUNT_ID}:role/{detector.parameters['RedriveRoleName']}",
                ]
            }
        },
    }


@every_parameter_set
def test_rule_delivers_to_the_function_with_explicit_retries_and_a_dead_letter_queue(parameter_set: str) -> None:
    detector = stack(parameter_set)
    target = rule_target(detector)
    assert target["Arn"] == detector.attribute(FUNCTION_ID, "Arn")
    assert re.fullmatch(r"[.\-_A-Za-z0-9]{1,64}", target["Id"])
    assert set(target["RetryPolicy"]) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
    assert 0 <= target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert target["DeadLetterConfig"] == {"Arn": detector.attribute("RuleDeadLetterQueue", "Arn")}
    # EventBridge may write to that queue only on behalf of this rule.
    queue_policies = [policy["Properties"] for policy in detector.resources_of_type("AWS::SQS::QueuePolicy").values()]
    (queue_policy,) = [
        policy for policy in queue_policies if policy["Queues"] == [detector.attribute("RuleDeadLetterQueue", "Ref")]
    ]
    assert queue_policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "AllowDetectorRuleOnly",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": detector.attribute("RuleDeadLetterQueue", "Arn"),
            "Condition": {"ArnEquals": {"aws:SourceArn": detector.attribute(RULE_ID, "Arn")}},
        },
        {
            "Sid": "DenyEveryoneElse",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": detector.attribute("RuleDeadLetterQueue", "Arn"),
            "Condition": {"ArnNotEquals": {"aws:SourceArn": detector.attribute(RULE_ID, "Arn")}},
        },
        readers_only(detector, "RuleDeadLetterQueue"),
    ]


@every_parameter_set
def test_only_lambda_writes_the_failed_invocation_queue_with_the_functions_role(parameter_set: str) -> None:
    """make redrive replays this queue to the function, so a message written there by anyone else could pass for a
    CloudTrail record. Lambda writes failure records with the function's execution role, which alone may send."""
    detector = stack(parameter_set)
    queue = detector.attribute("FailedInvocationQueue", "Ref")
    (policy,) = [
        resource["Properties"]
        for resource in detector.resources_of_type("AWS::SQS::QueuePolicy").values()
        if resource["Properties"]["Queues"] == [queue]
    ]
    statement, *readers = policy["PolicyDocument"]["Statement"]
    writer = detector.properties(FUNCTION_ID)["Role"]
    assert writer == detector.attribute("DetectorRole", "Arn")
    assert readers == [
        readers_only(detector, "FailedInvocationQueue"),
    ]
    assert statement == {
        "Sid": "DenyAllButTheDetector",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:SendMessage",
        "Resource": detector.attribute("FailedInvocationQueue", "Arn"),
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": writer}},
    }


@every_parameter_set
def test_failed_invocations_are_retried_twice_then_kept(parameter_set: str) -> None:
    detector = stack(parameter_set)
    (invoke_config,) = detector.resources_of_type("AWS::Lambda::EventInvokeConfig").values()
    properties = invoke_config["Properties"]
    assert properties["FunctionName"] == detector.attribute(FUNCTION_ID, "Ref")
    assert properties["Qualifier"] == "$LATEST"  # EventBridge invokes the unqualified function
    assert properties["MaximumRetryAttempts"] == 2
    assert 60 <= properties["MaximumEventAgeInSeconds"] <= 21600
    assert properties["DestinationConfig"] == {
        "OnFailure": {"Destination": detector.attribute("FailedInvocationQueue", "Arn")}
    }


@every_parameter_set
def test_queues_are_encrypted_and_keep_messages_14_days(parameter_set: str) -> None:
    queues = stack(parameter_set).resources_of_type("AWS::SQS::Queue")
    assert set(queues) == {"RuleDeadLetterQueue", "FailedInvocationQueue"}
    for queue in queues.values():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue["Properties"]
        assert queue["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS


# What deleting the stack keeps -----------------------------------------------------------------------------

RETAINED_TYPES = {"AWS::SQS::Queue", "AWS::SecurityHub::Hub"}
"""Resources that hold what must survive the stack: events not yet judged, and the account's Security Hub."""


def retention(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    return resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")


def test_queues_and_hub_outlive_the_stack() -> None:
    # "everything" creates every optional resource, the hub included.
    detector = stack("everything")
    kept = {
        logical_id: retention(resource)
        for logical_id, resource in detector.resources.items()
        if resource["Type"] in RETAINED_TYPES
    }
    assert kept == {
        "RuleDeadLetterQueue": ("Retain", "Retain"),
        "FailedInvocationQueue": ("Retain", "Retain"),
        "SecurityHub": ("Retain", "Retain"),
    }


def test_forwarder_dead_letter_queue_outlives_its_stack() -> None:
    resources = load_template(FORWARDER_PATH)["Resources"]
    queues = {
        logical_id: retention(resource)
        for logical_id, resource in resources.items()
        if resource["Type"] in RETAINED_TYPES
    }
    assert queues == {"ForwarderDeadLetterQueue": ("Retain", "Retain")}


# Event bus --------------------------------------------------------------------------------------------------


def test_without_a_central_bus_the_rule_watches_the_named_bus_and_no_bus_is_created() -> None:
    for parameter_set, bus in (("defaults", "default"), ("custom-bus-traced", "audit-events")):
        detector = stack(parameter_set)
        assert detector.properties(RULE_ID)["EventBusName"] == bus
        assert not detector.resources_of_type("AWS::Events::EventBus")
        assert not detector.resources_of_type("AWS::Events::EventBusPolicy")
        assert not {"CentralEventBusName", "CentralEventBusArn"} & set(detector.outputs)


def bus_statements(detector: Stack) -> dict[str, dict[str, Any]]:
    """The central bus's policy statements, by statement ID, each checked to be on that bus."""
    (bus_id,) = detector.resources_of_type("AWS::Events::EventBus")
    statements = {}
    for policy in detector.resources_of_type("AWS::Events::EventBusPolicy").values():
        assert policy["Properties"]["EventBusName"] == detector.attribute(bus_id, "Name")
        statements[policy["Properties"]["StatementId"]] = policy["Properties"]["Statement"]
    return statements


@pytest.mark.parametrize(
    "parameter_set",
    ["account-regions", "source-findings", "organization", "everything", "organization-source-findings"],
)
def test_a_central_bus_admits_this_accounts_other_regions_and_the_organization_when_there_is_one(
    parameter_set: str,
) -> None:
    detector = stack(parameter_set)
    (bus_id,) = detector.resources_of_type("AWS::Events::EventBus")
    bus_name = detector.attribute(bus_id, "Name")
    bus_arn = detector.attribute(bus_id, "Arn")
    assert detector.properties(RULE_ID)["EventBusName"] == bus_name != "default"
    expected = {
        # The forwarders in this account's other Regions put events with a role of this account.
        "AllowOwnAccountPutEvents": {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "events:PutEvents",
            "Resource": bus_arn,
        }
    }
    if detector.parameters["OrganizationId"]:
        expected["AllowOrganizationPutEvents"] = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "events:PutEvents",
            "Resource": bus_arn,
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORGANIZATION_ID}},
        }
    assert bus_statements(detector) == expected
    assert detector.outputs["CentralEventBusName"] == bus_name
    assert detector.outputs["CentralEventBusArn"] == bus_arn


# Alarms -----------------------------------------------------------------------------------------------------


def _watched_metrics(detector: Stack) -> dict[tuple[str, str, str], tuple[str, dict[str, Any]]]:
    """Every metric an alarm watches, by (namespace, metric, what it watches: the rule name, else the only
    dimension's value), with the alarm's logical ID and the metric's dimensions. A metric watched twice fails."""
    found: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    for logical_id, alarm in detector.resources_of_type("AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m]
        for metric in metrics or [properties]:
            dimensions = {dimension["Name"]: dimension["Value"] for dimension in metric["Dimensions"]}
            subject = dimensions.get("RuleName") or next(iter(dimensions.values()))
            key = (metric["Namespace"], metric["MetricName"], subject)
            assert key not in found, f"{key} is watched by {found[key][0]} and {logical_id}"
            found[key] = (logical_id, dimensions)
    return found


@every_parameter_set
def test_alarms_watch_the_function_the_rule_and_both_queues(parameter_set: str) -> None:
    detector = stack(parameter_set)
    function_name = detector.attribute(FUNCTION_ID, "Ref")
    rule_bus = detector.properties(RULE_ID)["EventBusName"]
    rule_name = f"{STACK_NAME}-lambda-calls"
    rule_dimensions = {"RuleName": rule_name}
    if rule_bus != "default":
        rule_dimensions = {"EventBusName": rule_bus, "RuleName": rule_name}
    dead_letters = detector.attribute("RuleDeadLetterQueue", "QueueName")
    failed = detector.attribute("FailedInvocationQueue", "QueueName")
    function = {"FunctionName": function_name}
    # Every signal, and the alarm that adds it up with the others of its kind (docs/operations.md).
    expected = {
        ("AWS/Events", "InvocationsFailedToBeSentToDlq", rule_name): ("EventsLostAlarm", rule_dimensions),
        ("AWS/Lambda", "AsyncEventsDropped", function_name): ("EventsLostAlarm", function),
        ("AWS/Lambda", "DestinationDeliveryFailures", function_name): ("EventsLostAlarm", function),
        ("AWS/Events", "FailedInvocations", rule_name): ("EventsWaitingAlarm", rule_dimensions),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dead_letters): (
            "EventsWaitingAlarm",
            {"QueueName": dead_letters},
        ),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", failed): ("EventsWaitingAlarm", {"QueueName": failed}),
        ("AWS/Lambda", "Errors", function_name): ("DetectorFailingAlarm", function),
        ("AWS/Lambda", "Throttles", function_name): ("DetectorFailingAlarm", function),
    }
    topic = detector.parameters["AlarmTopicArn"]
    if topic:
        for rule in ("tamper-alert", "tamper-fn", "tamper-hub"):
            tamper_rule = f"{STACK_NAME}-{rule}"
            key = ("AWS/Events", "FailedInvocations", tamper_rule)
            expected[key] = ("TamperAlertDeliveryAlarm", {"RuleName": tamper_rule})
    if detector.parameters["FindingsTopicArn"]:
        notification_rule = f"{STACK_NAME}-new-findings"
        key = ("AWS/Events", "FailedInvocations", notification_rule)
        expected[key] = ("FindingsNotificationDeliveryAlarm", {"RuleName": notification_rule})
    if detector.condition("CanaryEnabled"):
        expected[("AWS/Events", "Invocations", rule_name)] = ("CanaryHeartbeatAlarm", rule_dimensions)
    service = {"service": "lambda-crud-detector"}
    expected[("LambdaCrudDetector", "FailedCallsFolded", "lambda-crud-detector")] = ("DetectorAttackedAlarm", service)
    expected[("LambdaCrudDetector", "ImplausibleEventTime", "lambda-crud-detector")] = (
        "DetectorAttackedAlarm",
        service,
    )
    assert _watched_metrics(detector) == expected

    alarms = detector.resources_of_type("AWS::CloudWatch::Alarm")
    for logical_id, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties.get("AlarmActions") == ([topic] if topic else None), logical_id
        if logical_id == "CanaryHeartbeatAlarm":
            continue  # a missing heartbeat is the failure it exists to report; see the canary tests
        # Each of these metrics is only reported when something fails or waits: no data means all is well.
        assert properties["ComparisonOperator"] == "GreaterThanThreshold" and properties["Threshold"] == 0
        assert properties["TreatMissingData"] == "notBreaching"
        assert properties["EvaluationPeriods"] == 1
        if "Metrics" in properties:
            # One expression returns the alarm's data, adding up every metric with no data counted as none.
            (returned,) = [metric for metric in properties["Metrics"] if metric.get("ReturnData", True)]
            for metric in properties["Metrics"]:
                if metric is not returned:
                    assert f"FILL({metric['Id']}, 0)" in returned["Expression"], (logical_id, metric["Id"])
    assert detector.outputs["EventRuleName"] == rule_name


def test_a_few_folded_calls_are_routine_and_a_flood_is_not() -> None:
    """The attacked alarm counts one for any forged time, and one for more than 100 folded calls in 5 minutes."""
    metrics = stack("defaults").properties("DetectorAttackedAlarm")["Metrics"]
    (expression,) = [metric["Expression"] for metric in metrics if "Expression" in metric]
    assert expression == "FILL(forged, 0) + IF(FILL(folded, 0) > 100, 1, 0)"


# Security Hub extras ----------------------------------------------------------------------------------------


def test_security_hub_resources_only_when_asked_for() -> None:
    assert not stack("defaults").resources_of_type("AWS::SecurityHub::Hub")
    assert not stack("defaults").resources_of_type("AWS::SecurityHub::Insight")
    insight_only = stack("custom-bus-traced")
    assert not insight_only.resources_of_type("AWS::SecurityHub::Hub")
    both = stack("everything")
    assert set(both.resources_of_type("AWS::SecurityHub::Hub")) == {"SecurityHub"}
    assert both.properties("SecurityHub")["EnableDefaultStandards"] is False


@pytest.mark.parametrize("parameter_set", ["custom-bus-traced", "everything"])
def test_insight_groups_this_detectors_findings_and_waits_for_a_hub_created_alongside(parameter_set: str) -> None:
    detector = stack(parameter_set)
    ((insight_id, insight),) = detector.resources_of_type("AWS::SecurityHub::Insight").items()
    filters = insight["Properties"]["Filters"]
    assert filters["GeneratorId"] == [{"Comparison": "EQUALS", "Value": DETECTOR_RULE_ID}]
    assert filters["ProductArn"] == [{"Comparison": "EQUALS", "Value": PRODUCT_ARN}]
    assert filters["RecordState"] == [{"Comparison": "EQUALS", "Value": "ACTIVE"}]
    assert insight["Properties"]["GroupByAttribute"] == "ResourceId"
    # The insight depends on a handle whose metadata refers to the hub only when the stack creates one.
    extras = detector.nested("SecurityHubExtras")
    handle = extras.template["Resources"][insight["DependsOn"]]
    assert extras.resolve(handle["Metadata"]) == {
        "Hub": detector.attribute("SecurityHub", "Ref") if detector.parameters["EnableSecurityHub"] == "true" else ""
    }


# Outputs ----------------------------------------------------------------------------------------------------


@every_parameter_set
def test_outputs_name_the_function_rule_and_queues(parameter_set: str) -> None:
    detector = stack(parameter_set)
    outputs = detector.outputs
    assert outputs["DetectorFunctionArn"] == detector.attribute(FUNCTION_ID, "Arn")
    assert outputs["EventRuleArn"] == detector.attribute(RULE_ID, "Arn")
    assert outputs["EventRuleName"] == f"{STACK_NAME}-lambda-calls"
    for queue in ("RuleDeadLetterQueue", "FailedInvocationQueue"):
        assert outputs[f"{queue}Url"] == detector.attribute(queue, "Ref")
        assert outputs[f"{queue}Arn"] == detector.attribute(queue, "Arn")
