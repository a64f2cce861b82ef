"""samconfig.toml and env/local.json, read by sam's own code exactly as ``sam deploy``, ``sam validate`` and
``sam local invoke`` would. The commands' work is replaced by a recorder, so nothing is deployed or run, and sam
is loaded in a separate interpreter, so its global logging and YAML settings stay out of the other tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import pytest
from aws_lambda_powertools.shared.constants import LAMBDA_ADVANCED_LOGGING_LEVELS

from tests.support.cloudformation import (
    FORWARDER_PATH,
    FUNCTION_ID,
    PROJECT_ROOT,
    TEMPLATE_PATH,
    load_template,
    subprocess_environment,
    translate,
)

LOCAL_ENV_FILE = PROJECT_ROOT / "env" / "local.json"

# Runs in the project root. Prints, as JSON, the arguments each sam command would act on, and the environment
# `sam local invoke --env-vars env/local.json` would give the function (with an empty shell environment).
SAM_READER = r"""
import inspect, json, sys, warnings
from unittest import mock
from click.testing import CliRunner

warnings.simplefilter("ignore")
from samcli.cli.main import cli

def arguments_of(command, entry_point):
    module_name, function_name = entry_point.rsplit(".", 1)
    module = __import__(module_name, fromlist=[function_name])
    signature = inspect.signature(getattr(module, function_name))
    recorded = {}
    def record(*args, **kwargs):
        recorded.update(signature.bind(*args, **kwargs).arguments)
    with mock.patch(entry_point, record), mock.patch("samcli.lib.utils.version_checker._inform_newer_version"):
        result = CliRunner().invoke(cli, command, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return {key: value for key, value in recorded.items() if key != "ctx"}

def local_environment(function_id):
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.local.lambdafn.env_vars import EnvironmentVariables

    stacks, _ = SamLocalStackProvider.get_stacks("template.yaml")
    function = SamFunctionProvider(stacks).get(function_id)
    with open("env/local.json", encoding="utf-8") as handle:
        overrides = json.load(handle)[function_id]
    return EnvironmentVariables(
        function.name, function.memory, function.timeout, function.handler, function.logging_config,
        variables=function.environment["Variables"], shell_env_values={}, override_values=overrides,
        aws_creds={"region": "us-east-1", "key": "testing", "secret": "testing"},
    ).resolve()

json.dump({
    "deploy": arguments_of(["deploy"], "samcli.commands.deploy.command.do_cli"),
    "validate": arguments_of(["validate"], "samcli.commands.validate.validate.do_cli"),
    "local_invoke": arguments_of(["local", "invoke", sys.argv[1]], "samcli.commands.local.invoke.cli.do_cli"),
    "local_environment": local_environment(sys.argv[1]),
}, sys.stdout, default=repr)
"""


@pytest.fixture(scope="module")
def sam_reads() -> dict[str, Any]:
    environment = subprocess_environment()
    environment["AWS_DEFAULT_REGION"] = "eu-west-3"  # must not win over samconfig.toml's region
    completed = subprocess.run(
        [sys.executable, "-c", SAM_READER, FUNCTION_ID],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout)


def parameter_violations(parameters: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """How ``values`` break the declared parameters' constraints, as CloudFormation checks them."""
    problems = []
    for name, value in values.items():
        declaration = parameters.get(name)
        if declaration is None:
            problems.append(f"{name}: not a parameter of the template")
            continue
        if "AllowedValues" in declaration and value not in [str(item) for item in declaration["AllowedValues"]]:
            problems.append(f"{name}={value!r}: not among {declaration['AllowedValues']}")
        if "AllowedPattern" in declaration and not re.fullmatch(declaration["AllowedPattern"], value):
            problems.append(f"{name}={value!r}: does not match {declaration['AllowedPattern']}")
        if declaration["Type"] == "Number":
            number = float(value)
            low, high = declaration.get("MinValue", number), declaration.get("MaxValue", number)
            if not low <= number <= high:
                problems.append(f"{name}={value!r}: outside [{low}, {high}]")
    return problems


NESTED_PATHS = sorted((PROJECT_ROOT / "stacks").glob("*.yaml"))

# samconfig.toml ---------------------------------------------------------------------------------------------


def test_sam_deploy_reads_a_confirmed_reviewable_deployment(sam_reads: dict[str, Any]) -> None:
    deploy = sam_reads["deploy"]
    assert deploy["stack_name"] == "lambda-crud-detector"
    assert deploy["region"] == "us-east-1"
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    # The optional parts are nested applications, which CloudFormation expands only with this acknowledgement.
    assert "CAPABILITY_AUTO_EXPAND" in deploy["capabilities"]
    # sam deploy takes the built template when `sam build` has run, else the source one.
    assert deploy["template_file"] in (str(TEMPLATE_PATH), str(PROJECT_ROOT / ".aws-sam" / "build" / "template.yaml"))
    declared = load_template(TEMPLATE_PATH)["Parameters"]
    assert set(deploy["parameter_overrides"]) == set(declared)
    assert deploy["parameter_overrides"]["Architecture"] == "arm64"
    assert parameter_violations(declared, deploy["parameter_overrides"]) == []


def test_stack_name_fits_the_function_name_it_becomes(sam_reads: dict[str, Any]) -> None:
    # The stack names the function and, with "-tamper-alert" (13 characters), a rule: names are at most 64.
    assert re.fullmatch(r"[A-Za-z][-A-Za-z0-9]{0,50}", sam_reads["deploy"]["stack_name"])


def test_sam_validate_lints(sam_reads: dict[str, Any]) -> None:
    assert sam_reads["validate"]["lint"] is True


@pytest.mark.parametrize("template_path", [TEMPLATE_PATH, FORWARDER_PATH], ids=lambda path: path.name)
def test_template_defaults_satisfy_their_own_constraints(template_path: Any) -> None:
    declared = load_template(template_path)["Parameters"]
    defaults = {name: str(item["Default"]) for name, item in declared.items() if "Default" in item}
    assert parameter_violations(declared, defaults) == []


@pytest.mark.parametrize(
    ("template", "allowed"),
    [
        (lambda: translate(load_template(TEMPLATE_PATH)), set()),
        (lambda: load_template(FORWARDER_PATH), {"FindingsRole"}),
        *[(lambda path=path: translate(load_template(path)), set()) for path in NESTED_PATHS],
    ],
    ids=["template.yaml", "member-forwarder.yaml", *[path.name for path in NESTED_PATHS]],
)
def test_only_the_findings_role_needs_capability_named_iam(
    template: Callable[[], dict[str, Any]], allowed: set[str]
) -> None:
    # Named IAM resources need CAPABILITY_NAMED_IAM. `sam deploy` grants only CAPABILITY_IAM; the forwarder is
    # deployed with CAPABILITY_NAMED_IAM for its findings role alone, which the detector assumes by its name.
    named = {
        logical_id
        for logical_id, resource in template()["Resources"].items()
        if resource["Type"].startswith("AWS::IAM::")
        and {"RoleName", "ManagedPolicyName", "UserName", "GroupName", "InstanceProfileName"}
        & set(resource["Properties"])
    }
    assert named == allowed


# env/local.json ---------------------------------------------------------------------------------------------


def test_sam_local_invoke_uses_the_local_env_file(sam_reads: dict[str, Any]) -> None:
    local_invoke = sam_reads["local_invoke"]
    assert local_invoke["env_vars"] == "env/local.json"
    assert local_invoke["add_host"] == {"host.docker.internal": "host-gateway"}


def test_local_env_file_only_sets_variables_the_template_declares() -> None:
    # sam local invoke silently ignores any other variable.
    env_file = json.loads(LOCAL_ENV_FILE.read_text(encoding="utf-8"))
    assert set(env_file) == {FUNCTION_ID}
    declared = load_template(TEMPLATE_PATH)["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    assert set(env_file[FUNCTION_ID]) <= set(declared)


def test_local_invoke_writes_to_a_local_security_hub(sam_reads: dict[str, Any]) -> None:
    endpoint = urlparse(sam_reads["local_environment"]["AWS_ENDPOINT_URL_SECURITYHUB"])
    assert endpoint.scheme == "http"
    assert endpoint.hostname in ("host.docker.internal", "localhost", "127.0.0.1")


def test_local_invoke_log_levels_agree(sam_reads: dict[str, Any]) -> None:
    # sam local sets AWS_LAMBDA_LOG_LEVEL from ApplicationLogLevel; Powertools obeys it and warns on a mismatch.
    environment = sam_reads["local_environment"]
    lambda_level = LAMBDA_ADVANCED_LOGGING_LEVELS[environment["AWS_LAMBDA_LOG_LEVEL"]]
    assert lambda_level == environment["POWERTOOLS_LOG_LEVEL"]
