"""AWS_ENDPOINT_URL_SECURITYHUB: the template sets it to "" so that ``sam local invoke --env-vars`` may override it.

Deployed, the empty value must leave boto3 on the real Security Hub endpoint; set, it must be used as it is.
No request is sent: the client's resolved endpoint is inspected.
"""

from __future__ import annotations

import os

import boto3
import pytest

from publisher import SECURITY_HUB_CLIENT_CONFIG
from tools.cloudformation import FUNCTION_ID, TEMPLATE_PATH, load_template

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_SECURITYHUB"


@pytest.fixture(autouse=True)
def _offline_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Neither the global override nor a profile's endpoint_url may decide what these tests observe.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


def security_hub_endpoint(region: str) -> str:
    """The endpoint of the client the detector builds (same configuration), in ``region``."""
    session = boto3.session.Session(region_name=region)
    return session.client("securityhub", config=SECURITY_HUB_CLIENT_CONFIG).meta.endpoint_url


def test_template_declares_the_variable_empty() -> None:
    variables = load_template(TEMPLATE_PATH)["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    assert variables[ENDPOINT_VARIABLE] == ""


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "ap-southeast-2"])
def test_empty_value_means_the_real_endpoint(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE, "")
    assert security_hub_endpoint(region) == f"https://securityhub.{region}.amazonaws.com"


def test_empty_value_behaves_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE, "")
    with_empty = security_hub_endpoint("eu-central-1")
    monkeypatch.delenv(ENDPOINT_VARIABLE)
    assert with_empty == security_hub_endpoint("eu-central-1")


@pytest.mark.parametrize("endpoint", ["http://host.docker.internal:5000", "http://127.0.0.1:5000"])
def test_set_value_is_used_as_is(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE, endpoint)
    assert security_hub_endpoint("us-east-1") == endpoint
