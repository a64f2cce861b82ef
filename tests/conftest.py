"""Shared fixtures: an offline AWS environment, a Lambda context, and the handler on a mocked Security Hub."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Set before anything creates a boto3 client: no real credentials, no real endpoint, a fixed Region.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_SERVICE_NAME="lambda-crud-detector",
    POWERTOOLS_METRICS_NAMESPACE="LambdaCrudDetector",
    AWS_LAMBDA_FUNCTION_NAME="DetectorFunction",  # reserved: Lambda sets it to the function's name
)
from publisher import INTERCEPTION_VARIABLES  # noqa: E402

# A deployed detector refuses to run with a proxy or another certificate authority configured, and no test reaches
# a real endpoint, so none of this machine's may leak in.
for variable in (
    *INTERCEPTION_VARIABLES,
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECURITYHUB",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONFIG_FILE",
    "AWS_PROFILE",
    "AWS_SAM_LOCAL",
    "ALLOWLIST_PATTERNS",
    "TRUSTED_LAYER_ACCOUNTS",
    "BEHAVIOUR_SEVERITIES",
    "ALLOWLIST_HIDES_PUBLIC",
    "CANARY_FUNCTION_NAME",
    "CANARY_ROLE_ARN",
):
    os.environ.pop(variable, None)
# The handler starts with the settings the sample events' expected verdicts hold under, as the demo does.
from tests.support.cases import sample_settings  # noqa: E402

os.environ.update(sample_settings())

from rule import RuleSettings  # noqa: E402

SAMPLE_RULE_SETTINGS = RuleSettings.from_environment(os.environ)
"""The rule's settings under which every sample event gets its expected verdict."""

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402  (imported before the handler so its client is mockable)

from app import Detector, logger  # noqa: E402
from tests.support import strict_securityhub  # noqa: E402

# Every mocked Security Hub in the tests judges imports as AWS does: limits, accounts, UpdatedAt.
strict_securityhub.install()

DETECTOR_ACCOUNT = "123456789012"
DETECTOR_FUNCTION_ARN = f"arn:aws:lambda:us-east-1:{DETECTOR_ACCOUNT}:function:DetectorFunction"


@dataclass
class FakeLambdaContext:
    invoked_function_arn: str = DETECTOR_FUNCTION_ARN
    function_name: str = "DetectorFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "5d9b0a6e-1f1c-4a42-9d8e-6b8c2f3a7e11"
    log_group_name: str = "/aws/lambda/DetectorFunction"
    log_stream_name: str = "2026/11/27/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def security_hub() -> Iterator[Any]:
    """A mocked Security Hub as strict as the real one (tests/support/strict_securityhub.py), and a client to read it back."""
    with mock_aws():
        yield boto3.client("securityhub", region_name="us-east-1")


def new_detector() -> Detector:
    """A detector as a new container builds it, from the environment as it is now."""
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.reset_cold_start_flag()  # Powertools keeps it per process; a new container starts cold
    return Detector(os.environ)


@pytest.fixture
def detector(security_hub: Any) -> Detector:
    """The detector as a new container builds it, talking to the mocked Security Hub."""
    return new_detector()


def stored_findings(client: Any) -> list[dict[str, Any]]:
    """Every finding Security Hub holds, across pages."""
    findings: list[dict[str, Any]] = []
    for page in client.get_paginator("get_findings").paginate():
        findings += page["Findings"]
    return findings


def json_log_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The handler's log lines as Lambda would record them, formatted by its own Powertools formatter."""
    formatter = logger.registered_formatter
    return [json.loads(formatter.format(record)) for record in caplog.records if record.name == logger.name]
