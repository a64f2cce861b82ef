"""A flood of denied calls against the detector, on simulated time: ``python -m bench.flood [--calls N]``.

One principal makes ``calls`` denied calls within ``seconds``, evenly spread, with one real finding (a successful
change by someone else) half-way through. Each is handed to the real handler in one warm execution environment,
in order of arrival, on a Security Hub that is as strict as AWS, rate included (tests/support/strict_securityhub.py: 10
calls per second, burst 30). Time is simulated: the clock is the arrival of each call, and botocore's back-off
after a throttled call advances it instead of sleeping, so that ten minutes of flood run in seconds and nothing
depends on the machine's speed. Processing itself is taken as instant.

Reported: the ``BatchImportFindings`` calls the flood cost (and how many were throttled), when the real finding
landed after it arrived, and what the same flood would cost without folding: one import per call, paced by the
same token bucket, with no retry overhead, which is a lower bound.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:DetectorFunction"
FLOODER = f"arn:aws:iam::{ACCOUNT}:role/ReadOnlyAuditor"
RESULT_MARKER = "bench-flood-result "


class SimulatedClock:
    """Seconds since ``start``; advanced by the scenario and by botocore's back-off, never by the machine."""

    def __init__(self, start: datetime) -> None:
        self.start, self.seconds = start, 0.0

    def __call__(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)


def cloudtrail_event(at: datetime, index: int, **detail: Any) -> dict[str, Any]:
    """An EventBridge-delivered Lambda call in the detector's account, stamped ``at`` (to the second, as CloudTrail)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "eventVersion": "1.09",
        "eventTime": stamp,
        "eventSource": "lambda.amazonaws.com",
        "eventName": "UpdateFunctionCode20150331v2",
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.99",
        "userAgent": "aws-cli/2.22.4",
        "requestParameters": {"functionName": "payments-api"},
        "responseElements": None,
        "eventID": f"00000000-0000-4000-8000-{index:012d}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        **detail,
    }
    return {
        "version": "0",
        "id": f"flood-{index}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": ACCOUNT,
        "time": stamp,
        "region": REGION,
        "resources": [],
        "detail": record,
    }


def denied_call(at: datetime, index: int) -> dict[str, Any]:
    """UpdateFunctionCode denied to a session of the flooding role (built from the API reference and the sample
    events/failed-call-access-denied.json)."""
    identity = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ReadOnlyAuditor/mallory",
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": FLOODER, "accountId": ACCOUNT}},
    }
    return cloudtrail_event(at, index, userIdentity=identity, errorCode="AccessDenied", errorMessage="denied")


def real_change(at: datetime, index: int, function_name: str = "payments-api") -> dict[str, Any]:
    """A successful change by an IAM user: a finding that must not wait behind the flood."""
    identity = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice", "accountId": ACCOUNT}
    return cloudtrail_event(at, index, userIdentity=identity, requestParameters={"functionName": function_name})


@dataclass
class FloodResult:
    calls: int
    seconds: float
    import_calls: int
    throttled_calls: int
    real_finding_delay_seconds: float | None
    """Simulated seconds from the real call to its finding's import, waiting behind the calls before it included;
    None if it never landed."""
    handler_errors: int
    folded: int
    stored_findings: int
    unfolded_import_calls: int
    unfolded_real_finding_delay_seconds: float


def unfolded_delay(calls: int, seconds: float, real_index: int) -> float:
    """When the real finding would land with one import per call: the token bucket paces every import, in order."""
    from tests.support.strict_securityhub import IMPORT_BURST, IMPORT_RATE_PER_SECOND

    tokens, then, done = float(IMPORT_BURST), 0.0, 0.0
    for index in range(calls + 1):
        arrival = index * seconds / (calls + 1)
        at = max(arrival, done)
        tokens = min(float(IMPORT_BURST), tokens + (at - then) * IMPORT_RATE_PER_SECOND)
        if tokens < 1:
            at += (1 - tokens) / IMPORT_RATE_PER_SECOND
            tokens = 1.0
        tokens, then, done = tokens - 1, at, at
        if index == real_index:
            return at - arrival
    raise ValueError("real_index is past the last call")


@contextmanager
def simulated_botocore_sleep(clock: SimulatedClock) -> Iterator[None]:
    """botocore sleeps between retries in ``botocore.endpoint``; there, the sleep advances the simulated clock."""
    import botocore.endpoint

    endpoint: Any = botocore.endpoint
    real_time = endpoint.time
    endpoint.time = SimpleNamespace(sleep=clock.sleep, time=real_time.time)
    try:
        yield
    finally:
        endpoint.time = real_time


def run_flood(
    detector: Any, context: Any, calls: int, seconds: float, real_function: str = "payments-api"
) -> FloodResult:
    """The flood through ``detector`` (an ``app.Detector``, on a strict mocked Security Hub); the real finding is a
    change to ``real_function``."""
    import boto3

    from tests.support import strict_securityhub

    # Start in the past, at the start of a fold window, so that the flood stays in as few windows as it must.
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    clock = SimulatedClock(start.replace(minute=0, second=0, microsecond=0))
    real_index = calls // 2
    real_delay, errors = None, 0
    original_clock = detector.clock
    detector.clock = clock.now
    try:
        with strict_securityhub.rate_limited(clock) as rate, simulated_botocore_sleep(clock):
            for index in range(calls + 1):
                # Called at ``arrival``, and handled then, or once the environment is done with the calls before.
                arrival = index * seconds / (calls + 1)
                clock.seconds = max(clock.seconds, arrival)
                at = clock.start + timedelta(seconds=arrival)
                event = real_change(at, index, real_function) if index == real_index else denied_call(at, index)
                try:
                    detector.lambda_handler(event, context)
                except Exception:
                    errors += 1
                    continue
                if index == real_index:
                    real_delay = clock.seconds - arrival
            import_calls, throttled = sum(rate.calls.values()), sum(rate.throttled.values())
    finally:
        detector.clock = original_clock
    client = boto3.client("securityhub", region_name=REGION)
    stored = sum(len(page["Findings"]) for page in client.get_paginator("get_findings").paginate())
    folded = sum(fold.count for fold in detector.folder.folds())
    return FloodResult(
        calls=calls,
        seconds=seconds,
        import_calls=import_calls,
        throttled_calls=throttled,
        real_finding_delay_seconds=real_delay,
        handler_errors=errors,
        folded=folded,
        stored_findings=stored,
        unfolded_import_calls=calls + 1,
        unfolded_real_finding_delay_seconds=unfolded_delay(calls, seconds, real_index),
    )


def _detector_in_this_process() -> tuple[Any, Any]:
    """A detector as a new container builds it, on a strict mocked Security Hub, quiet on stdout."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_LAMBDA_FUNCTION_NAME="DetectorFunction",
        POWERTOOLS_LOG_LEVEL="ERROR",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    sys.path.insert(0, str(PROJECT_ROOT / "functions" / "detector"))
    from publisher import ENDPOINT_VARIABLES, INTERCEPTION_VARIABLES

    # The machine's own proxy, CA bundle or endpoint would make the handler refuse every event, or leave moto.
    for variable in (*ENDPOINT_VARIABLES, *INTERCEPTION_VARIABLES, "ALLOWLIST_PATTERNS", "AWS_SAM_LOCAL"):
        os.environ.pop(variable, None)
    from tests.support import strict_securityhub

    strict_securityhub.install()
    from app import Detector

    context = SimpleNamespace(
        invoked_function_arn=FUNCTION_ARN,
        function_name="DetectorFunction",
        function_version="$LATEST",
        memory_limit_in_mb=256,
        aws_request_id="bench-flood",
        log_group_name="/aws/lambda/DetectorFunction",
        log_stream_name="2026/12/06/[$LATEST]benchflood",
        get_remaining_time_in_millis=lambda: 30_000,
    )
    return Detector(os.environ), context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="denied calls (default 10,000)")
    parser.add_argument("--seconds", type=float, default=600.0, help="over how long (default 600)")
    arguments = parser.parse_args(argv)
    from moto import mock_aws

    with mock_aws():
        detector, context = _detector_in_this_process()
        result = run_flood(detector, copy.copy(context), arguments.calls, arguments.seconds)
    print(RESULT_MARKER + json.dumps(asdict(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
