"""The function built by ``sam build``, run as Lambda runs it (the runtime interface emulator and awslambdaric, see
``tests.support.local_runtime``), against a local Security Hub (moto's server): every sample event gets its verdict, and
Security Hub then holds exactly the findings the function reported, in the account the function runs in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.asff import assert_valid_finding
from tests.conftest import stored_findings
from tests.support import local_runtime
from tests.support.cases import INVALID, PROJECT_ROOT, Case, load_cases, sample_settings
from tests.support.local_runtime import (
    BUILD_DIR,
    EMULATOR_FUNCTION_ARN,
    FUNCTION_ID,
    LOOPBACK,
    Invocation,
    LocalFunction,
    LocalRuntimeError,
    LocalSecurityHub,
    built_function,
    detector_environment,
    detector_function,
    local_function,
    local_security_hub,
    runtime_client_dir,
)

pytestmark = [
    pytest.mark.integration,
    # The SAM CLI, reading the built template, calls parts of itself and of samtranslator that are deprecated.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:samtranslator"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:samcli"),
]

CASES = load_cases()
FINDING_CASES = [case for case in CASES if case.expected_verdict == "finding"]
BUILD_INPUTS = [
    PROJECT_ROOT / "template.yaml",
    PROJECT_ROOT / "functions" / "detector" / "requirements.txt",
    *sorted((PROJECT_ROOT / "functions" / "detector").glob("*.py")),
]

# A handler that reports what it sees of its process and its context.
PROBE_HANDLER = """
import importlib.util, os, sys

def handler(event, context):
    return {
        "invoked_function_arn": context.invoked_function_arn,
        "no_site": sys.flags.no_site,
        "path": sys.path,
        "cwd": os.getcwd(),
        "boto3_importable": importlib.util.find_spec("boto3") is not None,
        "echo": event,
    }
"""


# Fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make build``'s output when it is newer than every input (make's own rule), else a fresh ``sam build``."""
    built = BUILD_DIR / FUNCTION_ID / "app.py"
    if built.is_file() and all(source.stat().st_mtime <= built.stat().st_mtime for source in BUILD_INPUTS):
        return BUILD_DIR
    fresh = tmp_path_factory.mktemp("sam") / "build"
    sam = Path(sys.executable).parent / "sam"
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{sam.parent}{os.pathsep}{os.environ['PATH']}"}
    completed = subprocess.run(
        [str(sam), "build", "--template-file", "template.yaml", "--build-dir", str(fresh)],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return fresh


@pytest.fixture(scope="module")
def local_hub() -> Iterator[LocalSecurityHub]:
    with local_security_hub() as security_hub:
        yield security_hub


@pytest.fixture(scope="module")
def detector(build_dir: Path, local_hub: LocalSecurityHub) -> Iterator[LocalFunction]:
    with detector_function(local_hub.endpoint_url, build_dir, sample_settings()) as function:
        yield function


@pytest.fixture(scope="module")
def invocations(detector: LocalFunction) -> dict[str, Invocation]:
    """Every sample event, invoked once, in the order of the expectations file."""
    return {case.file: detector.invoke(case.event) for case in CASES}


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    code = tmp_path / "probe"
    code.mkdir()
    (code / "probe.py").write_text(PROBE_HANDLER, encoding="utf-8")
    return code


def probe_function(code: Path) -> AbstractContextManager[LocalFunction]:
    """The probe under the emulator, with the variables the emulator needs and the same path rules as the detector."""
    environment = {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_ID,
        "PYTHONPATH": os.pathsep.join([str(code), str(runtime_client_dir())]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return local_function(code, "probe.handler", environment, timeout_seconds=30)


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def logs_of(invocation: Invocation) -> str:
    return "\n".join(invocation.logs)


# The emulator ------------------------------------------------------------------------------------------------


def test_harness_emulator_gives_the_function_arn_the_local_security_hub_is_set_up_for(probe_dir: Path) -> None:
    with probe_function(probe_dir) as probe:
        seen = probe.invoke({"hello": "probe"}).payload
    assert seen["invoked_function_arn"] == EMULATOR_FUNCTION_ARN
    assert seen["echo"] == {"hello": "probe"}
    with local_security_hub() as security_hub:
        assert security_hub.account_id == account_of(EMULATOR_FUNCTION_ARN)


def test_harness_function_process_sees_only_its_code_and_the_runtime_client(probe_dir: Path) -> None:
    with probe_function(probe_dir) as probe:
        seen = probe.invoke({}).payload
    assert seen["no_site"] == 1
    assert seen["cwd"] == str(probe_dir)
    assert seen["path"][:2] == [str(probe_dir), str(runtime_client_dir())]
    assert [entry for entry in seen["path"] if "site-packages" in entry or ".venv" in entry] == []
    assert seen["boto3_importable"] is False  # so the detector's boto3 can only come from its artifact


def test_harness_two_functions_run_side_by_side_on_their_own_ports(probe_dir: Path, detector: LocalFunction) -> None:
    with probe_function(probe_dir) as probe:
        assert probe.endpoint_url != detector.endpoint_url
        assert probe.invoke({"n": 1}).payload["echo"] == {"n": 1}
        assert detector.invoke(FINDING_CASES[0].event).error is None


def test_harness_emulator_starts_again_on_other_ports_when_one_is_taken(
    probe_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind((LOOPBACK, 0))  # bound, not listening: connections are refused, and the emulator cannot bind it
    choices = iter([[taken.getsockname()[1], local_runtime._free_ports(1)[0]]])
    real_free_ports = local_runtime._free_ports
    monkeypatch.setattr(local_runtime, "_free_ports", lambda count: next(choices, None) or real_free_ports(count))
    with taken, probe_function(probe_dir) as probe:
        assert probe.endpoint_url != f"http://{LOOPBACK}:{taken.getsockname()[1]}"
        assert probe.invoke({"n": 2}).payload["echo"] == {"n": 2}


def test_harness_services_stop_even_when_their_block_fails(probe_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="in the middle"):
        with local_security_hub() as security_hub, probe_function(probe_dir) as probe:
            probe.invoke({})  # the runtime starts on the first invocation: it must stop too
            processes = [security_hub.process, probe.process]
            ports = [int(url.rsplit(":", 1)[1]) for url in (security_hub.endpoint_url, probe.endpoint_url)]
            raise RuntimeError("failure in the middle")
    assert [process.running for process in processes] == [False, False]
    for process in processes:
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # nothing left in its process group, the runtime included
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection((LOOPBACK, port), timeout=1).close()


def test_harness_detector_environment_is_the_templates_pointed_at_the_local_security_hub(build_dir: Path) -> None:
    function = built_function(build_dir)
    environment = detector_environment(function, "http://127.0.0.1:1234", {"ALLOWLIST_PATTERNS": "*Ops"})
    code = Path(function.codeuri)
    assert environment["PYTHONPATH"].split(os.pathsep) == [str(code), str(runtime_client_dir())]
    assert environment["AWS_ENDPOINT_URL_SECURITYHUB"] == "http://127.0.0.1:1234"
    assert environment["AWS_SAM_LOCAL"] == "true"  # with the emulator's account, what lets it honour that endpoint
    assert environment["ALLOWLIST_PATTERNS"] == "*Ops"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == FUNCTION_ID
    # The template's defaults and settings, resolved by the SAM CLI as `sam local invoke` does.
    assert environment["POWERTOOLS_SERVICE_NAME"] == "lambda-crud-detector"
    assert environment["POWERTOOLS_LOG_LEVEL"] == environment["AWS_LAMBDA_LOG_LEVEL"] == "INFO"
    assert environment["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert environment["BEHAVIOUR_SEVERITIES"] == "" and environment["ALLOWLIST_HIDES_PUBLIC"] == "false"
    assert environment["AWS_CONFIG_FILE"] == environment["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


# The detector ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_each_event_gets_its_expected_verdict(case: Case, invocations: dict[str, Invocation]) -> None:
    invocation = invocations[case.file]
    if case.expected_verdict == INVALID:
        assert invocation.error is not None, invocation.payload
        assert invocation.error.error_type == "InvalidEventError", logs_of(invocation)
        return
    assert invocation.error is None, f"{invocation.error}\n{logs_of(invocation)}"
    assert invocation.payload["verdict"] == case.expected_verdict, invocation.payload["reason"]
    assert (invocation.payload["findingId"] is not None) == (case.expected_verdict == "finding")


def test_invalid_event_fails_inside_the_built_artifact(build_dir: Path, invocations: dict[str, Invocation]) -> None:
    (invalid,) = [invocations[case.file] for case in CASES if case.expected_verdict == INVALID]
    assert invalid.error is not None
    code = str(built_function(build_dir).codeuri)
    frames = [frame for frame in invalid.error.stack_trace if frame.strip().startswith("File ")]
    assert frames and all(f'File "{code}/' in frame for frame in frames), frames


def test_logs_of_each_invocation_are_captured(invocations: dict[str, Invocation]) -> None:
    for case in CASES:
        logs = invocations[case.file].logs
        assert logs[0].startswith("START RequestId:") and logs[-1].startswith("REPORT RequestId:"), case.file
    spoofed = logs_of(invocations["spoofed-deployrole-session-name.json"])
    assert '"message":"Verdict: finding"' in spoofed and "DevSandboxRole" in spoofed


def test_security_hub_holds_exactly_the_reported_findings_in_the_functions_account(
    invocations: dict[str, Invocation], local_hub: LocalSecurityHub
) -> None:
    reported = {invocations[case.file].payload["findingId"] for case in FINDING_CASES}
    findings = stored_findings(local_hub.client())
    assert sorted(finding["Id"] for finding in findings) == sorted(reported)
    account = account_of(EMULATOR_FUNCTION_ARN)
    for finding in findings:
        assert_valid_finding(finding)
        assert finding["AwsAccountId"] == account
        assert finding["ProductArn"] == f"arn:aws:securityhub:us-east-1:{account}:product/{account}/default"


def test_the_same_event_three_times_leaves_one_finding(
    detector: LocalFunction, local_hub: LocalSecurityHub, invocations: dict[str, Invocation]
) -> None:
    case = next(case for case in FINDING_CASES if case.file == "spoofed-deployrole-session-name.json")
    results = [detector.invoke(case.event) for _ in range(3)]
    finding_ids = {result.payload["findingId"] for result in results}
    assert finding_ids == {invocations[case.file].payload["findingId"]}
    stored_ids = [finding["Id"] for finding in stored_findings(local_hub.client())]
    assert stored_ids.count(finding_ids.pop()) == 1
    assert len(stored_ids) == len(FINDING_CASES)


def test_a_malformed_allowlist_stops_the_built_function_naming_the_entry(
    build_dir: Path, local_hub: LocalSecurityHub
) -> None:
    # The cold start fails: Lambda reports an init error (the Errors alarm), retries the event, then keeps it in
    # the failure queue. Nothing is judged by an allowlist that means something other than what was written.
    entry = "arn:aws:iam::123456789012:role/DeployRole;bogusKey=x"
    findings_before = len(stored_findings(local_hub.client()))
    with detector_function(local_hub.endpoint_url, build_dir, {"ALLOWLIST_PATTERNS": entry}) as function:
        for _ in range(2):  # every new start fails the same way
            # The emulator answers an init failure with HTTP 502 and the error, as Lambda's Invoke API does.
            with pytest.raises(LocalRuntimeError) as failed:
                function.invoke(FINDING_CASES[0].event)
            message = str(failed.value)
            assert "HTTP 502" in message and '"errorType": "SettingsError"' in message, message
            assert f"allowlist entry \\'{entry}\\': unknown condition key \\'bogusKey\\'" in message, message
            assert '"message":"Refusing to start: allowlist entry' in message  # the function's own ERROR line
            assert "Init failed" in message
    assert len(stored_findings(local_hub.client())) == findings_before
