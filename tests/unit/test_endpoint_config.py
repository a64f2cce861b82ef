"""Security Hub's endpoint: a deployed detector uses the real one whatever its configuration says; only a local run
(``sam local invoke``, or the emulator behind ``make demo``) may be pointed elsewhere.

The template declares AWS_ENDPOINT_URL_SECURITYHUB empty so that ``sam local invoke --env-vars`` may set it. No
request is sent: each client's resolved endpoint is inspected.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from app import ConfigurationTamperedError, Detector
from publisher import EMULATOR_ACCOUNT_ID, INTERCEPTION_VARIABLES, runs_locally, security_hub_client
from tests.conftest import DETECTOR_FUNCTION_ARN, FakeLambdaContext, json_log_lines, new_detector
from tests.support.cases import load_cases
from tests.support.cloudformation import FUNCTION_ID, TEMPLATE_PATH, load_template

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SECURITYHUB"
ELSEWHERE = "http://findings-sink.example:8080"
EMULATOR_FUNCTION_ARN = f"arn:aws:lambda:us-east-1:{EMULATOR_ACCOUNT_ID}:function:DetectorFunction"


@pytest.fixture(autouse=True)
def _offline_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Nothing from this machine may decide what these tests observe: each sets what it needs.
    for variable in (
        ENDPOINT_VARIABLE,
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_PROFILE",
        *INTERCEPTION_VARIABLES,
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    # boto3's default session reads the config file once; each test starts one that reads it again.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def real_endpoint(region: str) -> str:
    return f"https://securityhub.{region}.amazonaws.com"


def endpoint_of(local: bool) -> str:
    """The endpoint of the client the detector builds, deployed or local."""
    return security_hub_client(local=local).meta.endpoint_url


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config"
    path.write_text(text, encoding="utf-8")
    return str(path)


def in_service_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE, ELSEWHERE)


def in_global_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", ELSEWHERE)


def in_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", config_file(tmp_path, f"[default]\nendpoint_url = {ELSEWHERE}\n"))


def in_config_file_services_section(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = f"[default]\nservices = sink\n\n[services sink]\nsecurityhub =\n  endpoint_url = {ELSEWHERE}\n"
    monkeypatch.setenv("AWS_CONFIG_FILE", config_file(tmp_path, text))


OVERRIDES = [in_service_variable, in_global_variable, in_config_file, in_config_file_services_section]


def test_template_declares_the_variable_empty() -> None:
    variables = load_template(TEMPLATE_PATH)["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    assert variables[ENDPOINT_VARIABLE] == ""


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "ap-southeast-2"])
@pytest.mark.parametrize("local", [False, True], ids=["deployed", "local"])
def test_empty_value_means_the_real_endpoint(monkeypatch: pytest.MonkeyPatch, region: str, local: bool) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv(ENDPOINT_VARIABLE, "")
    assert endpoint_of(local) == real_endpoint(region)


@pytest.mark.parametrize("override", OVERRIDES)
def test_a_deployed_client_ignores_every_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, override: Callable[[pytest.MonkeyPatch, Path], None]
) -> None:
    override(monkeypatch, tmp_path)
    assert endpoint_of(local=False) == real_endpoint("us-east-1")
    assert endpoint_of(local=True) == ELSEWHERE  # the control: the override is one botocore would follow


@pytest.mark.parametrize(
    ("sam_local", "function_arn", "expected"),
    [
        ("true", EMULATOR_FUNCTION_ARN, True),
        # AWS_SAM_LOCAL is an ordinary variable: set on a deployed function, it changes nothing.
        ("true", DETECTOR_FUNCTION_ARN, False),
        (None, EMULATOR_FUNCTION_ARN, False),
        ("TRUE", EMULATOR_FUNCTION_ARN, False),
        ("true", f"arn:aws:lambda:us-east-1:{EMULATOR_ACCOUNT_ID}", True),
        ("true", "not an arn", False),
        ("true", "", False),
    ],
)
def test_only_the_emulator_under_sam_local_counts_as_local(
    sam_local: str | None, function_arn: str, expected: bool
) -> None:
    environ = {} if sam_local is None else {"AWS_SAM_LOCAL": sam_local}
    assert runs_locally(function_arn, environ) is expected


# --- The handler: chosen on the first invocation -----------------------------------------------------------------

IGNORED_EVENT = next(case.event for case in load_cases() if case.expected_verdict == "ignored")


@pytest.fixture
def detector_started(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Detector]:
    """The handler as a new container starts it, with the variables given."""

    def start_with(**variables: str) -> Detector:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return new_detector()

    return start_with


def warnings_logged(caplog: pytest.LogCaptureFixture, detector: Detector) -> list[dict[str, Any]]:
    return [line for line in json_log_lines(caplog) if line["level"] == "WARNING"]


def test_a_deployed_detector_sends_to_the_real_endpoint_whatever_it_is_told_and_warns_once(
    detector_started: Callable[..., Detector], caplog: pytest.LogCaptureFixture
) -> None:
    detector = detector_started(AWS_SAM_LOCAL="true", AWS_ENDPOINT_URL=ELSEWHERE, **{ENDPOINT_VARIABLE: ELSEWHERE})
    for _ in range(2):
        detector.lambda_handler(copy.deepcopy(IGNORED_EVENT), FakeLambdaContext())
    assert detector.deployment(FakeLambdaContext()).publisher._client.meta.endpoint_url == real_endpoint("us-east-1")
    [warning] = warnings_logged(caplog, detector)
    assert warning["ignoredVariables"] == [ENDPOINT_VARIABLE, "AWS_ENDPOINT_URL"]


def test_a_local_detector_sends_to_the_endpoint_it_is_given(
    detector_started: Callable[..., Detector], caplog: pytest.LogCaptureFixture
) -> None:
    detector = detector_started(AWS_SAM_LOCAL="true", AWS_ENDPOINT_URL_SECURITYHUB=ELSEWHERE)
    emulated = FakeLambdaContext(invoked_function_arn=EMULATOR_FUNCTION_ARN)
    detector.lambda_handler(copy.deepcopy(IGNORED_EVENT), emulated)
    assert detector.deployment(emulated).publisher._client.meta.endpoint_url == ELSEWHERE
    assert warnings_logged(caplog, detector) == []


def test_without_an_override_nothing_is_logged_about_endpoints(
    detector_started: Callable[..., Detector], caplog: pytest.LogCaptureFixture
) -> None:
    detector = detector_started(AWS_ENDPOINT_URL_SECURITYHUB="")
    detector.lambda_handler(copy.deepcopy(IGNORED_EVENT), FakeLambdaContext())
    assert detector.deployment(FakeLambdaContext()).publisher._client.meta.endpoint_url == real_endpoint("us-east-1")
    assert warnings_logged(caplog, detector) == []


def test_a_deployed_detector_in_source_mode_assumes_roles_and_imports_on_the_real_endpoints(
    detector_started: Callable[..., Detector], caplog: pytest.LogCaptureFixture
) -> None:
    """The findings role's credentials come from STS, and findings go to other accounts' Security Hub: an endpoint
    override on either would hand an attacker the credentials or the findings."""
    overrides = {"AWS_ENDPOINT_URL": ELSEWHERE, "AWS_ENDPOINT_URL_STS": ELSEWHERE, ENDPOINT_VARIABLE: ELSEWHERE}
    detector = detector_started(FINDINGS_ACCOUNT="source", FINDINGS_ROLE_NAME="Findings", **overrides)
    detector.lambda_handler(copy.deepcopy(IGNORED_EVENT), FakeLambdaContext())
    publishers = detector.deployment(FakeLambdaContext()).member_publishers
    sts_client = publishers._assume_role.__self__
    member_client = publishers._create_client(aws_access_key_id="a", aws_secret_access_key="b", aws_session_token="c")
    assert sts_client.meta.endpoint_url == "https://sts.us-east-1.amazonaws.com"
    assert member_client.meta.endpoint_url == real_endpoint("us-east-1")
    [warning] = warnings_logged(caplog, detector)
    assert set(warning["ignoredVariables"]) == set(overrides)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "AWS_CA_BUNDLE"])
def test_a_deployed_detector_whose_traffic_could_be_intercepted_judges_nothing_and_says_why(
    detector_started: Callable[..., Detector], caplog: pytest.LogCaptureFixture, variable: str
) -> None:
    detector = detector_started(**{variable: "http://interceptor.example:3128"})
    for _ in range(2):  # every event, not only the first of the container
        with pytest.raises(ConfigurationTamperedError, match=variable):
            detector.lambda_handler(copy.deepcopy(IGNORED_EVENT), FakeLambdaContext())
    errors = [line for line in json_log_lines(caplog) if line["level"] == "ERROR"]
    assert len(errors) == 2 and all(line["interceptionVariables"] == [variable] for line in errors)


def test_a_local_detector_may_run_behind_a_proxy(detector_started: Callable[..., Detector]) -> None:
    detector = detector_started(AWS_SAM_LOCAL="true", HTTPS_PROXY="http://corporate-proxy.example:3128")
    answer = detector.lambda_handler(
        copy.deepcopy(IGNORED_EVENT), FakeLambdaContext(invoked_function_arn=EMULATOR_FUNCTION_ARN)
    )
    assert answer["verdict"] == "ignored"
