"""Faults between the detector and Security Hub: every event still ends as exactly one stored finding.

A fault transport sits in front of the mocked Security Hub on the handler's own client. Each BatchImportFindings
attempt first meets the next planned fault: an HTTP error answer, a connection that fails, a call that Security
Hub stores but whose answer is lost, or a 200 that rejects the finding. Once the plan is used up, attempts reach
the mocked Security Hub. Lambda's asynchronous retries are replayed by invoking the handler again with the same
event after each error, at most three times (the invocation and ``MaximumRetryAttempts: 2``).

Whatever the faults, two things must hold: an invocation that returns success has its finding stored, and each
event that is a finding ends as exactly one finding in Security Hub (or, when every invocation fails, as a raise
each time, so that the event reaches the failure destination).
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.retries.bucket import TokenBucket
from botocore.retries.quota import RetryQuota
from moto.core.models import botocore_stubber

from app import Detector
from publisher import PublishError
from tests.asff import assert_valid_finding
from tests.conftest import FakeLambdaContext, json_log_lines, stored_findings
from tests.support.cases import INVALID, load_cases

LAMBDA_INVOCATIONS_PER_EVENT = 3
"""The first invocation and the two retries of the function's EventInvokeConfig (MaximumRetryAttempts: 2)."""
ATTEMPTS_PER_INVOCATION = 6
"""publisher.MAX_ATTEMPTS; the function's Timeout is sized for this many."""

SAMPLE_CASES = [case for case in load_cases() if case.expected_verdict != INVALID]
FINDING_EVENT = next(case.event for case in SAMPLE_CASES if case.file == "spoofed-deployrole-session-name.json")


# --- What the client can meet on one attempt --------------------------------------------------------------------

Forward = Callable[[], AWSResponse]
"""Sends the attempt on to the mocked Security Hub and returns its answer."""


class Fault(Protocol):
    def __call__(self, request: AWSPreparedRequest, forward: Forward) -> AWSResponse: ...


class RawBody:
    """The raw body of an HTTP answer, as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@dataclass(frozen=True)
class ErrorAnswer:
    """Security Hub, or the front door before it, answers with an HTTP error and stores nothing."""

    status: int
    code: str | None
    """The error type header; None for a bare answer with a plain-text body, as a load balancer sends."""

    def __call__(self, request: AWSPreparedRequest, forward: Forward) -> AWSResponse:
        if self.code is None:
            headers = {"Content-Type": "text/plain"}
            return AWSResponse(request.url, self.status, headers, RawBody(b"Service Unavailable"))
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": self.code}
        body = json.dumps({"Code": self.code, "Message": f"Simulated {self.code}"}).encode()
        return AWSResponse(request.url, self.status, headers, RawBody(body))

    def __str__(self) -> str:
        return f"{self.status} {self.code or 'without a body'}"


@dataclass(frozen=True)
class ConnectionFails:
    """The attempt never gets an answer and Security Hub never sees it."""

    error: type[BotoCoreError]

    def __call__(self, request: AWSPreparedRequest, forward: Forward) -> AWSResponse:
        raise self.error(endpoint_url=request.url, error="simulated")

    def __str__(self) -> str:
        return self.error.__name__


@dataclass(frozen=True)
class AnswerLost:
    """Security Hub stores the finding, but the client sees ``instead`` rather than its answer."""

    instead: Fault

    def __call__(self, request: AWSPreparedRequest, forward: Forward) -> AWSResponse:
        forward()
        return self.instead(request, forward)

    def __str__(self) -> str:
        return f"stored, then {self.instead}"


@dataclass(frozen=True)
class FindingsRejected:
    """HTTP 200, but every finding of the call is rejected and none is stored."""

    with_details: bool = True
    """False: only FailedCount says so, FailedFindings is empty."""

    def __call__(self, request: AWSPreparedRequest, forward: Forward) -> AWSResponse:
        findings = json.loads(request.body)["Findings"]
        failed = [
            {"Id": finding["Id"], "ErrorCode": "InvalidInput", "ErrorMessage": "Finding rejected"}
            for finding in findings
        ]
        body = {"FailedCount": len(findings), "SuccessCount": 0, "FailedFindings": failed if self.with_details else []}
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, RawBody(json.dumps(body).encode()))

    def __str__(self) -> str:
        return "FailedFindings" if self.with_details else "FailedCount only"


THROTTLED = ErrorAnswer(429, "ThrottlingException")
TOO_MANY_REQUESTS = ErrorAnswer(429, "TooManyRequestsException")
LIMIT_EXCEEDED = ErrorAnswer(429, "LimitExceededException")
INTERNAL_ERROR = ErrorAnswer(500, "InternalException")
UNAVAILABLE = ErrorAnswer(503, None)
CONNECT_TIMEOUT = ConnectionFails(ConnectTimeoutError)
READ_TIMEOUT = ConnectionFails(ReadTimeoutError)
NO_ENDPOINT = ConnectionFails(EndpointConnectionError)

TRANSIENT_FAULTS: list[Fault] = [
    THROTTLED,
    TOO_MANY_REQUESTS,
    LIMIT_EXCEEDED,
    INTERNAL_ERROR,
    UNAVAILABLE,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    NO_ENDPOINT,
]


class FaultyTransport:
    """Stands in front of the mocked Security Hub on one client; BatchImportFindings attempts meet the plan first."""

    def __init__(self, client: Any) -> None:
        self._planned: deque[Fault] = deque()
        self.sent: list[list[dict[str, Any]]] = []
        """The findings of every BatchImportFindings attempt, in order, as they went over the wire."""
        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register("before-send", self._send)

    def plan(self, faults: Iterable[Fault]) -> None:
        self._planned = deque(faults)

    @property
    def attempts(self) -> int:
        return len(self.sent)

    def _send(self, request: AWSPreparedRequest, event_name: str, **kwargs: Any) -> AWSResponse:
        def forward() -> AWSResponse:
            response = botocore_stubber(event_name=event_name, request=request, **kwargs)
            assert response is not None, f"{event_name} would have left the mocked AWS"
            return response

        if not event_name.endswith(".BatchImportFindings"):
            return forward()
        self.sent.append(json.loads(request.body)["Findings"])
        return self._planned.popleft()(request, forward) if self._planned else forward()


# --- Fixtures and delivery ---------------------------------------------------------------------------------------


@pytest.fixture
def retry_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's backoff pauses between attempts, recorded instead of slept."""
    pauses: list[float] = []

    class PausesRecorded:
        def sleep(self, seconds: float) -> None:
            pauses.append(seconds)

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    monkeypatch.setattr(botocore.endpoint, "time", PausesRecorded())
    return pauses


@pytest.fixture
def no_client_side_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the client run in adaptive retry mode, its rate limiter lets every send through at once: after a
    throttle it would otherwise wait in real time, and these tests would depend on the clock."""

    def acquire_at_once(bucket: TokenBucket, amount: int = 1, block: bool = True) -> bool:
        return True

    monkeypatch.setattr(TokenBucket, "acquire", acquire_at_once)
    # The client's retry quota (botocore's standard mode: 500 units shared by every call of the client, 5 a retry)
    # runs dry after some hundred failed attempts; without this, how often an event is retried would depend on how
    # many sample events met a storm before it.
    monkeypatch.setattr(RetryQuota, "acquire", lambda quota, capacity_amount: True)


@pytest.fixture
def transport(detector: Detector, retry_pauses: list[float], no_client_side_waiting: None) -> FaultyTransport:
    return FaultyTransport(detector.deployment(FakeLambdaContext()).publisher._client)


@dataclass(frozen=True)
class Invocation:
    attempts: int
    """BatchImportFindings attempts the invocation made."""
    result: dict[str, Any] | None
    error: Exception | None


def stored_ids(security_hub: Any) -> list[str]:
    return [finding["Id"] for finding in stored_findings(security_hub)]


def deliver(
    detector: Detector,
    security_hub: Any,
    transport: FaultyTransport,
    event: dict[str, Any],
    faults: Iterable[Fault] = (),
) -> list[Invocation]:
    """Deliver ``event`` as Lambda's asynchronous invocation does: invoke, and invoke again after each error.

    Checks that an invocation which returns success for a finding leaves that finding stored.
    """
    transport.plan(faults)
    invocations: list[Invocation] = []
    for _ in range(LAMBDA_INVOCATIONS_PER_EVENT):
        attempts_before = transport.attempts
        try:
            result = detector.lambda_handler(copy.deepcopy(event), FakeLambdaContext())
        except Exception as error:  # noqa: BLE001 - every raise is a retry, whatever its type
            invocations.append(Invocation(transport.attempts - attempts_before, None, error))
            continue
        invocations.append(Invocation(transport.attempts - attempts_before, result, None))
        if result["findingId"] is not None:
            assert result["findingId"] in stored_ids(security_hub), "success returned for a finding that is not stored"
        break
    return invocations


def attempts_when_first_attempts_fail(failures: int) -> list[int]:
    """Attempts each invocation makes when the first ``failures`` attempts fail and every later one succeeds."""
    attempts: list[int] = []
    while failures >= ATTEMPTS_PER_INVOCATION and len(attempts) < LAMBDA_INVOCATIONS_PER_EVENT:
        attempts.append(ATTEMPTS_PER_INVOCATION)
        failures -= ATTEMPTS_PER_INVOCATION
    if len(attempts) < LAMBDA_INVOCATIONS_PER_EVENT:
        attempts.append(failures + 1)
    return attempts


def assert_raised_by(error: Exception | None, fault: Fault) -> None:
    """``error`` is what the client raises after meeting ``fault`` on its last attempt."""
    match fault:
        case ErrorAnswer(status=status, code=code):
            assert isinstance(error, ClientError), repr(error)
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
            assert error.response["Error"]["Code"] == (code or str(status))
        case ConnectionFails(error=error_type):
            assert isinstance(error, error_type), repr(error)
        case AnswerLost(instead=instead):
            assert_raised_by(error, instead)
        case FindingsRejected():
            assert isinstance(error, PublishError), repr(error)
        case _:
            raise AssertionError(f"unknown fault {fault!r}")


def assert_every_attempt_sent_the_same_finding(transport: FaultyTransport) -> dict[str, Any]:
    """Retries, botocore's and Lambda's alike, must resend the finding unchanged: same Id, same timestamps."""
    [first, *others] = transport.sent
    assert len(first) == 1
    assert all(findings == first for findings in others)
    assert_valid_finding(first[0])
    return first[0]


# --- Tests -------------------------------------------------------------------------------------------------------


# For every fault: the most one invocation absorbs, one raise and then a retried success, and every attempt of
# every invocation failing. For one answer and one connection fault, also the boundaries in between.
FAILURE_COUNTS = [
    *((fault, failures) for fault in TRANSIENT_FAULTS for failures in (5, 8, 18)),
    *((fault, failures) for fault in (THROTTLED, READ_TIMEOUT) for failures in (1, 6, 12, 17)),
]


@pytest.mark.parametrize(("fault", "failures"), FAILURE_COUNTS, ids=lambda value: str(value))
def test_transient_faults_are_retried_until_exactly_one_finding_is_stored(
    detector: Detector,
    security_hub: Any,
    transport: FaultyTransport,
    retry_pauses: list[float],
    fault: Fault,
    failures: int,
) -> None:
    """Up to 5 failed attempts are absorbed by botocore in one invocation; the 6th turns into a raise, so Lambda
    retries the event; after three failed invocations the event is left to the failure destination."""
    invocations = deliver(detector, security_hub, transport, FINDING_EVENT, [fault] * failures)

    expected_attempts = attempts_when_first_attempts_fail(failures)
    assert [invocation.attempts for invocation in invocations] == expected_attempts
    assert len(retry_pauses) == sum(attempts - 1 for attempts in expected_attempts)  # backoff before each retry
    *failed, last = invocations
    for invocation in failed:
        assert_raised_by(invocation.error, fault)
    sent = assert_every_attempt_sent_the_same_finding(transport)
    if failures < LAMBDA_INVOCATIONS_PER_EVENT * ATTEMPTS_PER_INVOCATION:
        assert last.error is None
        assert last.result == {
            "verdict": "finding",
            "findingId": sent["Id"],
            "behaviour": last.result["behaviour"],
            "severity": sent["Severity"]["Label"],
            "reason": last.result["reason"],
        }
        [stored] = stored_findings(security_hub)
        assert {key: stored[key] for key in sent} == sent
    else:
        assert_raised_by(last.error, fault)
        assert stored_findings(security_hub) == []


@pytest.mark.parametrize(
    "lost",
    [AnswerLost(READ_TIMEOUT), AnswerLost(ConnectionFails(ConnectionClosedError)), AnswerLost(ErrorAnswer(502, None))],
    ids=str,
)
def test_a_stored_finding_whose_answer_was_lost_is_stored_again_as_the_same_finding(
    detector: Detector, security_hub: Any, transport: FaultyTransport, lost: AnswerLost
) -> None:
    invocations = deliver(detector, security_hub, transport, FINDING_EVENT, [lost])

    assert [(invocation.attempts, invocation.error) for invocation in invocations] == [(2, None)]
    sent = assert_every_attempt_sent_the_same_finding(transport)
    assert stored_ids(security_hub) == [sent["Id"]]


def test_answers_lost_for_a_whole_invocation_raise_and_the_retry_leaves_one_finding(
    detector: Detector, security_hub: Any, transport: FaultyTransport
) -> None:
    transport.plan([AnswerLost(READ_TIMEOUT)] * ATTEMPTS_PER_INVOCATION)
    with pytest.raises(ReadTimeoutError):
        detector.lambda_handler(copy.deepcopy(FINDING_EVENT), FakeLambdaContext())
    already_stored = stored_ids(security_hub)
    assert len(already_stored) == 1  # the raise is a lost answer, not a lost finding

    retried = detector.lambda_handler(copy.deepcopy(FINDING_EVENT), FakeLambdaContext())

    assert retried["findingId"] == already_stored[0]
    assert stored_ids(security_hub) == already_stored
    assert transport.attempts == ATTEMPTS_PER_INVOCATION + 1
    assert_every_attempt_sent_the_same_finding(transport)


def test_answers_lost_in_every_invocation_raise_each_time_and_leave_one_finding(
    detector: Detector, security_hub: Any, transport: FaultyTransport
) -> None:
    faults = [AnswerLost(READ_TIMEOUT)] * (LAMBDA_INVOCATIONS_PER_EVENT * ATTEMPTS_PER_INVOCATION)
    invocations = deliver(detector, security_hub, transport, FINDING_EVENT, faults)

    attempts = [invocation.attempts for invocation in invocations]
    assert attempts == [ATTEMPTS_PER_INVOCATION] * LAMBDA_INVOCATIONS_PER_EVENT
    assert all(isinstance(invocation.error, ReadTimeoutError) for invocation in invocations)
    sent = assert_every_attempt_sent_the_same_finding(transport)
    assert stored_ids(security_hub) == [sent["Id"]]


@pytest.mark.parametrize(
    "rejection",
    [FindingsRejected(with_details=True), FindingsRejected(with_details=False)],
    ids=str,
)
def test_a_rejected_finding_raises_without_a_botocore_retry_and_the_lambda_retry_stores_it(
    detector: Detector, security_hub: Any, transport: FaultyTransport, rejection: FindingsRejected
) -> None:
    invocations = deliver(detector, security_hub, transport, FINDING_EVENT, [rejection])

    assert [invocation.attempts for invocation in invocations] == [1, 1]  # an HTTP 200 is never retried by botocore
    assert_raised_by(invocations[0].error, rejection)
    assert invocations[1].error is None
    sent = assert_every_attempt_sent_the_same_finding(transport)
    assert stored_ids(security_hub) == [sent["Id"]]


def test_a_finding_rejected_in_every_invocation_raises_each_time_and_is_never_reported_stored(
    detector: Detector, security_hub: Any, transport: FaultyTransport
) -> None:
    invocations = deliver(detector, security_hub, transport, FINDING_EVENT, [FindingsRejected()] * 3)

    assert [invocation.attempts for invocation in invocations] == [1, 1, 1]
    assert all(isinstance(invocation.error, PublishError) for invocation in invocations)
    assert stored_findings(security_hub) == []


def test_every_sample_event_through_a_storm_of_faults_leaves_exactly_one_finding_per_finding_event(
    detector: Detector, security_hub: Any, transport: FaultyTransport
) -> None:
    """Per event: a first invocation whose six attempts all fail (one of them after Security Hub stored the finding),
    a second whose finding is rejected, and a third that succeeds."""
    storm: list[Fault] = [
        THROTTLED,
        TOO_MANY_REQUESTS,
        INTERNAL_ERROR,
        AnswerLost(READ_TIMEOUT),
        CONNECT_TIMEOUT,
        UNAVAILABLE,
        FindingsRejected(),
    ]
    expected_ids: set[str] = set()
    for case in SAMPLE_CASES:
        attempts_before = transport.attempts
        invocations = deliver(detector, security_hub, transport, case.event, storm)
        if case.expected_verdict != "finding":
            assert [(invocation.attempts, invocation.error) for invocation in invocations] == [(0, None)], case.file
            assert invocations[0].result is not None and invocations[0].result["verdict"] == case.expected_verdict
            continue
        assert [invocation.attempts for invocation in invocations] == [ATTEMPTS_PER_INVOCATION, 1, 1], case.file
        assert_raised_by(invocations[0].error, UNAVAILABLE)
        assert_raised_by(invocations[1].error, FindingsRejected())
        assert invocations[2].result is not None
        finding_id = invocations[2].result["findingId"]
        assert all(findings[0]["Id"] == finding_id for findings in transport.sent[attempts_before:]), case.file
        expected_ids.add(finding_id)

    ids = stored_ids(security_hub)
    assert sorted(ids) == sorted(expected_ids)
    assert len(ids) == sum(case.expected_verdict == "finding" for case in SAMPLE_CASES)


def test_an_invocation_that_cannot_store_its_finding_logs_the_finding_and_counts_the_failure(
    detector: Detector,
    transport: FaultyTransport,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    transport.plan([THROTTLED] * ATTEMPTS_PER_INVOCATION)
    with pytest.raises(ClientError):
        detector.lambda_handler(copy.deepcopy(FINDING_EVENT), FakeLambdaContext())

    [finding] = transport.sent[0]
    [error_line] = [line for line in json_log_lines(caplog) if line["level"] == "ERROR"]
    assert error_line["message"] == "Could not store finding; the event will be retried"
    assert error_line["findingId"] == finding["Id"]
    assert "ThrottlingException" in error_line["exception"]
    assert '"PublishFailures"' in capsys.readouterr().out
