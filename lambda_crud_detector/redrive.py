"""Send the events the detector failed on back to it, and delete each one only once it has been judged.

    lambda-crud-detector redrive [--stack-name lambda-crud-detector] [--dry-run] [--concurrency 4]
    lambda-crud-detector redrive --only forwarder-dead-letters --forwarder-dead-letter-queue-url URL [--dry-run]

Two queues hold such events: the failed-invocation queue, Lambda's on-failure destination, whose messages are
destination records with the event in ``requestPayload``; and the rule's dead-letter queue, whose messages are the
events EventBridge could not deliver. A third kind lives in each member account and Region: the forwarder's
dead-letter queue, holding the events its rule could not put on the central bus. Those go to the function too (a
custom PutEvents cannot carry their ``aws.lambda`` source), and only once they pass the checks of
``forwarder_record_problems``: anything else in that queue is kept and reported as suspect.

Each event is sent to the function synchronously, and its message is deleted only when the function answered
without an error. Anything else keeps the message where it was, and is reported: an error of the function, a
refused or throttled invocation, a body that is not an event. Sending an event twice is harmless: its finding's Id
is stable, so Security Hub keeps one finding.

The queue URLs and the function default to the stack's outputs (FailedInvocationQueueUrl, RuleDeadLetterQueueUrl,
DetectorFunctionArn). Credentials and Region come from the usual AWS chain (environment, AWS_PROFILE, SSO); the
endpoints too, so AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_LAMBDA and AWS_ENDPOINT_URL_CLOUDFORMATION point it
at local services.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from lambda_crud_detector.terminal import printable

DEFAULT_STACK_NAME = "lambda-crud-detector"
FAILED_INVOCATIONS = "failed-invocations"
DEAD_LETTERS = "dead-letters"
FORWARDER_DEAD_LETTERS = "forwarder-dead-letters"
QUEUE_OUTPUTS = {FAILED_INVOCATIONS: "FailedInvocationQueueUrl", DEAD_LETTERS: "RuleDeadLetterQueueUrl"}
FUNCTION_OUTPUT = "DetectorFunctionArn"

# What EventBridge's CloudTrail integration puts around a Lambda API call, and the forwarding rule's fixed name
# (deploy/member-forwarder.yaml, ForwardLambdaApiCallsRule), which its dead-letter messages carry in RULE_ARN.
LAMBDA_SOURCE = "aws.lambda"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
LAMBDA_EVENT_SOURCE = "lambda.amazonaws.com"
FORWARDER_RULE_NAME = "lambda-crud-detector-forwarder"
RULE_ARN_ATTRIBUTE = "RULE_ARN"

LAMBDA_MAX_TIMEOUT_SECONDS = 900
# A message stays hidden from other readers while its event is being sent: longer than the longest synchronous
# invocation Lambda allows, with room for a retried one. If this tool dies, its messages reappear after that.
VISIBILITY_TIMEOUT_SECONDS = 1800
# Long polling asks every SQS server, so an empty answer means the queue has nothing visible left.
WAIT_TIME_SECONDS = 2
MAX_MESSAGES_PER_RECEIVE = 10
PROGRESS_EVERY = 25
"""A progress line on stderr after this many messages of one queue."""


class MalformedMessage(ValueError):
    """A message whose body is not an event this queue can hold; it is kept, never sent."""


@dataclass(frozen=True)
class Origin:
    """Where a forwarder's dead-letter queue lives: the one account and Region its events can come from."""

    partition: str
    region: str
    account: str

    @classmethod
    def of_queue_arn(cls, arn: str) -> Origin:
        parts = arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[1:6]):
            raise SetupError(f"{arn!r} is not the ARN of an SQS queue")
        return cls(partition=parts[1], region=parts[3], account=parts[4])

    @property
    def rule_arn(self) -> str:
        """The forwarding rule's ARN: it is on the default bus, whose rule ARNs name no bus."""
        return f"arn:{self.partition}:events:{self.region}:{self.account}:rule/{FORWARDER_RULE_NAME}"


@dataclass(frozen=True)
class Queue:
    kind: str
    url: str
    origin: Origin | None = None
    """For a forwarder's dead-letter queue: the account and Region its events must come from."""


@dataclass(frozen=True)
class Outcome:
    """What became of one message: redriven and deleted, or kept with the reason (``error``)."""

    queue: str
    message_id: str
    event: str
    """Which event the message holds, for the report: its eventName and eventID when it has them."""
    error: str | None = None
    deleted: bool = False

    @property
    def kept(self) -> bool:
        return self.error is not None

    def line(self, dry_run: bool = False) -> str:
        status = "KEPT" if self.kept else "would redrive" if dry_run else "redriven"
        text = f"{status:<13} {self.queue:<22} {self.message_id}  {self.event}"
        return printable(f"{text}  {self.error}" if self.error else text)


@dataclass
class Progress:
    """Counts handled messages and prints a line on stderr every ``every`` of them."""

    queue: str
    expected: int | None
    stream: TextIO = sys.stderr
    every: int = PROGRESS_EVERY
    handled: int = 0
    kept: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self.handled += 1
            self.kept += outcome.kept
            if self.handled % self.every == 0:
                about = f" of about {self.expected}" if self.expected else ""
                print(
                    f"redrive: {self.queue}: {self.handled}{about} messages handled, {self.kept} kept",
                    file=self.stream,
                    flush=True,
                )


# Reading a message -------------------------------------------------------------------------------------------


def event_payload(kind: str, body: str) -> bytes:
    """The event a message of queue ``kind`` holds, as the function is to receive it."""
    try:
        content = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedMessage(f"the message body is not JSON ({error})") from None
    if kind == FAILED_INVOCATIONS:
        if not isinstance(content, Mapping) or "requestPayload" not in content:
            raise MalformedMessage("the message is not a Lambda destination record: it has no requestPayload")
        return json.dumps(content["requestPayload"]).encode("utf-8")
    # The dead-letter queues hold the event as EventBridge would have delivered it: send it unchanged.
    return body.encode("utf-8")


def forwarder_record_problems(event: Any, attributes: Mapping[str, Any], origin: Origin) -> list[str]:
    """Why a message of a forwarder's dead-letter queue may not be what the forwarding rule wrote there (none: it may).

    The forwarding rule writes the event it failed to deliver, unchanged, with its own ARN in the message attribute
    RULE_ARN. That event is a CloudTrail record of a Lambda call made in the queue's own account and Region, so
    everything that ties it to them is checked. This proves no signature: whoever may send to the queue could write
    a record that passes. The queue's policy lets only the forwarding rule send.
    """
    if not isinstance(event, Mapping):
        return [f"the body is not an EventBridge event: expected an object, got {type(event).__name__}"]
    expected = {
        "source": (event.get("source"), LAMBDA_SOURCE),
        "detail-type": (event.get("detail-type"), CLOUDTRAIL_DETAIL_TYPE),
        "account": (event.get("account"), origin.account),
        "region": (event.get("region"), origin.region),
    }
    detail = event.get("detail")
    if isinstance(detail, Mapping):
        expected["detail.eventSource"] = (detail.get("eventSource"), LAMBDA_EVENT_SOURCE)
        expected["detail.recipientAccountId"] = (detail.get("recipientAccountId"), origin.account)
    expected[RULE_ARN_ATTRIBUTE] = (attribute_text(attributes, RULE_ARN_ATTRIBUTE), origin.rule_arn)
    problems = [] if isinstance(detail, Mapping) else ["detail is not an object"]
    problems += [
        f"{name} is {shown(found)}, not {wanted!r}" for name, (found, wanted) in expected.items() if found != wanted
    ]
    return problems


def attribute_text(attributes: Mapping[str, Any], name: str) -> str | None:
    """The text of SQS message attribute ``name``, or None when the message has none."""
    value = attributes.get(name)
    return value.get("StringValue") if isinstance(value, Mapping) else None


def shown(value: Any) -> str:
    """A value fit for the report: clipped, and ``nothing`` when absent."""
    return "nothing" if value is None else repr(value)[:100]


def describe_event(payload: bytes | None) -> str:
    """``eventName eventID`` of the CloudTrail record in ``payload``, for the report; ``-`` for what it lacks."""
    try:
        detail = json.loads(payload).get("detail") if payload else None
    except (ValueError, AttributeError):
        detail = None
    if not isinstance(detail, Mapping):
        return "-"
    return f"{detail.get('eventName') or '-'} {detail.get('eventID') or '-'}"


def function_answer(response: Mapping[str, Any]) -> tuple[str | None, Any]:
    """Why a synchronous invocation failed (None when the function answered without an error), and its answer.

    Lambda reports a function error only in FunctionError (the HTTP status is still 200). The payload is checked
    too: an answer shaped like Lambda's error record (an errorMessage) is an error whatever the headers say, since
    the detector never returns one, and keeping a message is always safe.
    """
    payload = response["Payload"].read()
    try:
        answer = json.loads(payload) if payload else None
    except json.JSONDecodeError:
        answer = None
    error_shaped = isinstance(answer, Mapping) and "errorMessage" in answer
    if response.get("FunctionError") or error_shaped:
        if isinstance(answer, Mapping):
            kind = answer.get("errorType") or response.get("FunctionError") or "Error"
            return f"function error {kind}: {answer.get('errorMessage', '')}", answer
        return f"function error {response.get('FunctionError')}: {payload[:500].decode('utf-8', 'replace')}", answer
    if not 200 <= response.get("StatusCode", 0) < 300:
        return f"invocation answered with status {response.get('StatusCode')}", answer
    return None, answer


# Redriving ---------------------------------------------------------------------------------------------------


class Redrive:
    """Sends each message's event to ``function_name`` and deletes the message when the function accepted it."""

    def __init__(self, sqs: Any, lambda_client: Any, function_name: str, dry_run: bool = False) -> None:
        self.sqs = sqs
        self.lambda_client = lambda_client
        self.function_name = function_name
        self.dry_run = dry_run

    def handle(self, queue: Queue, message: Mapping[str, Any]) -> Outcome:
        message_id = str(message.get("MessageId", "-"))
        try:
            payload = event_payload(queue.kind, message.get("Body", ""))
        except MalformedMessage as malformed:
            return Outcome(queue.kind, message_id, "-", error=f"malformed: {malformed}")
        event = describe_event(payload)
        if queue.kind == FORWARDER_DEAD_LETTERS:
            problems = forwarder_record_problems(
                json.loads(payload), message.get("MessageAttributes") or {}, queue_origin(queue)
            )
            if problems:
                return Outcome(queue.kind, message_id, event, error=f"suspect: {'; '.join(problems)}")
        if self.dry_run:
            return Outcome(queue.kind, message_id, event)
        try:
            response = self.lambda_client.invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=payload
            )
            error, answer = function_answer(response)
        except (BotoCoreError, ClientError) as failure:
            error, answer = f"invocation failed: {failure}", None
        if error is not None:
            return Outcome(queue.kind, message_id, event, error=error)
        # The verdict, so that a run where everything is suddenly allowlisted or ignored stands out.
        if isinstance(answer, Mapping) and answer.get("verdict"):
            event = f"{event} -> {answer['verdict']}"
        try:
            self.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        except (BotoCoreError, ClientError) as failure:
            # Judged, but still in the queue: sending it again later is harmless.
            return Outcome(
                queue.kind, message_id, event, error=f"redriven, but the message could not be deleted: {failure}"
            )
        return Outcome(queue.kind, message_id, event, deleted=True)


def queue_origin(queue: Queue) -> Origin:
    if queue.origin is None:
        raise ValueError(f"the {queue.kind} queue {queue.url} was given without its account and Region")
    return queue.origin


def received_messages(sqs: Any, queue_url: str, wanted: int) -> list[dict[str, Any]]:
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        # The forwarder's dead-letter messages say in their attributes which rule wrote them.
        MessageAttributeNames=["All"],
        MaxNumberOfMessages=max(1, min(wanted, MAX_MESSAGES_PER_RECEIVE)),
        VisibilityTimeout=VISIBILITY_TIMEOUT_SECONDS,
        WaitTimeSeconds=WAIT_TIME_SECONDS,
    )
    return answer.get("Messages", [])


def drain(
    sqs: Any,
    queue: Queue,
    handle: Callable[[Queue, Mapping[str, Any]], Outcome],
    concurrency: int,
    on_outcome: Callable[[Outcome], None],
) -> list[Outcome]:
    """Every message visible in ``queue``, each handled once, at most ``concurrency`` at a time.

    Only ``concurrency`` messages are received ahead, so that none waits hidden in a backlog. Draining ends when
    the queue answers with no message it has not already handed out in this run. Messages not deleted are made
    visible again at the end (not before, or they would be received again): the queue's alarm sees them, a later
    run retries them.
    """
    seen: set[str] = set()
    remaining: list[Mapping[str, Any]] = []
    outcomes: list[Outcome] = []
    running: dict[Future[Outcome], Mapping[str, Any]] = {}

    def collect(done: set[Future[Outcome]]) -> None:
        for future in done:
            message = running.pop(future)
            outcome = future.result()
            outcomes.append(outcome)
            on_outcome(outcome)
            if not outcome.deleted:
                remaining.append(message)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="redrive") as pool:
        queue_has_more = True
        while queue_has_more or running:
            if queue_has_more and len(running) < concurrency:
                fresh = [
                    message
                    for message in received_messages(sqs, queue.url, concurrency - len(running))
                    if message["MessageId"] not in seen
                ]
                queue_has_more = bool(fresh)
                for message in fresh:
                    seen.add(message["MessageId"])
                    running[pool.submit(handle, queue, message)] = message
            if running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                collect(done)
    release(sqs, queue.url, remaining)
    return outcomes


def release(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> None:
    """Make ``messages`` visible again now, rather than when their visibility timeout ends."""
    for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
            for index, message in enumerate(messages[start : start + MAX_MESSAGES_PER_RECEIVE])
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError):
            pass  # they stay in the queue either way, and reappear when their visibility timeout ends


def approximate_count(sqs: Any, queue_url: str) -> int | None:
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    except (BotoCoreError, ClientError, KeyError, ValueError):
        return None


# Where the queues and the function are -----------------------------------------------------------------------


class SetupError(Exception):
    """The queues or the function could not be found."""


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise SetupError(
            f"could not read the outputs of stack {stack_name!r} ({error}); pass --stack-name, or the queue URLs "
            "and --function-name"
        ) from None
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def targets(arguments: argparse.Namespace, cloudformation: Callable[[], Any]) -> tuple[list[Queue], str]:
    """The queues to drain and the function to invoke: the options given, the stack's outputs for the rest."""
    forwarder_urls: list[str] = arguments.forwarder_dead_letter_queue_url or []
    if arguments.only:
        kinds = [arguments.only]
    else:
        kinds = [FAILED_INVOCATIONS, DEAD_LETTERS] + ([FORWARDER_DEAD_LETTERS] if forwarder_urls else [])
    if FORWARDER_DEAD_LETTERS in kinds and not forwarder_urls:
        raise SetupError(
            "pass --forwarder-dead-letter-queue-url: the ForwarderDeadLetterQueueUrl output of the forwarder's stack "
            "in the member account and Region"
        )
    detector_kinds = [kind for kind in kinds if kind != FORWARDER_DEAD_LETTERS]
    given = {FAILED_INVOCATIONS: arguments.failed_invocation_queue_url, DEAD_LETTERS: arguments.dead_letter_queue_url}
    outputs: dict[str, str] = {}
    if arguments.function_name is None or any(given[kind] is None for kind in detector_kinds):
        outputs = stack_outputs(cloudformation(), arguments.stack_name)

    def from_stack(output: str) -> str:
        if not outputs.get(output):
            raise SetupError(f"stack {arguments.stack_name!r} has no output {output}")
        return outputs[output]

    queues = [Queue(kind, given[kind] or from_stack(QUEUE_OUTPUTS[kind])) for kind in detector_kinds]
    if FORWARDER_DEAD_LETTERS in kinds:
        queues += [Queue(FORWARDER_DEAD_LETTERS, url) for url in forwarder_urls]
    return queues, arguments.function_name or from_stack(FUNCTION_OUTPUT)


# sqs.REGION.amazonaws.com[.cn], the legacy REGION.queue.amazonaws.com, and queue.amazonaws.com for us-east-1.
_QUEUE_HOST = re.compile(
    r"^(?:sqs\.(?P<region>[a-z0-9-]+)|(?:(?P<legacy>[a-z0-9-]+)\.)?queue)\.amazonaws\.com(?:\.cn)?$"
)


def queue_region(url: str) -> str | None:
    """The Region an AWS queue URL names; None for any other host (a local endpoint): the client's Region then."""
    match = _QUEUE_HOST.match(urlsplit(url).hostname or "")
    if match is None:
        return None
    return match["region"] or match["legacy"] or "us-east-1"


def with_origin(sqs: Any, queue: Queue) -> Queue:
    """``queue`` with the account and Region it belongs to, as its own ARN says (a URL may be a local endpoint's)."""
    try:
        arn = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    except (BotoCoreError, ClientError, KeyError) as error:
        raise SetupError(f"could not read the ARN of the {queue.kind} queue {queue.url}: {error}") from None
    return Queue(queue.kind, queue.url, Origin.of_queue_arn(arn))


# Command -----------------------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-crud-detector redrive",
        description=(
            "Send the events kept in the detector's failed-invocation queue and its rule's dead-letter queue\n"
            "back to the function, synchronously, and delete each message only when the function judged its\n"
            "event without an error. Every message is reported: redriven, or KEPT with the reason.\n"
            "A forwarder's dead-letter queue (a member account's) is replayed to the same function, and only the\n"
            "events that belong to the queue's account, Region and forwarding rule: the rest are KEPT as suspect.\n"
            "Exit status: 0 when every message was redriven (or none was waiting), 1 when any was kept,\n"
            "2 when the queues or the function cannot be found."
        ),
        epilog=(
            "examples:\n"
            "  lambda-crud-detector redrive --dry-run\n"
            "  lambda-crud-detector redrive --stack-name lambda-crud-detector --concurrency 2\n"
            "  lambda-crud-detector redrive --only dead-letters --dead-letter-queue-url URL --function-name NAME\n"
            "  lambda-crud-detector redrive --only forwarder-dead-letters --forwarder-dead-letter-queue-url URL --dry-run\n"
            "\n"
            "Credentials, Region and endpoints come from the AWS chain: AWS_PROFILE, SSO, the environment,\n"
            "AWS_ENDPOINT_URL_SQS / _LAMBDA / _CLOUDFORMATION. The caller needs cloudformation:DescribeStacks\n"
            "(unless every URL and the function are given), sqs:ReceiveMessage, sqs:DeleteMessage,\n"
            "sqs:ChangeMessageVisibility, sqs:GetQueueAttributes on the queues, and lambda:InvokeFunction."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stack-name",
        default=DEFAULT_STACK_NAME,
        help=f"the detector's stack, whose outputs give the defaults below (default: {DEFAULT_STACK_NAME})",
    )
    parser.add_argument(
        "--failed-invocation-queue-url",
        metavar="URL",
        help="the function's on-failure queue (default: the stack's FailedInvocationQueueUrl)",
    )
    parser.add_argument(
        "--dead-letter-queue-url",
        metavar="URL",
        help="the rule's dead-letter queue (default: the stack's RuleDeadLetterQueueUrl)",
    )
    parser.add_argument(
        "--forwarder-dead-letter-queue-url",
        metavar="URL",
        action="append",
        help=(
            "a forwarder's dead-letter queue, in a member account and Region (its stack's ForwarderDeadLetterQueueUrl); "
            "may be repeated. Each event is checked against the queue's account and Region before it is sent"
        ),
    )
    parser.add_argument(
        "--function-name",
        metavar="NAME_OR_ARN",
        help="the function to send the events to (default: the stack's DetectorFunctionArn)",
    )
    parser.add_argument(
        "--only",
        choices=[FAILED_INVOCATIONS, DEAD_LETTERS, FORWARDER_DEAD_LETTERS],
        help="drain only this kind of queue (default: both of the detector's, and any forwarder's given)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="report what each message holds; invoke nothing, delete nothing (exit 1 if any is malformed)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="events sent at the same time (default: 4); mind the function's reserved concurrency",
    )
    parser.add_argument("--region", help="AWS Region (default: the AWS configuration's)")
    return parser


def lambda_client(session: boto3.session.Session) -> Any:
    # A synchronous invocation lasts as long as the function runs (up to 15 minutes); throttling is retried.
    config = Config(
        read_timeout=LAMBDA_MAX_TIMEOUT_SECONDS + 60,
        connect_timeout=10,
        retries={"mode": "standard", "max_attempts": 5},
    )
    return session.client("lambda", config=config)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    try:
        session = boto3.session.Session(region_name=arguments.region)
        queues, function_name = targets(arguments, lambda: session.client("cloudformation"))
        function = lambda_client(session)
        clients = {queue.url: session.client("sqs", region_name=queue_region(queue.url)) for queue in queues}
        queues = [
            with_origin(clients[queue.url], queue) if queue.kind == FORWARDER_DEAD_LETTERS else queue
            for queue in queues
        ]
    except (SetupError, BotoCoreError) as error:
        print(f"{parser.prog}: error: {explain(error)}", file=err)
        return 2
    outcomes: list[Outcome] = []
    for queue in queues:
        # A forwarder's queue may be in another Region than the function: each queue is read with its own client.
        sqs = clients[queue.url]
        redrive = Redrive(sqs, function, function_name, arguments.dry_run)
        progress = Progress(queue.kind, approximate_count(sqs, queue.url), stream=err)
        dry = " (dry run: nothing is sent or deleted)" if arguments.dry_run else ""
        print(f"redrive: {queue.kind}: {queue.url} -> {function_name}{dry}", file=err, flush=True)

        def report(outcome: Outcome, progress: Progress = progress) -> None:
            print(outcome.line(arguments.dry_run), file=out, flush=True)
            progress.add(outcome)

        try:
            outcomes += drain(sqs, queue, redrive.handle, arguments.concurrency, report)
        except (BotoCoreError, ClientError) as error:
            print(f"{parser.prog}: error: could not read {queue.kind} queue {queue.url}: {error}", file=err)
            return 2
    print(summary(outcomes, arguments.dry_run), file=out)
    return 1 if any(outcome.kept for outcome in outcomes) else 0


def explain(error: Exception) -> str:
    if isinstance(error, NoRegionError):
        return "no AWS Region: pass --region, or set AWS_REGION or your profile's region"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure a profile (aws configure / aws sso login) or set AWS_PROFILE"
    return str(error)


def summary(outcomes: Sequence[Outcome], dry_run: bool) -> str:
    kept = sum(outcome.kept for outcome in outcomes)
    verb = "would be redriven" if dry_run else "redriven"
    return f"{len(outcomes)} messages: {len(outcomes) - kept} {verb}, {kept} kept."


if __name__ == "__main__":
    sys.exit(main())
