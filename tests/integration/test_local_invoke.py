"""`make invoke` without Docker: the sam command it runs, read by sam's own code, and how its outcome is judged.

The command comes from `make -n` (printed, not run), so these tests see what the Makefile really runs. sam reads
it with its work replaced by a recorder, in a separate interpreter. The run in Docker itself is tests/integration/test_docker.py.
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import checked_invoke
from tests.support.cloudformation import PROJECT_ROOT, subprocess_environment

BUILT_TEMPLATE = PROJECT_ROOT / ".aws-sam" / "build" / "template.yaml"
EVENT = "events/spoofed-deployrole-session-name.json"
HOST_MACHINES = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
"""`uname -m` on Linux x86_64, Linux arm64 and Apple silicon, and the architecture a local run must use there."""

# Prints, as JSON, the arguments `sam local invoke` would act on for each command line in argv[1] (a JSON list).
SAM_INVOKE_READER = r"""
import inspect, json, sys, warnings
from unittest import mock
from click.testing import CliRunner

warnings.simplefilter("ignore")
from samcli.cli.main import cli
from samcli.commands.local.invoke import cli as invoke_cli

signature = inspect.signature(invoke_cli.do_cli)
readings = []
for arguments in json.loads(sys.argv[1]):
    recorded = {}
    def record(*args, **kwargs):
        recorded.update(signature.bind(*args, **kwargs).arguments)
    with mock.patch.object(invoke_cli, "do_cli", record):
        result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    readings.append({key: value for key, value in recorded.items() if key != "ctx"})
json.dump(readings, sys.stdout, default=repr)
"""


def make_environment() -> dict[str, str]:
    """Dummy credentials, and none of the variables a caller could set to change the command under test."""
    environment = subprocess_environment()
    for variable in ("LOCAL_ARCHITECTURE", "ENV_VARS", "EVENT", "HOST_MACHINE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        environment.pop(variable, None)
    return environment


def invoke_command(*make_arguments: str) -> list[str]:
    """The `sam local invoke` arguments `make invoke` runs, as `make -n` prints them."""
    completed = subprocess.run(
        ["make", "-n", "--no-print-directory", "invoke", f"EVENT={EVENT}", *make_arguments],
        cwd=PROJECT_ROOT,
        env=make_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.replace("\\\n", " ").splitlines()
    (line,) = [line for line in lines if " local invoke " in line]
    words = shlex.split(line)
    sam = next(index for index, word in enumerate(words) if Path(word).name == "sam")
    assert "tests.support.checked_invoke" in words[:sam], words  # the outcome is judged, not only printed
    return words[sam + 1 :]


@pytest.fixture(scope="module")
def sam_reads() -> dict[str, dict[str, Any]]:
    """What sam reads from `make invoke`'s command: on this machine, and with each `uname -m` of HOST_MACHINES."""
    commands = {"this machine": invoke_command()}
    commands.update({machine: invoke_command(f"HOST_MACHINE={machine}") for machine in HOST_MACHINES})
    completed = subprocess.run(
        [sys.executable, "-c", SAM_INVOKE_READER, json.dumps(list(commands.values()))],
        cwd=PROJECT_ROOT,
        env=make_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return dict(zip(commands, json.loads(completed.stdout), strict=True))


def test_make_invoke_reads_the_projects_samconfig(sam_reads: dict[str, dict[str, Any]]) -> None:
    invoke = sam_reads["this machine"]
    assert invoke["template"] == str(BUILT_TEMPLATE)
    # Only in samconfig.toml: without it, on Linux the container cannot resolve host.docker.internal.
    assert invoke["add_host"] == {"host.docker.internal": "host-gateway"}
    assert invoke["env_vars"] == "env/local.json"
    assert invoke["event"] == EVENT
    assert invoke["function_identifier"] == "DetectorFunction"


@pytest.mark.parametrize("machine", sorted(HOST_MACHINES))
def test_make_invoke_runs_the_host_architecture(sam_reads: dict[str, dict[str, Any]], machine: str) -> None:
    assert sam_reads[machine]["parameter_overrides"] == {"Architecture": HOST_MACHINES[machine]}


def test_make_invoke_runs_this_machines_architecture(sam_reads: dict[str, dict[str, Any]]) -> None:
    expected = HOST_MACHINES.get(platform.machine(), "x86_64")
    assert sam_reads["this machine"]["parameter_overrides"] == {"Architecture": expected}


def test_make_invoke_does_not_force_skipping_the_image_pull(sam_reads: dict[str, dict[str, Any]]) -> None:
    # Online, sam must fetch the Lambda image; offline machines opt in with SAM_INVOKE_FLAGS=--skip-pull-image.
    assert sam_reads["this machine"]["skip_pull_image"] is False


def test_offline_flags_reach_sam() -> None:
    assert "--skip-pull-image" in invoke_command("SAM_INVOKE_FLAGS=--skip-pull-image")


# How the outcome is judged ----------------------------------------------------------------------------------

# What `sam local invoke` prints on stdout, as seen from sam 1.170.0 in Docker.
ANSWER = '{"verdict": "finding", "findingId": "AWS.LAMBDA.CRUD/111122223333/eu-west-1/0a6f", "reason": "r"}'
FUNCTION_ERROR = (
    '{"errorMessage": "event is not an EventBridge envelope: missing detail-type, source, detail", '
    '"errorType": "InvalidEventError", "requestId": "49b4bb84", "stackTrace": ["  File \\"/var/task/app.py\\"\\n"]}'
)
# A timeout, and an image of another architecture, print only log lines (stderr); stdout stays empty.
TIMEOUT_LOG = (
    "Function 'DetectorFunction' timed out after 120 seconds\nNo response from invoke container for DetectorFunction"
)


def fake_sam(stdout: str, stderr: str = "", status: int = 0) -> list[str]:
    """A command that behaves as `sam local invoke` does: the answer on stdout, log lines on stderr, a status."""
    script = "import sys; sys.stderr.write(sys.argv[2]); sys.stdout.write(sys.argv[1]); sys.exit(int(sys.argv[3]))"
    return [sys.executable, "-c", script, stdout, stderr, str(status)]


def test_an_answer_is_printed_and_succeeds(capfd: pytest.CaptureFixture[str]) -> None:
    assert checked_invoke.main(fake_sam(ANSWER, "START RequestId: 1\n")) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["verdict"] == "finding"
    assert "START RequestId: 1" in err  # log lines pass through


def test_a_function_error_is_printed_and_fails(capfd: pytest.CaptureFixture[str]) -> None:
    assert checked_invoke.main(fake_sam(FUNCTION_ERROR)) == 1
    out, err = capfd.readouterr()
    assert json.loads(out)["errorType"] == "InvalidEventError"
    assert "InvalidEventError: event is not an EventBridge envelope" in err


def test_no_answer_fails(capfd: pytest.CaptureFixture[str]) -> None:
    assert checked_invoke.main(fake_sam("", TIMEOUT_LOG)) == 1
    assert "no answer" in capfd.readouterr().err


@pytest.mark.parametrize("printed", ["Error: something went wrong", '{"verdict": '])
def test_an_answer_that_is_not_json_fails(printed: str) -> None:
    assert checked_invoke.main(fake_sam(printed)) == 1


def test_sams_own_failure_is_passed_on(capfd: pytest.CaptureFixture[str]) -> None:
    assert (
        checked_invoke.main(fake_sam("", "Error: Running AWS SAM projects locally requires a container runtime.", 2))
        == 2
    )
    assert "exited with status 2" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        ('{"verdict": "ignored", "findingId": null, "reason": "x"}', False),
        ("null", False),
        ('{"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named app"}', True),
        ('{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 120.00 seconds"}', True),
        ("  \n", True),
    ],
)
def test_failure_of(answer: str, failed: bool) -> None:
    assert (checked_invoke.failure_of(answer) is not None) is failed
