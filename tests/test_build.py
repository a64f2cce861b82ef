"""``sam build`` produces a pure-Python artifact that works on its own: imported by a bare Python 3.13 whose only
path is the artifact, it finds boto3 and Powertools there and handles events without any network call. Being pure
Python, the one artifact runs on either architecture: arm64 deployed, the local machine's under `make invoke`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.cloudformation import (
    FUNCTION_ID,
    PROJECT_ROOT,
    REGION,
    VENV_BIN,
    load_template,
    subprocess_environment,
)
from tools.cases import EVENTS_DIR

# Runs inside the clean interpreter. Security Hub is stubbed with botocore's Stubber, which also checks the
# finding against the artifact's own API model; nothing leaves the process.
PROBE = r"""
import json, sys
from types import SimpleNamespace

import app
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
with Stubber(app.publisher._client) as security_hub:
    security_hub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []})
    for name in ("update-function-code-by-iam-user.json", "deploy-role-cicd-session.json",
                 "out-of-scope-function-concurrency.json"):
        with open(f"{events_dir}/{name}", encoding="utf-8") as handle:
            verdicts[name] = app.lambda_handler(json.load(handle), context)["verdict"]
    security_hub.assert_no_pending_responses()

import aws_lambda_powertools, boto3, botocore, jmespath
modules = ("app", "rule", "finding", "publisher", "cloudtrail",
           "boto3", "botocore", "aws_lambda_powertools", "jmespath")
with open(result_file, "w", encoding="utf-8") as handle:
    json.dump({
        "no_site": sys.flags.no_site,
        "path": sys.path,
        "files": {name: sys.modules[name].__file__ for name in modules},
        "endpoint": app.publisher._client.meta.endpoint_url,
        "verdicts": verdicts,
    }, handle)
"""


def run_sam_build(build_dir: Path) -> subprocess.CompletedProcess[str]:
    # Run from the project root, as `make build` does: sam reads samconfig.toml from there.
    command = [
        str(VENV_BIN / "sam"), "build", "--template-file", "template.yaml",
        "--build-dir", str(build_dir),
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


@pytest.mark.slow
def test_artifact_imports_and_runs_in_a_clean_interpreter(built_function: Path, tmp_path: Path) -> None:
    artifact = built_function / FUNCTION_ID
    python = shutil.which("python3.13", path=subprocess_environment()["PATH"])
    assert python is not None, "python3.13 is not on PATH"
    run_dir = tmp_path / "cwd"
    run_dir.mkdir()
    result_file = tmp_path / "result.json"
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(run_dir),
        "PYTHONPATH": str(artifact),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        # As deployed: the template declares these.
        "AWS_ENDPOINT_URL_SECURITYHUB": "",
        "ALLOWLIST_PATTERNS": "*DeployRole",
        "EXTRA_ACTIONS": "",
        "POWERTOOLS_SERVICE_NAME": "lambda-crud-detector",
        "POWERTOOLS_METRICS_NAMESPACE": "LambdaCrudDetector",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    completed = subprocess.run(
        [python, "-S", "-c", PROBE, str(result_file), str(EVENTS_DIR)],
        cwd=run_dir, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    probe: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))

    assert probe["no_site"] == 1
    assert [entry for entry in probe["path"] if "site-packages" in entry or "dist-packages" in entry] == []
    outside = {name: file for name, file in probe["files"].items() if not Path(file).is_relative_to(artifact)}
    assert outside == {}, "imported from outside the artifact"
    assert probe["endpoint"] == f"https://securityhub.{REGION}.amazonaws.com"  # the artifact's botocore, empty variable
    assert probe["verdicts"] == {
        "update-function-code-by-iam-user.json": "finding",
        "deploy-role-cicd-session.json": "allowlisted",
        "out-of-scope-function-concurrency.json": "ignored",
    }
