"""``sam build`` produces a pure-Python artifact that works on its own: imported by a bare Python 3.13 whose only
path is the artifact, it finds boto3 and Powertools there and handles events without any network call. Being pure
Python, the one artifact runs on either architecture: arm64 deployed, the local machine's under `make invoke`. It
ships bytecode for every module, usable on Lambda's read-only /var/task, so a cold start compiles nothing."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cases import EVENTS_DIR
from tests.support.cloudformation import (
    FUNCTION_ID,
    PROJECT_ROOT,
    REGION,
    VENV_BIN,
    load_template,
    subprocess_environment,
)

# Runs inside the clean interpreter. Security Hub is stubbed with botocore's Stubber, which also checks the
# finding against the artifact's own API model; nothing leaves the process.
PROBE = r"""
import json, sys
from types import SimpleNamespace

import app

sdk_on_import = sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore"))
from botocore.stub import Stubber

result_file, events_dir = sys.argv[1], sys.argv[2]
context = SimpleNamespace(
    function_name="lambda-crud-detector",
    function_version="$LATEST",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:lambda-crud-detector",
    aws_request_id="c6af9ac6-7b61-11e6-9a41-93e812345678",
    log_group_name="/aws/lambda/lambda-crud-detector",
    log_stream_name="probe",
)
verdicts = {}
publisher = app.detector.deployment(context).publisher
with Stubber(publisher._client) as security_hub:
    security_hub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []})
    for name in ("update-function-code-by-iam-user.json", "deploy-role-cicd-session.json",
                 "invoke-data-event.json"):
        with open(f"{events_dir}/{name}", encoding="utf-8") as handle:
            verdicts[name] = app.lambda_handler(json.load(handle), context)["verdict"]
    security_hub.assert_no_pending_responses()

import aws_lambda_powertools, boto3, botocore, jmespath
modules = ("app", "rule", "grading", "finding", "publisher", "cloudtrail",
           "boto3", "botocore", "aws_lambda_powertools", "jmespath")
with open(result_file, "w", encoding="utf-8") as handle:
    json.dump({
        "no_site": sys.flags.no_site,
        "path": sys.path,
        "files": {name: sys.modules[name].__file__ for name in modules},
        "endpoint": publisher._client.meta.endpoint_url,
        "sdk_on_import": sdk_on_import,
        "verdicts": verdicts,
    }, handle)
"""


def run_sam_build(build_dir: Path) -> subprocess.CompletedProcess[str]:
    # Run from the project root, as `make build` does: sam reads samconfig.toml from there.
    command = [
        str(VENV_BIN / "sam"),
        "build",
        "--template-file",
        "template.yaml",
        "--build-dir",
        str(build_dir),
    ]
    environment = subprocess_environment()
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def built_function(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sam-build")
    result = run_sam_build(work / "build")
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "build"


@pytest.mark.slow
def test_build_is_pure_python_so_either_architecture_runs_it(built_function: Path) -> None:
    built = load_template(built_function / "template.yaml")
    function = built["Resources"][FUNCTION_ID]["Properties"]
    # The architecture stays a parameter of the built template (arm64 unless overridden), not fixed by the build.
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    assert built["Parameters"]["Architecture"]["Default"] == "arm64"
    assert function["CodeUri"] == FUNCTION_ID
    artifact = built_function / FUNCTION_ID
    for package in ("boto3", "botocore", "aws_lambda_powertools"):
        assert (artifact / package / "__init__.py").is_file(), package
    # A compiled extension would run on one architecture only: the one it was built for.
    compiled = [path for pattern in ("*.so", "*.so.*", "*.pyd", "*.dylib") for path in artifact.rglob(pattern)]
    assert sorted(str(path.relative_to(artifact)) for path in compiled) == []
    # Every installed distribution says so too: a purelib wheel tagged for any platform.
    wheels = sorted(artifact.glob("*.dist-info/WHEEL"))
    assert len(wheels) >= 3
    for wheel in wheels:
        metadata = wheel.read_text(encoding="utf-8").splitlines()
        tags = [line.removeprefix("Tag: ") for line in metadata if line.startswith("Tag: ")]
        assert "Root-Is-Purelib: true" in metadata, wheel.parent.name
        assert tags and all(tag.endswith("-none-any") for tag in tags), (wheel.parent.name, tags)


# Counts the modules compiled from source while the handler is imported; a valid .pyc is loaded without compiling.
COMPILE_PROBE = r"""
import importlib.machinery, json, sys
from types import SimpleNamespace

compiled = []
compile_source = importlib.machinery.SourceFileLoader.source_to_code

def counting_source_to_code(self, data, path, *args, **kwargs):
    compiled.append(path)
    return compile_source(self, data, path, *args, **kwargs)

importlib.machinery.SourceFileLoader.source_to_code = counting_source_to_code
import app
# Its Security Hub client, as the first finding creates it.
app.detector.deployment(SimpleNamespace(invoked_function_arn=sys.argv[1], log_stream_name="probe")).publisher
print(json.dumps({"compiled": compiled, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow
def test_artifact_holds_unchecked_hash_bytecode_for_every_module(built_function: Path) -> None:
    artifact = built_function / FUNCTION_ID
    sources = sorted(artifact.rglob("*.py"))
    flags_by_module: dict[str, int] = {}
    for source in sources:
        # The name this interpreter (Python 3.13, the runtime's version) looks for: __pycache__/NAME.cpython-313.pyc
        bytecode = Path(importlib.util.cache_from_source(str(source)))
        header = bytecode.read_bytes()[:8] if bytecode.is_file() else b""
        assert header[:4] == importlib.util.MAGIC_NUMBER, f"{source.relative_to(artifact)} has no Python 3.13 .pyc"
        flags_by_module[str(source.relative_to(artifact))] = int.from_bytes(header[4:8], "little")
    # PEP 552: bit 0 set = hash-based; bit 1 clear = unchecked, so the source is never read or hashed at import.
    assert {flags for flags in flags_by_module.values()} == {0b01}
    for module in ("app.py", "rule.py", "botocore/client.py", "boto3/session.py", "aws_lambda_powertools/__init__.py"):
        assert module in flags_by_module


def run_in_clean_interpreter(artifact: Path, run_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python3.13 -S`` whose only path is the artifact, with the function's environment as deployed, no shared AWS
    configuration, and no bytecode writing (Lambda's /var/task is read-only)."""
    python = shutil.which("python3.13", path=subprocess_environment()["PATH"])
    assert python is not None, "python3.13 is not on PATH"
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(run_dir),
        "PYTHONPATH": str(artifact),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_ID,  # reserved: Lambda always sets it
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        # As deployed: the template declares these.
        "AWS_ENDPOINT_URL_SECURITYHUB": "",
        "ALLOWLIST_PATTERNS": "*DeployRole",
        "TRUSTED_LAYER_ACCOUNTS": "",
        "BEHAVIOUR_SEVERITIES": "",
        "ALLOWLIST_HIDES_PUBLIC": "false",
        "POWERTOOLS_SERVICE_NAME": "lambda-crud-detector",
        "POWERTOOLS_METRICS_NAMESPACE": "LambdaCrudDetector",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    return subprocess.run(
        [python, "-S", *argv], cwd=run_dir, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_importing_the_handler_from_the_artifact_compiles_nothing(built_function: Path, tmp_path: Path) -> None:
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lambda-crud-detector"
    completed = run_in_clean_interpreter(built_function / FUNCTION_ID, tmp_path, "-c", COMPILE_PROBE, function_arn)
    assert completed.returncode == 0, completed.stderr
    probe = json.loads(completed.stdout.splitlines()[-1])
    assert {"app", "botocore.client", "aws_lambda_powertools.metrics"} <= set(probe["modules"])
    assert probe["compiled"] == []


@pytest.mark.slow
def test_artifact_imports_and_runs_in_a_clean_interpreter(built_function: Path, tmp_path: Path) -> None:
    artifact = built_function / FUNCTION_ID
    run_dir = tmp_path / "cwd"
    run_dir.mkdir()
    result_file = tmp_path / "result.json"
    completed = run_in_clean_interpreter(artifact, run_dir, "-c", PROBE, str(result_file), str(EVENTS_DIR))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    probe: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))

    assert probe["no_site"] == 1
    assert [entry for entry in probe["path"] if "site-packages" in entry or "dist-packages" in entry] == []
    outside = {name: file for name, file in probe["files"].items() if not Path(file).is_relative_to(artifact)}
    assert outside == {}, "imported from outside the artifact"
    assert probe["endpoint"] == f"https://securityhub.{REGION}.amazonaws.com"  # the artifact's botocore, empty variable
    # Importing the handler loads no SDK: a client is created when a finding first needs one. Powertools imports the
    # bare botocore package (its __init__ only) to register its user-agent hook; nothing else of boto3 or botocore.
    assert probe["sdk_on_import"] == ["botocore"]
    assert probe["verdicts"] == {
        "update-function-code-by-iam-user.json": "finding",
        "deploy-role-cicd-session.json": "allowlisted",
        "invoke-data-event.json": "ignored",
    }
