"""Backtest's speed on local gzip log files against the standard library merely reading them.

A synthetic trail that looks like a real one (mostly other services, about 1 % Lambda writes, some Lambda reads,
in CloudTrail's folder layout, 1,000 records per gzip file) is judged by backtest, in turns with a baseline that
only decompresses and parses every file (``gzip`` + ``json.loads``, one process). The figure is the median of
the paired wall-time ratios. Before timing, backtest's counts are checked against a plain judgement of the same
records (the standard library's parser, one record after another): speed must not change a single verdict.
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT = "111122223333"
REGION = "eu-west-1"
RECORDS_PER_FILE = 1_000

# Other services' management calls: (eventSource, eventName, readOnly, weight per 1,000 records).
OTHER_CALLS: tuple[tuple[str, str, bool, int], ...] = (
    ("sts.amazonaws.com", "AssumeRole", True, 190),
    ("kms.amazonaws.com", "Decrypt", True, 170),
    ("ec2.amazonaws.com", "DescribeInstances", True, 120),
    ("s3.amazonaws.com", "GetBucketAcl", True, 90),
    ("ssm.amazonaws.com", "GetParameter", True, 80),
    ("logs.amazonaws.com", "CreateLogStream", False, 70),
    ("dynamodb.amazonaws.com", "DescribeTable", True, 60),
    ("monitoring.amazonaws.com", "PutMetricAlarm", False, 40),
    ("iam.amazonaws.com", "GetRole", True, 40),
    ("ecr.amazonaws.com", "GetAuthorizationToken", True, 35),
    ("cloudformation.amazonaws.com", "DescribeStacks", True, 25),
)
LAMBDA_READS: tuple[str, ...] = (
    "GetFunction20150331v2",
    "ListFunctions20150331",
    "GetPolicy20150331v2",
    "GetFunctionConfiguration20150331v2",
    "ListVersionsByFunction20150331",
    "ListAliases20150331",
)
LAMBDA_WRITES: tuple[str, ...] = (
    "UpdateFunctionCode20150331v2",
    "UpdateFunctionConfiguration20150331v2",
    "PublishVersion20150331",
    "UpdateAlias20150331",
    "CreateFunction20150331",
    "AddPermission20150331v2",
    "DeleteFunction20150331",
    "CreateEventSourceMapping20150331",
    "PutFunctionConcurrency20171031",
)
USER_AGENT = (
    "aws-cli/2.22.1 md/awscrt#0.23.4 ua/2.1 os/linux#6.8 md/arch#x86_64 lang/python#3.12.8 cfg/retry-mode#standard"
)
LAMBDA_READ_SHARE = 0.03
LAMBDA_WRITE_SHARE = 0.01


def _assumed_role(role: str, session: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEID{len(role):04d}:{session}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEKEY000000",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEID",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                "accountId": ACCOUNT,
                "userName": role,
            },
            "attributes": {"creationDate": "2026-11-20T08:01:02Z", "mfaAuthenticated": "false"},
        },
        **extra,
    }


CALLERS: tuple[dict[str, Any], ...] = (
    _assumed_role("DeployRole", "codebuild-payments-api"),
    _assumed_role("DeployRole", "cfn-deploy", invokedBy="cloudformation.amazonaws.com"),
    _assumed_role("AWSReservedSSO_AdministratorAccess_0123456789abcdef", "bob@example.com"),
    _assumed_role("DevSandboxRole", "xDeployRole"),
    {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAEXAMPLEKEY000000",
        "userName": "alice",
    },
)
CALLER_WEIGHTS = (60, 20, 10, 5, 5)


def synthetic_record(chooser: random.Random, index: int, day: int) -> dict[str, Any]:
    """One CloudTrail record: another service's call most of the time, sometimes a Lambda read or write."""
    draw = chooser.random()
    if draw < LAMBDA_WRITE_SHARE:
        source, name, read_only = "lambda.amazonaws.com", chooser.choice(LAMBDA_WRITES), False
    elif draw < LAMBDA_WRITE_SHARE + LAMBDA_READ_SHARE:
        source, name, read_only = "lambda.amazonaws.com", chooser.choice(LAMBDA_READS), True
    else:
        source, name, read_only, _ = chooser.choices(OTHER_CALLS, weights=[call[3] for call in OTHER_CALLS])[0]
    identity = chooser.choices(CALLERS, weights=CALLER_WEIGHTS)[0]
    second = index % 86_400
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": f"2026-11-{day:02d}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": identity.get("invokedBy") or f"198.51.100.{index % 250}",
        "userAgent": USER_AGENT,
        "requestParameters": {"functionName": f"payments-{index % 40}", "qualifier": "live", "roleSessionName": None}
        if source == "lambda.amazonaws.com"
        else {"resourceName": f"resource-{index % 997}", "maxResults": 50},
        "responseElements": None,
        "requestID": f"{index:08x}-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        "eventID": f"{index:08x}-7e6d-4c5b-9a8f-7e6d5c4b3a29",
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{REGION}.amazonaws.com",
        },
    }


def write_synthetic_trail(root: Path, records: int, seed: int = 20261201) -> list[Path]:
    """``records`` records in gzip log files laid out as a trail writes them, the same for a given seed."""
    chooser = random.Random(seed)
    paths = []
    for number, start in enumerate(range(0, records, RECORDS_PER_FILE)):
        day = 1 + number % 28
        folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / "2026" / "11" / f"{day:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        batch = [
            synthetic_record(chooser, index, day) for index in range(start, min(records, start + RECORDS_PER_FILE))
        ]
        path = folder / f"{ACCOUNT}_CloudTrail_{REGION}_202611{day:02d}T{number % 24:02d}00Z_{number:016x}.json.gz"
        path.write_bytes(gzip.compress(json.dumps({"Records": batch}).encode(), compresslevel=6))
        paths.append(path)
    return paths


def baseline_read(paths: list[Path]) -> int:
    """The standard library merely reading the files: decompress and parse each, one process."""
    records = 0
    for path in paths:
        records += len(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    return records


def plain_counts(paths: list[Path]) -> dict[str, int]:
    """The verdict counts of a plain judgement: the standard library's parser, every record in turn."""
    from lambda_crud_detector.trail_judge import Judge, JudgeConfig, Judgement

    judge, total = Judge(JudgeConfig()), Judgement()
    for path in paths:
        total.add(judge.records(json.loads(gzip.decompress(path.read_bytes()))["Records"], str(path)))
    return dict(total.counts)


def backtest_counts(root: Path, workers: int) -> dict[str, int]:
    """Backtest as ``--path ROOT`` runs it: its counts."""
    from lambda_crud_detector.backtest import judge_local
    from lambda_crud_detector.trail_judge import JudgeConfig

    run = judge_local(root, JudgeConfig(), workers, False, lambda judgement: None)
    return dict(run.judgement.counts)


@dataclass(frozen=True)
class BacktestSpeed:
    records: int
    files: int
    workers: int
    counts: Mapping[str, int]
    counts_match: bool
    subject: tuple[float, ...]
    """Backtest's wall seconds per repetition."""
    baseline: tuple[float, ...]
    """gzip + json.loads wall seconds, taken in turns with the subject."""

    @property
    def ratio(self) -> float:
        return statistics.median(s / b for s, b in zip(self.subject, self.baseline, strict=True))


def measure(records: int, repetitions: int, workers: int | None = None, seed: int = 20261201) -> BacktestSpeed:
    """Backtest and the baseline in turns on one synthetic trail; ``workers`` defaults to backtest's own default."""
    from lambda_crud_detector.backtest import DEFAULT_WORKERS

    workers = workers or DEFAULT_WORKERS
    with tempfile.TemporaryDirectory(prefix="backtest-bench-") as scratch:
        root = Path(scratch)
        paths = write_synthetic_trail(root, records, seed)
        counts = backtest_counts(root, workers)
        matches = counts == plain_counts(paths) and sum(counts.values()) == records
        subject, baseline = in_turns(lambda: backtest_counts(root, workers), lambda: baseline_read(paths), repetitions)
    return BacktestSpeed(records, len(paths), workers, counts, matches, subject, baseline)


def in_turns(
    subject: Callable[[], Any], baseline: Callable[[], Any], repetitions: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Wall seconds of ``subject`` and ``baseline`` run in turns, the first to run alternating, so that a machine
    getting slower or faster weighs on both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for repetition in range(repetitions):
        turns = [(samples[0], subject), (samples[1], baseline)]
        for taken, action in turns if repetition % 2 == 0 else reversed(turns):
            started = time.perf_counter()
            action()
            taken.append(time.perf_counter() - started)
    return tuple(samples[0]), tuple(samples[1])


def details(speed: BacktestSpeed) -> list[str]:
    counts = ", ".join(f"{kind} {count:,}" for kind, count in speed.counts.items())
    return [
        f"Backtest: {speed.records:,} synthetic records in {speed.files} gzip files ({LAMBDA_WRITE_SHARE:.0%} Lambda"
        f" writes, {LAMBDA_READ_SHARE:.0%} Lambda reads), {speed.workers} worker processes, {len(speed.subject)}"
        f" alternating repetitions; counts {counts}; equal to a plain record-by-record judgement:"
        f" {'yes' if speed.counts_match else 'NO'}",
        f"  backtest s: {', '.join(f'{value:.2f}' for value in speed.subject)}",
        f"  gzip + json.loads s: {', '.join(f'{value:.2f}' for value in speed.baseline)}",
    ]
