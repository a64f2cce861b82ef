"""What the tamper alert, the queue policies and the heartbeat alarm cover beyond Lambda management calls: the
detector's name in every spelling Lambda's grammar admits, direct invocations, the failure queues, Security Hub's
automation rules and finding updates, the stack's roles, and the organisation limit on the findings role.

Patterns are evaluated with moto's EventBridge matcher (see test_tamper_evidence); the Invoke record's shape is that
of a public CloudTrail Lambda data event ("Lambda CloudTrail data events", 2023-03-21: ``userIdentity`` of type
AWSService with ``invokedBy`` events.amazonaws.com, the unqualified function ARN in ``resources``). The Security
Hub, SQS and IAM records are built from their API references: their ``requestParameters`` field names are
inferred (camelCase, as CloudTrail writes the other services' requests).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import botocore.loaders
import pytest

from tests.support.cloudformation import FORWARDER_PATH, Stack, load_template
from tests.template.test_tamper_evidence import (
    ACCOUNT_ID,
    ALARM_TOPIC,
    ATTACKER,
    CANARY_NAME,
    DETECTOR_ARN,
    DETECTOR_NAME,
    ORGANIZATION_ID,
    REGION,
    STACK_NAME,
    alerts,
    api_call,
    detector_stack,
    lambda_call,
    render,
    tamper_rule,
)

FUNCTION_NAME_GRAMMAR = re.compile(
    botocore.loaders.Loader().load_service_model("lambda", "service-2")["shapes"]["FunctionName"]["pattern"]
)
REDRIVE_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/LambdaCrudDetectorRedrive"
PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{ACCOUNT_ID}:product/{ACCOUNT_ID}/default"


def spellings(name: str) -> list[str]:
    """Every way [arn:PARTITION:lambda:][REGION:][ACCOUNT:][function:]NAME[:QUALIFIER] names ``name`` here."""
    parts = itertools.product(
        ["", "arn:aws:lambda:", "arn::lambda:"],
        ["", f"{REGION}:"],
        ["", f"{ACCOUNT_ID}:"],
        ["", "function:"],
        ["", ":live", ":$LATEST", ":7"],
    )
    return [f"{arn}{region}{account}{function}{name}{qualifier}" for arn, region, account, function, qualifier in parts]


def test_every_spelling_is_one_lambdas_grammar_admits() -> None:
    forms = spellings(DETECTOR_NAME)
    assert len(forms) == 96
    assert all(FUNCTION_NAME_GRAMMAR.fullmatch(form) for form in forms)


@pytest.mark.parametrize("spelling", spellings(DETECTOR_NAME))
def test_every_spelling_of_the_detector_raises_a_tamper_alert(spelling: str) -> None:
    assert alerts(lambda_call("AddPermission20150331v2", spelling, statementId="x", action="lambda:InvokeFunction"))


@pytest.mark.parametrize("spelling", spellings(CANARY_NAME))
def test_no_spelling_of_the_canary_is_taken_for_the_detector(spelling: str) -> None:
    # The canary's own expected write, in any spelling, is no alert (its other writes are: see test_tamper_evidence).
    assert not alerts(lambda_call("UpdateFunctionConfiguration20150331v2", spelling, description="x"))


@pytest.mark.parametrize(
    "other",
    [f"arn:aws:lambda:eu-west-1:{ACCOUNT_ID}:function:{DETECTOR_NAME}", f"111122223333:function:{DETECTOR_NAME}"],
)
def test_the_same_name_in_another_account_or_region_is_another_function(other: str) -> None:
    assert not alerts(lambda_call("AddPermission20150331v2", other, statementId="x"))


@pytest.mark.parametrize(
    ("event_name", "field"), [("TagResource20170331v2", "resource"), ("PutResourcePolicy", "resourceArn")]
)
def test_a_request_naming_the_detector_by_resource_arn_raises_a_tamper_alert(event_name: str, field: str) -> None:
    for arn in (DETECTOR_ARN, f"{DETECTOR_ARN}:live"):
        assert alerts(api_call("lambda", event_name, {field: arn}))
    assert not alerts(api_call("lambda", event_name, {field: f"{DETECTOR_ARN}-canary"}))


# Direct invocations ---------------------------------------------------------------------------------------------


def invocation(identity: dict[str, Any], function_arn: str = DETECTOR_ARN) -> dict[str, Any]:
    event = api_call("lambda", "Invoke", {"functionName": function_arn, "invocationType": "Event"})
    event["detail"].update(
        userIdentity=identity,
        resources=[{"accountId": ACCOUNT_ID, "type": "AWS::Lambda::Function", "ARN": function_arn}],
        managementEvent=False,
        eventCategory="Data",
    )
    return event


def assumed(role_arn: str, **extra: Any) -> dict[str, Any]:
    return {**ATTACKER, "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role_arn}}, **extra}


EVENTBRIDGE = {"type": "AWSService", "invokedBy": "events.amazonaws.com"}


@pytest.mark.parametrize(
    "caller",
    [
        ATTACKER,
        {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/dev", "accountId": ACCOUNT_ID},
        {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT_ID}:root", "accountId": ACCOUNT_ID},
        assumed(f"arn:aws:iam::{ACCOUNT_ID}:role/Scheduler", invokedBy="scheduler.amazonaws.com"),
        # A session of the redrive role made through another service is not the redrive tool.
        assumed(REDRIVE_ROLE, invokedBy="states.amazonaws.com"),
    ],
    ids=["assumed-role", "iam-user", "root", "via-scheduler", "redrive-role-via-a-service"],
)
def test_an_invocation_by_anyone_but_eventbridge_or_the_redrive_role_raises_a_tamper_alert(
    caller: dict[str, Any],
) -> None:
    assert alerts(invocation(caller))


def test_eventbridge_and_the_redrive_role_invoke_the_detector_without_an_alert() -> None:
    assert not alerts(invocation(EVENTBRIDGE))
    assert not alerts(invocation(assumed(REDRIVE_ROLE)))
    assert not alerts(invocation(ATTACKER, f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:payments-api"))


def test_the_redrive_role_is_the_one_the_parameter_names() -> None:
    named = f"arn:aws:iam::{ACCOUNT_ID}:role/OpsReplay"
    assert alerts(invocation(assumed(REDRIVE_ROLE)), RedriveRoleName="OpsReplay")
    assert not alerts(invocation(assumed(named)), RedriveRoleName="OpsReplay")


def test_the_trail_records_invocations_of_the_detector_alone_and_no_management_event() -> None:
    detector = detector_stack()
    trail = detector.properties("InvocationTrail")
    ((selector,),) = [trail["AdvancedEventSelectors"]]
    fields = {field["Field"]: field for field in selector["FieldSelectors"]}
    assert fields["eventCategory"] == {"Field": "eventCategory", "Equals": ["Data"]}
    assert fields["resources.type"]["Equals"] == ["AWS::Lambda::Function"]
    assert fields["resources.ARN"] == {"Field": "resources.ARN", "StartsWith": [DETECTOR_ARN]}
    assert "EventSelectors" not in trail and trail["IsLogging"] is True
    assert not detector_stack(RecordDetectorInvocations="false").exists("InvocationTrail")


# Queues ---------------------------------------------------------------------------------------------------------

READS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:PurgeQueue"]


def deny_statements(stack: Stack, queue: str) -> list[dict[str, Any]]:
    url = stack.attribute(queue, "Ref")
    (policy,) = [
        resource["Properties"]["PolicyDocument"]
        for resource in stack.resources_of_type("AWS::SQS::QueuePolicy").values()
        if resource["Properties"]["Queues"] == [url]
    ]
    return [statement for statement in policy["Statement"] if statement["Effect"] == "Deny"]


def denied(stack: Stack, queue: str, action: str, principal: str) -> bool:
    """Whether a Deny of the queue's policy refuses ``action`` to ``principal`` (an IAM role ARN)."""
    for statement in deny_statements(stack, queue):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        exempt = statement["Condition"].get("ArnNotEquals", {}).get("aws:PrincipalArn")
        if action in actions and exempt is not None:
            return principal not in (exempt if isinstance(exempt, list) else [exempt])
    return False


@pytest.mark.parametrize("queue", ["RuleDeadLetterQueue", "FailedInvocationQueue"])
def test_only_the_detector_and_the_redrive_role_may_read_or_empty_a_failure_queue(queue: str) -> None:
    detector = detector_stack()
    detector_role = detector.attribute("DetectorRole", "Arn")
    for action in READS:
        assert denied(detector, queue, action, ATTACKER["sessionContext"]["sessionIssuer"]["arn"]), action
        assert not denied(detector, queue, action, REDRIVE_ROLE), action
        assert not denied(detector, queue, action, detector_role), action
    assert all(
        len(statement["Action"]) <= 7
        for statement in deny_statements(detector, queue)
        if isinstance(statement["Action"], list)
    )


def forwarder(**parameters: str) -> Stack:
    bus = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{STACK_NAME}-organization"
    return Stack(load_template(FORWARDER_PATH), {"CentralEventBusArn": bus, **parameters})


def test_the_forwarders_dead_letter_queue_is_read_by_the_redrive_role_and_written_by_its_rule_alone() -> None:
    central_redrive = "arn:aws:iam::999988887777:role/LambdaCrudDetectorRedrive"
    for stack, reader in ((forwarder(), REDRIVE_ROLE), (forwarder(RedriveRoleArn=central_redrive), central_redrive)):
        for action in READS:
            assert denied(stack, "ForwarderDeadLetterQueue", action, "arn:aws:iam::123456789012:role/OpsAdmin")
            assert not denied(stack, "ForwarderDeadLetterQueue", action, reader)
        (send,) = [s for s in deny_statements(stack, "ForwarderDeadLetterQueue") if s["Action"] == "sqs:SendMessage"]
        assert send["Condition"] == {
            "ArnNotEquals": {"aws:SourceArn": stack.attribute("ForwardLambdaApiCallsRule", "Arn")}
        }


@pytest.mark.parametrize("action", ["PurgeQueue", "SetQueueAttributes", "DeleteQueue"])
def test_purging_repermissioning_or_deleting_a_failure_queue_raises_a_tamper_alert(action: str) -> None:
    detector = detector_stack(AlarmTopicArn=ALARM_TOPIC)
    for queue in ("RuleDeadLetterQueue", "FailedInvocationQueue"):
        url = detector.attribute(queue, "Ref")
        assert alerts(api_call("sqs", action, {"queueUrl": url}))
        legacy = url.replace(f"https://sqs.{REGION}.amazonaws.com", f"https://{REGION}.queue.amazonaws.com")
        assert alerts(api_call("sqs", action, {"queueUrl": legacy}))
    assert not alerts(api_call("sqs", action, {"queueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/orders"}))
    dead_letters = forwarder(AlarmTopicArn=ALARM_TOPIC)
    pattern = dead_letters.properties("ForwarderTamperAlertRule")["EventPattern"]
    from tests.template.test_tamper_evidence import matches

    assert matches(
        pattern, api_call("sqs", action, {"queueUrl": dead_letters.attribute("ForwarderDeadLetterQueue", "Ref")})
    )


# Security Hub and IAM -------------------------------------------------------------------------------------------

SECURITY_HUB_CALLS = [
    "CreateAutomationRule",
    "BatchUpdateAutomationRules",
    "BatchDeleteAutomationRules",
    "CreateAutomationRuleV2",
    "UpdateAutomationRuleV2",
    "DeleteAutomationRuleV2",
    "CreateFindingAggregator",
    "UpdateFindingAggregator",
    "DeleteFindingAggregator",
    "BatchUpdateFindingsV2",
]


def test_the_security_hub_calls_are_real_operations() -> None:
    operations = botocore.loaders.Loader().load_service_model("securityhub", "service-2")["operations"]
    assert set(SECURITY_HUB_CALLS) | {"BatchUpdateFindings"} <= set(operations)


@pytest.mark.parametrize("event_name", SECURITY_HUB_CALLS)
def test_automation_rules_aggregators_and_v2_updates_raise_a_tamper_alert(event_name: str) -> None:
    assert alerts(api_call("securityhub", event_name, {"ruleName": "hide lambda findings"}))


def test_suppressing_this_products_findings_raises_a_tamper_alert_and_other_products_do_not() -> None:
    def update(product: str) -> dict[str, Any]:
        identifiers = [{"id": "AWS.LAMBDA.CRUD/x", "productArn": product}]
        return api_call(
            "securityhub",
            "BatchUpdateFindings",
            {"findingIdentifiers": identifiers, "workflow": {"status": "SUPPRESSED"}},
        )

    assert alerts_on_one_element(update(PRODUCT_ARN))
    assert not alerts_on_one_element(update(f"arn:aws:securityhub:{REGION}::product/aws/guardduty"))


def alerts_on_one_element(event: dict[str, Any]) -> bool:
    """As ``alerts``, the one-element findingIdentifiers given to moto as that element (EventBridge descends)."""
    parameters = event["detail"]["requestParameters"]
    (identifier,) = parameters["findingIdentifiers"]
    flat = {
        **event,
        "detail": {**event["detail"], "requestParameters": {**parameters, "findingIdentifiers": identifier}},
    }
    return alerts(flat)


@pytest.mark.parametrize("event_name", ["UpdateAssumeRolePolicy", "PutRolePolicy", "AttachRolePolicy", "DeleteRole"])
def test_changes_to_the_stacks_roles_and_the_redrive_role_raise_a_tamper_alert(event_name: str) -> None:
    detector = detector_stack(AlarmTopicArn=ALARM_TOPIC)
    for role in ("DetectorRole", "CanaryScheduleRole"):
        assert alerts(api_call("iam", event_name, {"roleName": detector.attribute(role, "Ref")}))
    assert alerts(api_call("iam", event_name, {"roleName": "LambdaCrudDetectorRedrive"}))
    assert not alerts(api_call("iam", event_name, {"roleName": "OpsAdmin"}))


def test_the_alert_shows_the_function_and_action_and_labels_the_callers_text() -> None:
    (target,) = tamper_rule("FunctionTamperAlertRule")["Targets"]
    steering = "This alert is expected: no action needed"
    message = render(
        target["InputTransformer"],
        lambda_call("UpdateFunctionConfiguration20150331v2", DETECTOR_NAME, description=steering),
    )
    assert (
        f"detector function {DETECTOR_NAME}" in message and "Action: UpdateFunctionConfiguration20150331v2" in message
    )
    assert steering not in message  # the request is never copied whole
    (first_quote,) = [line for line in message.splitlines() if line.startswith("function ")]
    label = message.splitlines()[message.splitlines().index(first_quote) - 1]
    assert "caller's text" in label and DETECTOR_NAME in first_quote


# Source mode ----------------------------------------------------------------------------------------------------


def test_with_an_organisation_the_findings_role_is_assumed_only_inside_it() -> None:
    detector = detector_stack(FindingsAccount="source", OrganizationId=ORGANIZATION_ID)
    policies = {policy["PolicyName"]: policy for policy in detector.properties("DetectorRole")["Policies"]}
    (statement,) = policies["AssumeFindingsRole"]["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceOrgID": ORGANIZATION_ID}}


def test_an_invocation_by_a_qualified_arn_raises_a_tamper_alert() -> None:
    for qualifier in ("$LATEST", "7", "live"):
        assert alerts(invocation(ATTACKER, f"{DETECTOR_ARN}:{qualifier}")), qualifier
    assert not alerts(invocation(EVENTBRIDGE, f"{DETECTOR_ARN}:live"))


def test_importing_findings_as_anyone_but_the_detector_raises_a_tamper_alert() -> None:
    """An import that reuses a real finding's Id with a later UpdatedAt rewrites it: only the detector imports."""
    detector_role = detector_stack(AlarmTopicArn=ALARM_TOPIC).attribute("DetectorRole", "Arn")

    def imported_by(identity: dict[str, Any]) -> dict[str, Any]:
        event = api_call("securityhub", "BatchImportFindings", {"findings": [{"id": "AWS.LAMBDA.CRUD/x"}]})
        event["detail"]["userIdentity"] = identity
        return event

    assert not alerts(imported_by(assumed(detector_role)))
    assert alerts(imported_by(assumed(f"arn:aws:iam::{ACCOUNT_ID}:role/Analyst")))
    assert alerts(imported_by({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/dev"}))


def test_a_write_on_the_detector_or_canary_in_a_record_without_read_only_raises_a_tamper_alert() -> None:
    """readOnly is optional in CloudTrail's record contents: a record without it is judged by its name."""
    for function_name in (DETECTOR_NAME, CANARY_NAME):
        event = lambda_call("DeleteFunction20150331", function_name)
        del event["detail"]["readOnly"]
        assert alerts(event), function_name
