"""Every sample event through `make invoke`, as docs/development.md does: sam local invoke, the function in its Lambda
container in Docker, writing to a local Security Hub (moto's server) on this machine.

Selected only with ``-m docker`` (`make test-docker`), and skipped when no Docker engine answers. The Security Hub
listens where the container reaches the host as host.docker.internal: on Docker Engine (Linux) the default
bridge's address, which samconfig.toml's ``host-gateway`` mapping resolves to; on Docker Desktop the loopback.
Offline machines with the Lambda image already loaded set SAM_INVOKE_FLAGS=--skip-pull-image.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.asff import assert_valid_finding
from tests.conftest import stored_findings
from tests.support.cases import INVALID, PROJECT_ROOT, Case, load_cases
from tests.support.cloudformation import subprocess_environment
from tests.support.local_runtime import (
    EMULATOR_ACCOUNT_ID,
    LOOPBACK,
    LocalRuntimeError,
    LocalSecurityHub,
    local_security_hub,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CASES = load_cases()
LOCAL_ENV_FILE = PROJECT_ROOT / "env" / "local.json"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SECURITYHUB"
DOCKER_DESKTOP = "Docker Desktop"


def docker(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def docker_engine() -> str:
    """The Docker engine's operating system, as `docker info` reports it; skips when no engine answers."""
    if shutil.which("docker") is None:
        pytest.skip("no Docker engine answers here: the docker command is not installed")
    info = docker("info", "--format", "{{.OperatingSystem}}")
    if info.returncode != 0 or not info.stdout.strip():
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"no Docker engine answers here (docker info: {reason})")
    return info.stdout.strip()


def host_gateway_address(engine: str) -> str:
    """The address of this machine that a container reaches as host.docker.internal."""
    if engine == DOCKER_DESKTOP:
        return LOOPBACK  # Docker Desktop forwards host.docker.internal to the host's loopback
    # Docker Engine maps host-gateway to the default bridge's own address: its gateway, which older engines do
    # not list, and which is then the subnet's first address.
    inspected = docker("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}")
    assert inspected.returncode == 0, inspected.stderr
    (config,) = [item for item in json.loads(inspected.stdout) if ":" not in item.get("Subnet", ":")]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def hub(docker_engine: str) -> Iterator[LocalSecurityHub]:
    address = host_gateway_address(docker_engine)
    try:
        with local_security_hub(host=address) as security_hub:
            yield security_hub
    except LocalRuntimeError as error:  # raised while starting: a test's failure is never thrown in here
        pytest.fail(
            f"cannot listen on {address}, where containers reach this machine (a rootless engine, or one "
            f"in another network namespace, is not supported): {error}"
        )


@pytest.fixture(scope="module")
def env_file(hub: LocalSecurityHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """env/local.json, pointing at this test's Security Hub (on a port of its own) instead of port 5000."""
    port = hub.endpoint_url.rsplit(":", 1)[1]
    settings = json.loads(LOCAL_ENV_FILE.read_text(encoding="utf-8"))
    for variables in settings.values():
        variables[ENDPOINT_VARIABLE] = f"http://host.docker.internal:{port}"
    path = tmp_path_factory.mktemp("env") / "local.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


def make_invoke(case: Case, env_file: Path) -> subprocess.CompletedProcess[str]:
    """`make invoke EVENT=events/<file>`, silent about itself (-s), so stdout is the function's answer."""
    environment = subprocess_environment()  # dummy credentials: nothing here may reach a real account
    if "SAM_INVOKE_FLAGS" in os.environ:
        environment["SAM_INVOKE_FLAGS"] = os.environ["SAM_INVOKE_FLAGS"]
    command = ["make", "-s", "--no-print-directory", "invoke", f"EVENT=events/{case.file}", f"ENV_VARS={env_file}"]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def runs(env_file: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every sample event, invoked once, in the order of the expectations file."""
    return {case.file: make_invoke(case, env_file) for case in CASES}


def answer_of(run: subprocess.CompletedProcess[str]) -> Any:
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines, f"no answer:\n{run.stderr[-4000:]}"
    return json.loads(lines[-1])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_every_sample_event_gets_its_verdict_in_docker(
    runs: dict[str, subprocess.CompletedProcess[str]], case: Case
) -> None:
    run = runs[case.file]
    details = f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-4000:]}"
    if case.expected_verdict == INVALID:
        # The function raised: make invoke prints the error and fails.
        assert run.returncode != 0, details
        assert answer_of(run)["errorType"] == "InvalidEventError", details
    else:
        assert run.returncode == 0, details
        assert answer_of(run)["verdict"] == case.expected_verdict, details


def test_security_hub_holds_exactly_the_reported_findings(
    runs: dict[str, subprocess.CompletedProcess[str]], hub: LocalSecurityHub
) -> None:
    finding_cases = [case for case in CASES if case.expected_verdict == "finding"]
    reported = sorted(
        answer_of(runs[case.file])["findingId"] for case in finding_cases if runs[case.file].returncode == 0
    )
    stored = stored_findings(hub.client())
    assert sorted(finding["Id"] for finding in stored) == reported
    assert len(reported) == len(finding_cases)
    for finding in stored:
        assert finding["AwsAccountId"] == EMULATOR_ACCOUNT_ID  # the account the function runs in
        assert_valid_finding(finding)
