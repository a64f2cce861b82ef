"""Run the built detector on this machine as Lambda runs it, against a local Security Hub: no Docker, no AWS.

``local_security_hub()`` serves Security Hub's API with moto, in a child process, for one account, as strictly as
AWS does (tests/support/strict_securityhub.py).
``detector_function()`` runs the function that ``sam build`` produced under the Lambda Runtime Interface Emulator
(RIE) that the SAM CLI package ships, with awslambdaric as its runtime client: the pair ``sam local invoke`` runs
inside its container. The function's environment is the one ``sam local invoke`` would give it, computed by the SAM
CLI from the built template; its interpreter is a bare ``python3.13 -S`` whose path holds only the built artifact and
the runtime client, as /var/task and /var/runtime are in Lambda. It runs on this machine's architecture, whatever
the template's (arm64): the artifact is pure Python.

Both services listen on free ports of 127.0.0.1 only, and are stopped when their ``with`` block ends, however it
ends. Each runs in a process group of its own, so that the function's runtime stops with the emulator.

What the emulator (aws-sam-cli 1.170.0) does, which this module relies on:

* It serves invocations on ``--runtime-interface-emulator-address`` (default 0.0.0.0:8080) and the Runtime API
  for the runtime client on ``--runtime-api-address`` (default 127.0.0.1:9001, the same fixed port for every run).
  Both are always given here, each a free port, so that runs side by side never meet. A port taken in the
  meantime makes the emulator exit at once; it is then started again on other ports.
* ``context.invoked_function_arn`` is always ``arn:aws:lambda:us-east-1:012345678912:function:<name>``, whatever
  AWS_REGION says. The detector reads its account from that ARN, so the local Security Hub serves that account.
  That account, with AWS_SAM_LOCAL=true (which the SAM CLI's environment holds), is also what makes the detector
  honour the Security Hub endpoint it is given: deployed, it ignores every configured endpoint.
* It hands its own environment to the runtime, with blank credentials when it has none.
* A function error comes back as HTTP 200 like a result; only its body (``errorType``, ``errorMessage``) differs.
* The runtime starts on the first invocation, not with the emulator: errors importing the handler appear there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.support.cases import PROJECT_ROOT

# moto and the SAM CLI are imported where they are used: this module is also the entry point of the Security Hub
# child process, which needs only moto, while the process that starts it needs only the SAM CLI.

LOOPBACK = "127.0.0.1"
BUILD_DIR = PROJECT_ROOT / ".aws-sam" / "build"
RUNTIME_CLIENT_CACHE = PROJECT_ROOT / ".local" / "runtime"
FUNCTION_ID = "DetectorFunction"
RUNTIME_CLIENT = "awslambdaric"
"""Installed at the version this environment pins (requirements-dev.txt), into a directory of its own."""

EMULATOR_ACCOUNT_ID = "012345678912"
EMULATOR_REGION = "us-east-1"
EMULATOR_FUNCTION_ARN = f"arn:aws:lambda:{EMULATOR_REGION}:{EMULATOR_ACCOUNT_ID}:function:{FUNCTION_ID}"
DUMMY_CREDENTIALS = {"key": "testing", "secret": "testing", "sessiontoken": "testing"}

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
PORT_ATTEMPTS = 5
REPORT_WAIT_SECONDS = 2.0
"""How long to wait, after a response, for the emulator's REPORT line that closes an invocation's logs."""

_SECURITY_HUB_READY = "security hub listening on port "
_SERVE_SECURITY_HUB = "serve-security-hub"
_EMULATOR_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


class LocalRuntimeError(RuntimeError):
    """A local service could not start or answer; the message ends with what it printed."""


class ChildProcess:
    """A child process in a process group of its own, its stdout and stderr collected line by line as they come."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        on_line: Callable[[str], None] | None = None,
        keep_stdin_open: bool = False,
    ) -> None:
        self.name = name
        self._lines: list[str] = []
        self._finished_reading = False
        self._changed = threading.Condition()
        self._on_line = on_line
        self._process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if keep_stdin_open else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group: a Ctrl-C meant for us reaches it only through stop()
        )
        self._reader = threading.Thread(target=self._collect_output, name=f"{name}-output", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def mark(self) -> int:
        """The number of lines printed so far: a position to read or wait from."""
        with self._changed:
            return len(self._lines)

    def lines(self, start: int = 0, end: int | None = None) -> list[str]:
        with self._changed:
            return self._lines[start:end]

    def output(self, last: int = 60) -> str:
        """The last lines it printed, for error messages."""
        return "\n".join(self.lines()[-last:])

    def wait_for_line(self, matches: Callable[[str], bool], start: int = 0, timeout: float = 5.0) -> int | None:
        """The index of the first line from ``start`` on that ``matches``; None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self._lines)):
                    if matches(self._lines[index]):
                        return index
                start = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._finished_reading or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def stop(self) -> None:
        """Ask the process to end (closing its stdin, then SIGTERM to its group); kill its group if it will not."""
        if self._process.stdin is not None:
            self._process.stdin.close()  # a child that waits on stdin ends by itself
            self._wait(STOP_TIMEOUT_SECONDS)
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            if not self.running:
                break
            # Signalled only while unreaped, so the group id cannot yet belong to anyone else.
            os.killpg(self._process.pid, signal_number)
            self._wait(STOP_TIMEOUT_SECONDS)
        self._reader.join(timeout=1)

    def _wait(self, timeout: float) -> None:
        with suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=timeout)

    def _collect_output(self) -> None:
        assert self._process.stdout is not None
        for raw_line in self._process.stdout:
            line = raw_line.rstrip("\n")
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
            if self._on_line is not None:
                self._on_line(line)
        with self._changed:
            self._finished_reading = True
            self._changed.notify_all()


# Local Security Hub ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSecurityHub:
    """moto's Security Hub, holding the findings of one account."""

    endpoint_url: str
    account_id: str
    region: str
    process: ChildProcess

    def client(self) -> Any:
        """A Security Hub client for this endpoint, with dummy credentials: nothing is looked up, nothing leaves."""
        return boto3.client(
            "securityhub",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIALS["key"],
            aws_secret_access_key=DUMMY_CREDENTIALS["secret"],
            aws_session_token=DUMMY_CREDENTIALS["sessiontoken"],
        )


@contextmanager
def local_security_hub(
    account_id: str = EMULATOR_ACCOUNT_ID, region: str = EMULATOR_REGION, host: str = LOOPBACK
) -> Iterator[LocalSecurityHub]:
    """moto's server on a free port of ``host`` (127.0.0.1 unless told), treating every request as one from
    ``account_id``.

    It runs in a child process because moto takes the account from the process's MOTO_ACCOUNT_ID; the child picks
    its own port (so no other process can take it first) and reports it, and ends when its stdin closes, which also
    happens if this process dies.
    """
    environment = {**os.environ, "MOTO_ACCOUNT_ID": account_id, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "tests.support.local_runtime", _SERVE_SECURITY_HUB, host]
    process = ChildProcess("security-hub", command, environment, PROJECT_ROOT, keep_stdin_open=True)
    try:
        ready = process.wait_for_line(lambda line: line.startswith(_SECURITY_HUB_READY), timeout=START_TIMEOUT_SECONDS)
        if ready is None:
            raise LocalRuntimeError(f"the local Security Hub (moto) did not start:\n{process.output()}")
        port = int(process.lines(ready, ready + 1)[0].removeprefix(_SECURITY_HUB_READY))
        yield LocalSecurityHub(f"http://{host}:{port}", account_id, region, process)
    finally:
        process.stop()


def _serve_security_hub(host: str) -> None:
    """The child process of ``local_security_hub``: serve on ``host`` until stdin closes."""
    from moto.server import ThreadedMotoServer

    from tests.support import strict_securityhub

    strict_securityhub.install()
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"{_SECURITY_HUB_READY}{port}", flush=True)
    sys.stdin.read()
    server.stop()


# Function under the runtime interface emulator ---------------------------------------------------------------


@dataclass(frozen=True)
class FunctionError:
    """What the runtime reports when the handler raises: the exception's type and message."""

    error_type: str
    message: str
    stack_trace: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


@dataclass(frozen=True)
class Invocation:
    """One invocation: what the function returned (or the error it raised) and what it logged meanwhile."""

    payload: Any
    logs: tuple[str, ...]

    @property
    def error(self) -> FunctionError | None:
        payload = self.payload
        if isinstance(payload, dict) and "errorType" in payload and "errorMessage" in payload:
            trace = tuple(payload.get("stackTrace") or ())
            return FunctionError(str(payload["errorType"]), str(payload["errorMessage"]), trace)
        return None


class LocalFunction:
    """A function running under the emulator; ``invoke`` sends one event and waits for its outcome."""

    def __init__(self, process: ChildProcess, port: int, timeout_seconds: int) -> None:
        self.process = process
        self.endpoint_url = f"http://{LOOPBACK}:{port}"
        self.invocations_url = f"{self.endpoint_url}/2015-03-31/functions/function/invocations"
        self._timeout_seconds = timeout_seconds

    def invoke(self, event: Any) -> Invocation:
        """Invoke synchronously; a function error is returned (``Invocation.error``), not raised."""
        start = self.process.mark
        request = urllib.request.Request(
            self.invocations_url,
            data=json.dumps(event).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            # The emulator enforces the function's timeout; the margin covers starting the runtime.
            with urllib.request.urlopen(request, timeout=self._timeout_seconds + 30) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise LocalRuntimeError(
                f"the emulator answered HTTP {error.code} {error.read()[:500]!r}:\n{self.process.output()}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise LocalRuntimeError(f"the emulator did not answer ({error}):\n{self.process.output()}") from None
        logs = self._logs_since(start)
        try:
            payload = json.loads(body) if body else None
        except json.JSONDecodeError:
            raise LocalRuntimeError(f"the function returned something that is not JSON: {body[:500]!r}") from None
        return Invocation(payload, logs)

    def _logs_since(self, start: int) -> tuple[str, ...]:
        # The emulator prints REPORT after the response has gone out; wait for it so the logs are whole.
        report = self.process.wait_for_line(
            lambda line: line.startswith("REPORT RequestId:"), start=start, timeout=REPORT_WAIT_SECONDS
        )
        return tuple(self.process.lines(start, None if report is None else report + 1))


@contextmanager
def local_function(
    code_dir: Path,
    handler: str,
    environment: Mapping[str, str],
    timeout_seconds: int,
    on_log_line: Callable[[str], None] | None = None,
) -> Iterator[LocalFunction]:
    """``handler`` in ``code_dir`` under the emulator, with awslambdaric as runtime client, on free ports.

    The function's interpreter is this environment's base python3.13 run with ``-S -P``: no site-packages, nothing
    from the current directory, only PYTHONPATH (``environment`` must set it) and the standard library.
    ``on_log_line`` receives every line the emulator and the function print, as they come.
    """
    runtime_command = [str(function_python()), "-S", "-P", "-m", RUNTIME_CLIENT, handler]
    process, port = _start_emulator(runtime_command, environment, code_dir, on_log_line)
    try:
        yield LocalFunction(process, port, timeout_seconds)
    finally:
        process.stop()


@contextmanager
def detector_function(
    security_hub_url: str,
    build_dir: Path = BUILD_DIR,
    overrides: Mapping[str, str] | None = None,
    on_log_line: Callable[[str], None] | None = None,
) -> Iterator[LocalFunction]:
    """The built DetectorFunction under the emulator, sending its findings to ``security_hub_url``.

    ``overrides`` replaces environment variables, as ``sam local invoke --env-vars`` does.
    """
    function = built_function(build_dir)
    environment = detector_environment(function, security_hub_url, overrides)
    code_dir = Path(function.codeuri)
    with local_function(code_dir, function.handler, environment, function.timeout, on_log_line) as running:
        yield running


def detector_environment(
    function: Any, security_hub_url: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the built function (``built_function``), with its findings sent to ``security_hub_url``."""
    code_dir = Path(function.codeuri)
    environment = lambda_environment(function, code_dir, [code_dir, runtime_client_dir()])
    environment.update(overrides or {})
    # Set last, and whether or not the template declares it: nothing run here may reach the real Security Hub.
    environment["AWS_ENDPOINT_URL_SECURITYHUB"] = security_hub_url
    return environment


def built_function(build_dir: Path = BUILD_DIR) -> Any:
    """DetectorFunction as the SAM CLI reads it from the built template: parameters, Globals and maps resolved."""
    template = build_dir / "template.yaml"
    if not template.is_file():
        raise LocalRuntimeError(f"no built function in {build_dir}: run `make build` (sam build) first")
    function = template_function(template)
    if function is None or not Path(function.codeuri).is_dir():
        raise LocalRuntimeError(f"{template} has no built {FUNCTION_ID}: run `make build` (sam build) again")
    return function


def template_function(template: Path) -> Any:
    """DetectorFunction as the SAM CLI reads it from ``template`` (None if absent), with the parameters' defaults."""
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(template))
    return SamFunctionProvider(stacks, ignore_code_extraction_warnings=True).get(FUNCTION_ID)


def lambda_environment(function: Any, code_dir: Path, python_path: Sequence[Path]) -> dict[str, str]:
    """What Lambda's environment holds for the function, as ``sam local invoke`` computes it, plus the few variables
    a container has that a process here would otherwise take from this machine."""
    from samcli.local.lambdafn.env_vars import EnvironmentVariables

    variables = EnvironmentVariables(
        function_name=function.name,
        function_memory=function.memory,
        function_timeout=function.timeout,
        function_handler=function.handler,
        function_logging_config=function.logging_config,
        variables=(function.environment or {}).get("Variables", {}),
        aws_creds={"region": EMULATOR_REGION, **DUMMY_CREDENTIALS},
    ).resolve()
    return {
        **variables,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        # No shared AWS configuration or instance metadata: the dummy credentials above are the only ones.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join(str(path) for path in python_path),
        # /var/task is read-only in Lambda; the built artifact must not gain __pycache__ directories either.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def function_python() -> Path:
    """The base interpreter of this environment: the function's Python, without the environment's packages."""
    interpreter = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if sys.version_info[:2] != (3, 13) or not interpreter.is_file():
        raise LocalRuntimeError(f"the function needs Python 3.13: run this with the project's .venv ({sys.executable})")
    return interpreter


def emulator_binary() -> Path:
    """The SAM CLI's runtime interface emulator for this machine's architecture."""
    import samcli.local

    machine = _EMULATOR_MACHINES.get(platform.machine().lower())
    if machine is None:
        raise LocalRuntimeError(f"the runtime interface emulator does not run on {platform.machine()}")
    binary = Path(samcli.local.__file__).parent / "rapid" / f"aws-lambda-rie-{machine}"
    if not os.access(binary, os.X_OK):
        raise LocalRuntimeError(f"{binary} is missing or not executable; reinstall aws-sam-cli")
    return binary


def runtime_client_dir(cache: Path = RUNTIME_CLIENT_CACHE) -> Path:
    """A directory holding only awslambdaric and its dependencies, installed once from PyPI and then reused.

    The version is the one installed in this environment. The directory appears complete or not at all: pip
    installs into a temporary sibling, which is then renamed.
    """
    try:
        version = importlib.metadata.version(RUNTIME_CLIENT)
    except importlib.metadata.PackageNotFoundError:
        raise LocalRuntimeError(f"{RUNTIME_CLIENT} is not installed here; run `make venv`") from None
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    target = cache / f"{RUNTIME_CLIENT}-{version}-{python_tag}-{platform.machine().lower()}"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        _pip_install_target(f"{RUNTIME_CLIENT}=={version}", staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another run finished the same installation first otherwise
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _pip_install_target(requirement: str, target: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--target",
        str(target),
        requirement,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if completed.returncode != 0:
        raise LocalRuntimeError(
            f"could not install {requirement} (it is downloaded from PyPI the first time):\n"
            f"{completed.stdout}{completed.stderr}"
        )


def _start_emulator(
    runtime_command: Sequence[str],
    environment: Mapping[str, str],
    code_dir: Path,
    on_log_line: Callable[[str], None] | None,
) -> tuple[ChildProcess, int]:
    """Start the emulator on two free ports; start it again on others if one was taken in the meantime."""
    for _ in range(PORT_ATTEMPTS):
        invoke_port, runtime_api_port = _free_ports(2)
        command = [
            str(emulator_binary()),
            "--runtime-interface-emulator-address",
            f"{LOOPBACK}:{invoke_port}",
            "--runtime-api-address",
            f"{LOOPBACK}:{runtime_api_port}",
            "--log-level",
            "warn",
            *runtime_command,
        ]
        # The runtime's current directory is the code, as /var/task is in Lambda.
        process = ChildProcess("emulator", command, environment, code_dir, on_line=on_log_line)
        started = False
        try:
            started = _listening(process, invoke_port)
        finally:
            if not started:  # not listening, or interrupted while waiting: it is not handed over, so stop it here
                process.stop()
        if started:
            return process, invoke_port
        if "address already in use" not in process.output():
            raise LocalRuntimeError(f"the runtime interface emulator did not start:\n{process.output()}")
    raise LocalRuntimeError(f"the runtime interface emulator found no free port in {PORT_ATTEMPTS} attempts")


def _listening(process: ChildProcess, port: int) -> bool:
    """Wait until ``process`` accepts connections on ``port``; False if it exits or the wait times out."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while process.running and time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return process.running
        except OSError:
            time.sleep(0.05)
    return False


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (held together while chosen, so never the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for held in sockets:
            held.bind((LOOPBACK, 0))
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != _SERVE_SECURITY_HUB:
        sys.exit(f"usage: python -m tests.support.local_runtime {_SERVE_SECURITY_HUB} HOST")
    _serve_security_hub(sys.argv[2])
