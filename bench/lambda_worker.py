"""Warm invocations inside a Lambda-like process, for ``bench.run``; imports nothing but the standard library
until it loads the function.

Run as ``python3.13 -S -P bench/lambda_worker.py MODE`` with PYTHONPATH holding only the built function (as
/var/task does in Lambda), the job as JSON on stdin; the figures come back as one JSON object on stdout.

MODE is one of:

* ``warm-cpu``: the detector's handler and the baseline handler in one process, in alternating blocks; CPU time
  per invocation of each block.
* ``memory-detector`` / ``memory-baseline``: one handler alone in the process; resident memory after warm-up,
  at the end, and at its peak.

The baseline is the least any function doing this job runs: boto3's default Security Hub client sending the
finding, prebuilt, that the detector would send for the same event.

Security Hub answers locally: a ``before-send`` hook returns a canned HTTP 200, so botocore still validates,
serializes, signs, retries and parses every call, and nothing leaves the machine. What the handlers print
(Powertools logs, EMF metrics) is still written, to /dev/null instead of CloudWatch Logs.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Handler = Callable[[Any, Any], Any]

SECURITY_HUB_ANSWER = b'{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}'
security_hub_calls = 0
"""How many calls Security Hub has answered so far in this process."""


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handlers read."""

    invoked_function_arn: str
    function_name: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "5d9b0a6e-1f1c-4a42-9d8e-6b8c2f3a7e11"
    log_group_name: str = "/aws/lambda/lambda-crud-detector"
    log_stream_name: str = "2026/11/27/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


class _CannedBody:
    """The raw body of a canned HTTP response, in the shape botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        yield self._body


def answer_security_hub_locally() -> None:
    """Make every Security Hub client created from now on get a canned success instead of a network call."""
    import boto3
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    def canned_answer(request: Any, **kwargs: Any) -> AWSResponse:
        global security_hub_calls
        security_hub_calls += 1
        headers = HTTPHeaders.from_dict(
            {"Content-Type": "application/json", "x-amzn-RequestId": "0c5ae7b4-3c1e-4f1e-9d0a-7e0f5b1d2a3c"}
        )
        return AWSResponse(request.url, 200, headers, _CannedBody(SECURITY_HUB_ANSWER))

    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    # A before-send handler that returns a response is sent nothing: botocore uses that response instead.
    session.events.register("before-send.securityhub", canned_answer)  # type: ignore[arg-type]


def detector_handler() -> Handler:
    """The detector's handler, imported as Lambda imports it."""
    import app

    return app.lambda_handler


def baseline_handler() -> Handler:
    """A function that only sends the finding it is given through boto3's default Security Hub client."""
    import boto3

    client = boto3.client("securityhub")

    def send_prebuilt_finding(finding: dict[str, Any] | None, context: Any) -> dict[str, Any]:
        if finding is not None:
            client.batch_import_findings(Findings=[finding])
        return {"sent": finding is not None}

    return send_prebuilt_finding


def invoke(handler: Handler, payloads: Sequence[Any], context: LambdaContext, count: int) -> None:
    """``count`` invocations, cycling through ``payloads``."""
    for index in range(count):
        handler(payloads[index % len(payloads)], context)


def cpu_seconds_per_invocation(handler: Handler, payloads: Sequence[Any], context: LambdaContext, count: int) -> float:
    started = time.process_time()
    invoke(handler, payloads, context, count)
    return (time.process_time() - started) / count


def memory_status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB. Its peak (VmHWM) is this program's own: getrusage's maxrss would
    include the parent's resident set, inherited when the parent starts this process."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise LookupError(f"{field} is not in /proc/self/status")


def measure_warm_cpu(job: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Alternate blocks of the two handlers, the first block of each round switching sides every round."""
    subjects = {
        "detector": (detector_handler(), job["events"]),
        "baseline": (baseline_handler(), job["findings"]),
    }
    for handler, payloads in subjects.values():
        invoke(handler, payloads, context, job["warmup"])
    per_invocation: dict[str, list[float]] = {name: [] for name in subjects}
    calls = dict.fromkeys(subjects, 0)
    for round_number in range(job["rounds"]):
        order = list(subjects) if round_number % 2 == 0 else list(reversed(subjects))
        for name in order:
            handler, payloads = subjects[name]
            calls_before = security_hub_calls
            per_invocation[name].append(cpu_seconds_per_invocation(handler, payloads, context, job["block"]))
            calls[name] += security_hub_calls - calls_before
    return {"cpu_seconds_per_invocation": per_invocation, "security_hub_calls": calls}


def measure_memory(
    handler: Handler, payloads: Sequence[Any], job: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    invoke(handler, payloads, context, job["warmup"])
    gc.collect()
    after_warmup = memory_status_kib("VmRSS")
    invoke(handler, payloads, context, job["invocations"] - job["warmup"])
    gc.collect()
    return {
        "rss_after_warmup_kib": after_warmup,
        "rss_end_kib": memory_status_kib("VmRSS"),
        "peak_rss_kib": memory_status_kib("VmHWM"),
        "security_hub_calls": security_hub_calls,
    }


def run(mode: str, job: dict[str, Any]) -> dict[str, Any]:
    answer_security_hub_locally()
    context = LambdaContext(**job["context"])
    if mode == "warm-cpu":
        return measure_warm_cpu(job, context)
    if mode == "memory-detector":
        return measure_memory(detector_handler(), job["events"], job, context)
    if mode == "memory-baseline":
        return measure_memory(baseline_handler(), job["findings"], job, context)
    raise SystemExit(f"unknown mode {mode!r}")


def main() -> None:
    job = json.load(sys.stdin)
    # Keep the real stdout for the figures; everything the handlers print goes to /dev/null.
    figures_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    figures = run(sys.argv[1], job)
    sys.stdout.flush()
    os.write(figures_out, json.dumps(figures).encode("utf-8"))


if __name__ == "__main__":
    main()
