"""make redrive (lambda_crud_detector/redrive.py): events kept in the failure queues go back to the function, and a message is deleted
only when the function judged its event without an error.

The first part runs the pieces on moto's SQS and CloudFormation in process, with a stand-in for Lambda's Invoke
that answers as Lambda documents it (a function error is HTTP 200 with FunctionError set). The second runs
`make redrive` as a user does, against moto's SQS server and the built function under the Lambda runtime
interface emulator, which answers boto3's Invoke at its endpoint; Security Hub (the same moto server) then shows
which events the function really judged. The emulator answers a function error with its error record but without
Lambda's FunctionError header, so there the error record is what keeps the message; the stand-in covers the header.
"""

from __future__ import annotations

import copy
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws

from lambda_crud_detector import redrive
from lambda_crud_detector.redrive import (
    DEAD_LETTERS,
    FAILED_INVOCATIONS,
    FORWARDER_DEAD_LETTERS,
    MalformedMessage,
    Origin,
    Outcome,
    Queue,
    Redrive,
)
from tests.conftest import stored_findings
from tests.integration.test_end_to_end import build_dir  # noqa: F401 (a fixture: the built function, shared with that module)
from tests.support.cases import INVALID, load_cases
from tests.support.cloudformation import FORWARDER_PATH, load_template
from tests.support.local_runtime import LocalFunction, LocalSecurityHub, detector_function, local_security_hub
from tests.user_commands import run_make

REGION = "us-east-1"
CASES = load_cases()
FINDING_EVENT = next(case.event for case in CASES if case.expected_verdict == "finding")
INVALID_EVENT = next(case.event for case in CASES if case.expected_verdict == INVALID)
NOT_JSON = "this is not JSON {"
NO_REQUEST_PAYLOAD = json.dumps({"version": "1.0", "requestContext": {"condition": "RetriesExhausted"}})


def fresh_event() -> dict[str, Any]:
    """A sample event that must become a finding, with an eventID of its own."""
    event = copy.deepcopy(FINDING_EVENT)
    event["detail"]["eventID"] = str(uuid.uuid4())
    return event


def destination_record(event: Any) -> str:
    """What Lambda's on-failure destination sends to the failed-invocation queue."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:lambda-crud-detector:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "Security Hub rejected 1 finding", "errorType": "PublishError"},
        }
    )


def bodies(sqs: Any, queue_url: str) -> list[str]:
    """Every message visible in the queue now (each then hidden for a minute)."""
    found: list[str] = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
    ).get("Messages"):
        found += [message["Body"] for message in messages]
    return found


# A stand-in for Lambda's Invoke ------------------------------------------------------------------------------


class StandInLambda:
    """Answers Invoke with what ``answer`` returns for the event: (FunctionError or None, payload)."""

    def __init__(self, answer: Callable[[Any], tuple[str | None, Any]]) -> None:
        self.answer = answer
        self.events: list[Any] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        assert InvocationType == "RequestResponse"
        event = json.loads(Payload)
        with self._lock:
            self.events.append(event)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            function_error, answer = self.answer(event)
        finally:
            with self._lock:
                self.in_flight -= 1
        raw = json.dumps(answer).encode()
        response = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": StreamingBody(io.BytesIO(raw), len(raw)),
        }
        if function_error is not None:
            response["FunctionError"] = function_error
        return response


def judged(event: Any) -> tuple[str | None, Any]:
    return None, {"verdict": "finding", "findingId": f"AWS.LAMBDA.CRUD/x/y/{event['detail']['eventID']}"}


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def make_queue(sqs: Any, kind: str, *message_bodies: str) -> Queue:
    url = sqs.create_queue(QueueName=f"{kind}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    for body in message_bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return Queue(kind, url)


def drain_with(
    sqs: Any, queue: Queue, lambda_client: Any, concurrency: int = 4, dry_run: bool = False
) -> list[Outcome]:
    handler = Redrive(sqs, lambda_client, "lambda-crud-detector", dry_run)
    return redrive.drain(sqs, queue, handler.handle, concurrency, on_outcome=lambda outcome: None)


# Reading messages --------------------------------------------------------------------------------------------


def test_the_event_of_a_destination_record_is_its_request_payload() -> None:
    event = fresh_event()
    assert json.loads(redrive.event_payload(FAILED_INVOCATIONS, destination_record(event))) == event


def test_a_dead_letter_is_sent_exactly_as_it_was_kept() -> None:
    body = json.dumps(fresh_event(), indent=1)
    assert redrive.event_payload(DEAD_LETTERS, body) == body.encode()


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        (FAILED_INVOCATIONS, NOT_JSON, "not JSON"),
        (DEAD_LETTERS, NOT_JSON, "not JSON"),
        (FAILED_INVOCATIONS, NO_REQUEST_PAYLOAD, "no requestPayload"),
        (FAILED_INVOCATIONS, json.dumps(["requestPayload"]), "no requestPayload"),
    ],
)
def test_a_body_that_holds_no_event_is_malformed(kind: str, body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        redrive.event_payload(kind, body)


# Deleting only what the function judged ----------------------------------------------------------------------


def test_judged_events_are_deleted_from_both_queues(sqs: Any) -> None:
    events = [fresh_event() for _ in range(3)]
    failed = make_queue(sqs, FAILED_INVOCATIONS, *[destination_record(event) for event in events[:2]])
    dead = make_queue(sqs, DEAD_LETTERS, json.dumps(events[2]))
    function = StandInLambda(judged)
    outcomes = drain_with(sqs, failed, function) + drain_with(sqs, dead, function)
    assert [outcome.kept for outcome in outcomes] == [False, False, False]
    assert sorted(event["detail"]["eventID"] for event in function.events) == sorted(
        event["detail"]["eventID"] for event in events
    )
    assert bodies(sqs, failed.url) == bodies(sqs, dead.url) == []


@pytest.mark.parametrize(
    "answer",
    [
        # A timeout: the runtime's error record.
        ("Unhandled", {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 120.00 seconds"}),
        # The header alone is enough, whatever the payload looks like.
        ("Unhandled", {"verdict": "finding"}),
        # An error record alone is enough too.
        (None, {"errorType": "InvalidEventError", "errorMessage": "event is not an EventBridge envelope"}),
    ],
    ids=["timeout", "header-only", "payload-only"],
)
def test_a_function_error_keeps_the_message_and_reports_the_error(sqs: Any, answer: tuple[str | None, Any]) -> None:
    body = destination_record(fresh_event())
    queue = make_queue(sqs, FAILED_INVOCATIONS, body)
    (outcome,) = drain_with(sqs, queue, StandInLambda(lambda event: answer))
    assert outcome.kept and not outcome.deleted
    assert outcome.error is not None and outcome.error.startswith("function error")
    if "errorMessage" in answer[1]:
        assert answer[1]["errorMessage"] in outcome.error
    assert bodies(sqs, queue.url) == [body]  # visible again at once, unchanged


def test_a_refused_invocation_keeps_the_message(sqs: Any) -> None:
    def throttled(event: Any) -> tuple[str | None, Any]:
        raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")

    body = json.dumps(fresh_event())
    queue = make_queue(sqs, DEAD_LETTERS, body)
    (outcome,) = drain_with(sqs, queue, StandInLambda(throttled))
    assert outcome.kept and "TooManyRequestsException" in (outcome.error or "")
    assert bodies(sqs, queue.url) == [body]


def test_a_malformed_message_is_kept_and_never_sent(sqs: Any) -> None:
    queue = make_queue(sqs, FAILED_INVOCATIONS, NOT_JSON, NO_REQUEST_PAYLOAD)
    function = StandInLambda(judged)
    outcomes = drain_with(sqs, queue, function)
    assert all(outcome.kept and (outcome.error or "").startswith("malformed") for outcome in outcomes)
    assert function.events == []
    assert sorted(bodies(sqs, queue.url)) == sorted([NOT_JSON, NO_REQUEST_PAYLOAD])


def test_a_dry_run_sends_nothing_and_deletes_nothing(sqs: Any) -> None:
    sent = [destination_record(fresh_event()), NOT_JSON]
    queue = make_queue(sqs, FAILED_INVOCATIONS, *sent)
    function = StandInLambda(judged)
    outcomes = drain_with(sqs, queue, function, dry_run=True)
    assert sorted(outcome.kept for outcome in outcomes) == [False, True]  # only the malformed one would be kept
    assert function.events == []
    assert sorted(bodies(sqs, queue.url)) == sorted(sent)


def test_each_message_is_handled_once_and_at_most_concurrency_at_a_time(sqs: Any) -> None:
    concurrency = 3
    events = [fresh_event() for _ in range(4 * concurrency)]
    queue = make_queue(sqs, DEAD_LETTERS, *[json.dumps(event) for event in events])
    # Each invocation waits until `concurrency` of them are running: a run that sent them one at a time would break
    # the barrier, and one that sent more at once would show in most_in_flight.
    together = threading.Barrier(concurrency, timeout=60)

    def judged_together(event: Any) -> tuple[str | None, Any]:
        together.wait()
        return judged(event)

    function = StandInLambda(judged_together)
    outcomes = drain_with(sqs, queue, function, concurrency=concurrency)
    assert function.most_in_flight == concurrency
    assert len(outcomes) == len(function.events) == len(events)
    assert sorted(event["detail"]["eventID"] for event in function.events) == sorted(
        event["detail"]["eventID"] for event in events
    )
    assert bodies(sqs, queue.url) == []


# The report --------------------------------------------------------------------------------------------------


def test_the_report_escapes_what_an_event_could_do_to_a_terminal() -> None:
    error = "function error InvalidEventError: bad \x1b]0;owned\x07 name \u202eexe.txt"
    line = Outcome(DEAD_LETTERS, "id-1", "CreateFunction e-1", error=error).line()
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b]0;owned\\x07" in line and "\\u202e" in line
    assert line.startswith("KEPT")


def test_long_queues_show_progress_on_stderr() -> None:
    stream = io.StringIO()
    progress = redrive.Progress(DEAD_LETTERS, expected=60, stream=stream, every=25)
    for number in range(60):
        progress.add(Outcome(DEAD_LETTERS, f"id-{number}", "-", error="kept" if number % 10 == 0 else None))
    assert stream.getvalue().splitlines() == [
        "redrive: dead-letters: 25 of about 60 messages handled, 3 kept",
        "redrive: dead-letters: 50 of about 60 messages handled, 5 kept",
    ]


# The forwarder's dead-letter queue ---------------------------------------------------------------------------

# moto's own account: the queues the tests create belong to it, as a member account's queue belongs to that account.
MEMBER_ACCOUNT = "123456789012"
FORWARDER_RULE_ARN = f"arn:aws:events:{REGION}:{MEMBER_ACCOUNT}:rule/lambda-crud-detector-forwarder"


def member_event(account: str = MEMBER_ACCOUNT) -> dict[str, Any]:
    """A Lambda call recorded in the member account and Region, as the forwarding rule matched it."""
    event = fresh_event()
    event.update(account=account, region=REGION)
    event["detail"].update(recipientAccountId=account, awsRegion=REGION)
    return event


def forwarder_dead_letter(sqs: Any, queue: Queue, event: Any, rule_arn: str | None = FORWARDER_RULE_ARN) -> str:
    """Sends ``event`` as EventBridge's dead-letter queue receives it: the event itself, and why it was not delivered
    in the message attributes (EventBridge User Guide, "Using dead-letter queues to process undelivered events")."""
    attributes = {
        "ERROR_CODE": "NO_PERMISSIONS",
        "ERROR_MESSAGE": "Not authorized to perform events:PutEvents on the central event bus",
        "TARGET_ARN": f"arn:aws:events:{REGION}:210987654321:event-bus/lambda-crud-detector",
    }
    if rule_arn is not None:
        attributes["RULE_ARN"] = rule_arn
    body = json.dumps(event)
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=body,
        MessageAttributes={name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    )
    return body


def forwarder_queue(sqs: Any) -> Queue:
    """An empty forwarder's dead-letter queue, with the origin the command reads from its ARN."""
    queue = make_queue(sqs, FORWARDER_DEAD_LETTERS)
    return redrive.with_origin(sqs, queue)


def test_the_queue_arn_gives_the_account_and_region_to_check_against(sqs: Any) -> None:
    queue = forwarder_queue(sqs)
    assert queue.origin == Origin(partition="aws", region=REGION, account=MEMBER_ACCOUNT)
    assert queue.origin.rule_arn == FORWARDER_RULE_ARN


def test_the_rule_checked_is_the_forwarding_rule_the_template_names() -> None:
    rule = load_template(FORWARDER_PATH)["Resources"]["ForwardLambdaApiCallsRule"]
    assert rule["Properties"]["Name"] == redrive.FORWARDER_RULE_NAME
    assert "EventBusName" not in rule["Properties"]  # the default bus: its rules' ARNs name no bus


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/111122223333/fwd-dlq", "eu-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/111122223333/fwd-dlq", "cn-north-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/111122223333/fwd-dlq", "ap-southeast-2"),
        ("https://queue.amazonaws.com/111122223333/fwd-dlq", "us-east-1"),
        ("http://127.0.0.1:5000/111122223333/fwd-dlq", None),
    ],
)
def test_a_queue_is_read_in_the_region_its_url_names(url: str, region: str | None) -> None:
    assert redrive.queue_region(url) == region


def test_a_real_looking_forwarder_dead_letter_is_replayed_and_deleted(sqs: Any) -> None:
    queue = forwarder_queue(sqs)
    event = member_event()
    forwarder_dead_letter(sqs, queue, event)
    function = StandInLambda(judged)
    (outcome,) = drain_with(sqs, queue, function)
    assert outcome.deleted and not outcome.kept, outcome
    assert function.events == [event]  # sent unchanged
    assert bodies(sqs, queue.url) == []


def forged(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    event = member_event()
    change(event)
    return event


FORGERIES = {
    "other-account": (
        forged(lambda e: (e.update(account="999999999999"), e["detail"].update(recipientAccountId="999999999999"))),
        ["account is '999999999999', not '123456789012'", "detail.recipientAccountId is '999999999999'"],
    ),
    "custom-source": (forged(lambda e: e.update(source="aws.lambda.custom")), ["source is 'aws.lambda.custom'"]),
    "other-region": (forged(lambda e: e.update(region="eu-west-1")), ["region is 'eu-west-1', not 'us-east-1'"]),
    "other-detail-type": (
        forged(lambda e: e.update({"detail-type": "Forged"})),
        ["detail-type is 'Forged', not 'AWS API Call via CloudTrail'"],
    ),
    "other-event-source": (
        forged(lambda e: e["detail"].update(eventSource="iam.amazonaws.com")),
        ["detail.eventSource is 'iam.amazonaws.com', not 'lambda.amazonaws.com'"],
    ),
    "record-of-another-account": (
        forged(lambda e: e["detail"].update(recipientAccountId="999999999999")),
        ["detail.recipientAccountId is '999999999999', not '123456789012'"],
    ),
    "no-detail": (forged(lambda e: e.update(detail="CreateFunction")), ["detail is not an object"]),
}


@pytest.mark.parametrize(("event", "reasons"), FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_forwarder_dead_letter_is_kept_with_its_reason(sqs: Any, event: Any, reasons: list[str]) -> None:
    queue = forwarder_queue(sqs)
    body = forwarder_dead_letter(sqs, queue, event)
    function = StandInLambda(judged)
    (outcome,) = drain_with(sqs, queue, function)
    assert outcome.kept and not outcome.deleted
    assert (outcome.error or "").startswith("suspect: ")
    for reason in reasons:
        assert reason in (outcome.error or "")
    assert function.events == []  # never sent
    assert bodies(sqs, queue.url) == [body]


@pytest.mark.parametrize(
    ("rule_arn", "reason"),
    [
        (f"arn:aws:events:{REGION}:999999999999:rule/lambda-crud-detector-forwarder", "RULE_ARN is 'arn:aws:events"),
        (f"arn:aws:events:{REGION}:{MEMBER_ACCOUNT}:rule/someone-elses-rule", "rule/someone-elses-rule"),
        (None, "RULE_ARN is nothing"),
    ],
    ids=["rule-in-another-account", "another-rule", "no-rule"],
)
def test_a_dead_letter_no_forwarding_rule_wrote_is_kept(sqs: Any, rule_arn: str | None, reason: str) -> None:
    queue = forwarder_queue(sqs)
    body = forwarder_dead_letter(sqs, queue, member_event(), rule_arn=rule_arn)
    function = StandInLambda(judged)
    (outcome,) = drain_with(sqs, queue, function)
    assert outcome.kept and reason in (outcome.error or ""), outcome
    assert f"not {FORWARDER_RULE_ARN!r}" in (outcome.error or "")
    assert function.events == []
    assert bodies(sqs, queue.url) == [body]


def test_a_forwarder_dead_letter_that_is_not_an_object_is_kept(sqs: Any) -> None:
    queue = forwarder_queue(sqs)
    sqs.send_message(QueueUrl=queue.url, MessageBody=NOT_JSON)
    sqs.send_message(QueueUrl=queue.url, MessageBody="[1, 2]")
    function = StandInLambda(judged)
    errors = sorted(outcome.error or "" for outcome in drain_with(sqs, queue, function))
    assert errors[0].startswith("malformed: the message body is not JSON")
    assert errors[1] == "suspect: the body is not an EventBridge event: expected an object, got list"
    assert function.events == []


def test_a_dry_run_of_the_forwarder_queue_checks_but_sends_and_deletes_nothing(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = forwarder_queue(sqs)
    real = member_event()
    sent = [forwarder_dead_letter(sqs, queue, real), forwarder_dead_letter(sqs, queue, FORGERIES["other-account"][0])]

    status = redrive.main(
        [
            *("--only", FORWARDER_DEAD_LETTERS, "--forwarder-dead-letter-queue-url", queue.url),
            *("--function-name", "lambda-crud-detector", "--region", REGION, "--dry-run"),
        ]
    )

    out, err = capsys.readouterr()
    assert status == 1, out + err  # a suspect message is kept, as a malformed one is
    lines = out.splitlines()
    (would,) = [line for line in lines if line.startswith("would redrive")]
    assert real["detail"]["eventID"] in would
    (kept,) = [line for line in lines if line.startswith("KEPT")]
    assert "suspect: account is '999999999999'" in kept
    assert "2 messages: 1 would be redriven, 1 kept." in out
    assert sorted(bodies(sqs, queue.url)) == sorted(sent)


def test_the_forwarder_queue_kind_needs_its_url(sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status = redrive.main(["--only", FORWARDER_DEAD_LETTERS, "--function-name", "f", "--region", REGION])
    _, err = capsys.readouterr()
    assert status == 2 and "--forwarder-dead-letter-queue-url" in err


def test_a_forwarder_queue_that_cannot_be_read_stops_before_anything_is_sent(
    sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"https://sqs.{REGION}.amazonaws.com/{MEMBER_ACCOUNT}/no-such-queue"
    status = redrive.main(
        [
            *("--only", FORWARDER_DEAD_LETTERS, "--forwarder-dead-letter-queue-url", missing),
            *("--function-name", "f", "--region", REGION),
        ]
    )
    _, err = capsys.readouterr()
    assert status == 2 and "could not read the ARN" in err and "no-such-queue" in err


# Queues and function from the stack's outputs ----------------------------------------------------------------

DETECTOR_STACK = {
    "Resources": {
        "FailedInvocationQueue": {"Type": "AWS::SQS::Queue"},
        "RuleDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {
        "FailedInvocationQueueUrl": {"Value": {"Ref": "FailedInvocationQueue"}},
        "RuleDeadLetterQueueUrl": {"Value": {"Ref": "RuleDeadLetterQueue"}},
        "DetectorFunctionArn": {"Value": "arn:aws:lambda:us-east-1:123456789012:function:detector-under-test"},
    },
}


def test_queues_and_function_default_to_the_stacks_outputs(sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName="detector-under-test", TemplateBody=json.dumps(DETECTOR_STACK))
    outputs = redrive.stack_outputs(cloudformation, "detector-under-test")
    sqs.send_message(QueueUrl=outputs["FailedInvocationQueueUrl"], MessageBody=destination_record(fresh_event()))
    sqs.send_message(QueueUrl=outputs["RuleDeadLetterQueueUrl"], MessageBody=json.dumps(fresh_event()))

    status = redrive.main(["--stack-name", "detector-under-test", "--dry-run", "--region", REGION])

    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert [line.split()[2] for line in out.splitlines() if line.startswith("would redrive")] == [
        FAILED_INVOCATIONS,
        DEAD_LETTERS,
    ]
    assert f"-> {DETECTOR_STACK['Outputs']['DetectorFunctionArn']['Value']}" in err
    assert "2 messages: 2 would be redriven, 0 kept." in out


def test_without_the_stack_or_the_options_it_says_what_to_pass(sqs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status = redrive.main(["--stack-name", "no-such-stack", "--region", REGION])
    _, err = capsys.readouterr()
    assert status == 2
    assert "no-such-stack" in err and "--function-name" in err


# make redrive, against moto's SQS and the built function under the emulator -----------------------------------


def integration(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test that runs the built function; the SAM CLI, reading the built template, calls deprecated parts of
    itself and of samtranslator."""
    for mark in (
        pytest.mark.integration,
        pytest.mark.filterwarnings("ignore::DeprecationWarning:samtranslator"),
        pytest.mark.filterwarnings("ignore::DeprecationWarning:samcli"),
    ):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def local_services(build_dir: Path) -> Iterator[tuple[LocalSecurityHub, LocalFunction]]:  # noqa: F811 (the fixture)
    """moto's server (SQS and Security Hub) and the built detector writing its findings there."""
    with local_security_hub() as moto_server, detector_function(moto_server.endpoint_url, build_dir) as function:
        yield moto_server, function


def run_redrive(services: tuple[LocalSecurityHub, LocalFunction], *arguments: str) -> Any:
    moto_server, function = services
    return run_make(
        "redrive",
        ["--function-name", "function", *arguments],
        {
            "AWS_ENDPOINT_URL_SQS": moto_server.endpoint_url,
            "AWS_ENDPOINT_URL_LAMBDA": function.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        },
    )


def server_sqs(moto_server: LocalSecurityHub) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto_server.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def finding_event_ids(moto_server: LocalSecurityHub) -> set[str]:
    return {finding["ProductFields"]["eventID"] for finding in stored_findings(moto_server.client())}


@integration
def test_make_redrive_deletes_what_the_function_judged_and_keeps_the_rest(
    local_services: tuple[LocalSecurityHub, LocalFunction],
) -> None:
    moto_server, _ = local_services
    sqs = server_sqs(moto_server)
    redriven_events = [fresh_event(), fresh_event()]
    failed_kept = [destination_record(INVALID_EVENT), NOT_JSON, NO_REQUEST_PAYLOAD]
    failed = make_queue(sqs, FAILED_INVOCATIONS, destination_record(redriven_events[0]), *failed_kept)
    dead_kept = [json.dumps(INVALID_EVENT)]
    dead = make_queue(sqs, DEAD_LETTERS, json.dumps(redriven_events[1]), *dead_kept)

    # The emulator runs one invocation at a time, as a single Lambda execution environment does.
    completed = run_redrive(
        local_services,
        "--failed-invocation-queue-url",
        failed.url,
        "--dead-letter-queue-url",
        dead.url,
        "--concurrency",
        "1",
    )

    report = completed.stdout
    # The tool exits 1 when it keeps anything; make reports that and fails in turn.
    assert completed.returncode != 0 and "redrive] Error 1" in completed.stderr, report + completed.stderr
    for event in redriven_events:
        (line,) = [line for line in report.splitlines() if event["detail"]["eventID"] in line]
        assert line.startswith("redriven") and line.endswith(" -> finding")
    kept = [line for line in report.splitlines() if line.startswith("KEPT")]
    assert len(kept) == 4
    assert sum("function error InvalidEventError: event is not an EventBridge envelope" in line for line in kept) == 2
    assert sum("malformed: the message body is not JSON" in line for line in kept) == 1
    assert sum("malformed: the message is not a Lambda destination record" in line for line in kept) == 1
    assert "6 messages: 2 redriven, 4 kept." in report
    # Exactly the kept messages are left, visible again; the redriven events are findings now.
    assert sorted(bodies(sqs, failed.url)) == sorted(failed_kept)
    assert bodies(sqs, dead.url) == dead_kept
    assert {event["detail"]["eventID"] for event in redriven_events} <= finding_event_ids(moto_server)


@integration
def test_make_redrive_dry_run_invokes_nothing_and_deletes_nothing(
    local_services: tuple[LocalSecurityHub, LocalFunction],
) -> None:
    moto_server, _ = local_services
    sqs = server_sqs(moto_server)
    event = fresh_event()
    sent = [destination_record(event), destination_record(INVALID_EVENT)]
    failed = make_queue(sqs, FAILED_INVOCATIONS, *sent)

    completed = run_redrive(
        local_services, "--only", FAILED_INVOCATIONS, "--failed-invocation-queue-url", failed.url, "--dry-run"
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 messages: 2 would be redriven, 0 kept." in completed.stdout
    assert sorted(bodies(sqs, failed.url)) == sorted(sent)
    assert event["detail"]["eventID"] not in finding_event_ids(moto_server)


@integration
def test_make_redrive_replays_a_forwarder_queue_to_the_function_and_keeps_the_forgery(
    local_services: tuple[LocalSecurityHub, LocalFunction],
) -> None:
    moto_server, _ = local_services
    sqs = server_sqs(moto_server)
    queue = redrive.with_origin(sqs, make_queue(sqs, FORWARDER_DEAD_LETTERS))
    assert queue.origin is not None
    # The server's account is the member account here.
    real = member_event(queue.origin.account)
    forwarder_dead_letter(sqs, queue, real, rule_arn=queue.origin.rule_arn)
    forgery = member_event(queue.origin.account)
    forgery["account"] = "999999999999"
    kept = forwarder_dead_letter(sqs, queue, forgery, rule_arn=queue.origin.rule_arn)

    completed = run_redrive(
        local_services, "--only", FORWARDER_DEAD_LETTERS, "--forwarder-dead-letter-queue-url", queue.url
    )

    report = completed.stdout
    assert completed.returncode != 0 and "redrive] Error 1" in completed.stderr, report + completed.stderr
    (line,) = [line for line in report.splitlines() if real["detail"]["eventID"] in line]
    assert line.startswith("redriven") and line.endswith(" -> finding")
    (line,) = [line for line in report.splitlines() if forgery["detail"]["eventID"] in line]
    assert line.startswith("KEPT") and "suspect: account is '999999999999'" in line
    assert bodies(sqs, queue.url) == [kept]
    found = finding_event_ids(moto_server)
    assert real["detail"]["eventID"] in found and forgery["detail"]["eventID"] not in found
