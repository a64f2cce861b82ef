"""Graded detections: each behaviour's severity, what its finding shows, and the settings that tune them."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from cloudtrail import read_record
from finding import MAX_RECOMMENDATION, DetectorAccount, build_finding
from grading import BEHAVIOURS, DEFAULT_TRUSTED_LAYER_ACCOUNTS, caller_kind
from rule import DetectorIdentity, FunctionRef, RuleSettings, SettingsError, Verdict, evaluate
from tests.asff import assert_valid_finding
from tests.conftest import SAMPLE_RULE_SETTINGS
from tests.support.cases import load_cases

DETECTOR = DetectorAccount(account_id="111122223333", partition="aws", region="eu-west-1")
ACCOUNT = "111122223333"
OTHER = "444455556666"


def sample(file: str) -> dict[str, Any]:
    return copy.deepcopy(next(case.event["detail"] for case in load_cases() if case.file == file))


def judged(detail: dict[str, Any], settings: RuleSettings = SAMPLE_RULE_SETTINGS) -> tuple[Verdict, dict[str, Any]]:
    verdict = evaluate(detail, settings)
    assert verdict.kind == "finding", verdict.reason
    finding = build_finding(read_record(detail), verdict, DETECTOR)
    assert_valid_finding(finding)
    return verdict, finding


def permission(principal: str, **request: str) -> dict[str, Any]:
    detail = sample("cross-account-permission.json")
    detail["requestParameters"] = {"functionName": "payments-api", "action": "lambda:InvokeFunction",
                                   "statementId": "s", "principal": principal, **request}  # fmt: skip
    detail["responseElements"] = None
    return detail


# The table: each peer-ranked move is a finding by default, graded, and says what changed ---------------------------


def test_a_public_function_url_is_critical_and_shows_its_auth_type_and_origins() -> None:
    verdict, finding = judged(sample("public-function-url.json"))
    assert (verdict.behaviour, finding["Severity"]["Label"]) == ("public-function-url", "CRITICAL")
    assert finding["Title"].startswith("Function URL with no authentication on payments-api by ")
    assert finding["ProductFields"]["change.authType"] == "NONE"
    assert finding["ProductFields"]["change.corsAllowOrigins"] == "*"
    assert "What changed: authType NONE" in finding["Description"]
    assert finding["Types"] == ["TTPs/Persistence/T1133-External Remote Services"]


@pytest.mark.parametrize("file", ["backdoor-function-public-permission.json", "resource-policy-public.json"])
def test_a_star_permission_by_add_permission_or_resource_policy_is_critical(file: str) -> None:
    verdict, finding = judged(sample(file))
    assert (verdict.behaviour, verdict.severity) == ("public-permission", "CRITICAL")
    fields = finding["ProductFields"]
    assert "*" in (fields.get("change.principal") or fields.get("change.statement[0].principal") or "")


def test_the_statement_lambda_returned_is_in_the_finding() -> None:
    _, finding = judged(sample("backdoor-function-public-permission.json"))
    statement = json.loads(finding["ProductFields"]["change.statement"])
    assert statement["Principal"] == "*" and statement["Sid"] == "backdoor"


def test_a_star_layer_permission_is_critical_and_with_an_organisation_is_cross_account() -> None:
    detail = sample("layer-permission-public.json")
    assert evaluate(detail, SAMPLE_RULE_SETTINGS).severity == "CRITICAL"
    detail["requestParameters"]["organizationId"] = "o-a1b2c3d4e5"
    verdict = evaluate(detail, SAMPLE_RULE_SETTINGS)
    assert (verdict.behaviour, verdict.severity) == ("cross-account-access", "HIGH")


@pytest.mark.parametrize(
    ("principal", "request_fields", "behaviour", "severity"),
    [
        ("*", {}, "public-permission", "CRITICAL"),
        ("*", {"principalOrgID": "o-a1b2c3d4e5"}, "cross-account-access", "HIGH"),
        ("*", {"sourceAccount": OTHER}, "cross-account-access", "HIGH"),
        (OTHER, {}, "cross-account-access", "HIGH"),
        (f"arn:aws:iam::{OTHER}:root", {}, "cross-account-access", "HIGH"),
        ("s3.amazonaws.com", {}, "cross-account-access", "HIGH"),  # a confused deputy: any account's bucket
        ("s3.amazonaws.com", {"sourceArn": "arn:aws:s3:::uploads", "sourceAccount": ACCOUNT}, "deployment-changed", "HIGH"),
        (ACCOUNT, {}, "deployment-changed", "HIGH"),  # the seed's AddPermission: never lower than HIGH
    ],
)  # fmt: skip
def test_add_permission_is_graded_by_whom_it_lets_in(
    principal: str, request_fields: dict[str, str], behaviour: str, severity: str
) -> None:
    verdict = evaluate(permission(principal, **request_fields), SAMPLE_RULE_SETTINGS)
    assert (verdict.behaviour, verdict.severity) == (behaviour, severity)


def test_a_layer_from_an_untrusted_account_is_foreign_code_with_each_layer_shown() -> None:
    verdict, finding = judged(sample("layer-extension-foreign-layer.json"))
    assert (verdict.behaviour, verdict.severity) == ("foreign-code", "HIGH")
    layers = finding["ProductFields"]["change.layers"]
    assert f"account {OTHER}, NOT trusted" in layers
    details = finding["Resources"][0]["Details"]["AwsLambdaFunction"]
    assert details["Layers"] == [
        {"Arn": f"arn:aws:lambda:eu-west-1:{OTHER}:layer:stratus-red-team-lambda-layer-my-lambda-extension:1",
         "CodeSize": 2120}
    ]  # fmt: skip
    assert details["Role"].endswith(":role/stratus-red-team-lambda-layer-lambda-role")
    assert details["Runtime"] == "python3.10" and details["CodeSha256"]
    assert "Environment" not in details


def test_requested_layers_are_the_list_after_the_change_and_trusted_publishers_are_not_foreign() -> None:
    detail = sample("layer-extension-foreign-layer.json")
    powertools = "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:7"
    detail["requestParameters"]["layers"] = [powertools, f"arn:aws:lambda:eu-west-1:{ACCOUNT}:layer:own:2"]
    verdict = evaluate(detail, SAMPLE_RULE_SETTINGS)
    assert (verdict.behaviour, verdict.severity) == ("execution-path-changed", "HIGH")
    assert "017000801446" in DEFAULT_TRUSTED_LAYER_ACCOUNTS
    distrusting = RuleSettings.from_config(None, trusted_layer_accounts="")
    assert evaluate(detail, distrusting).behaviour == "foreign-code"
    trusting = RuleSettings.from_config(None, trusted_layer_accounts=OTHER)
    assert evaluate(sample("layer-extension-foreign-layer.json"), trusting).behaviour == "execution-path-changed"


def test_a_destination_in_another_account_is_high_and_named_with_its_account() -> None:
    verdict, finding = judged(sample("invoke-config-destination-other-account.json"))
    assert (verdict.behaviour, verdict.severity) == ("external-destination", "HIGH")
    assert f"(account {OTHER}, another account)" in finding["ProductFields"]["change.onSuccess.destination"]
    own = sample("invoke-config-destination-other-account.json")
    own["requestParameters"]["destinationConfig"]["onSuccess"]["destination"] = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:q"
    assert evaluate(own, SAMPLE_RULE_SETTINGS).behaviour == "other-write"


def test_code_signing_removed_or_set_to_warn_is_high() -> None:
    verdict, _ = judged(sample("code-signing-removed.json"))
    assert (verdict.behaviour, verdict.severity) == ("code-signing-weakened", "HIGH")
    detail = sample("tag-function.json")
    detail["eventName"] = "UpdateCodeSigningConfig20200422"
    detail["requestParameters"] = {"codeSigningConfigArn": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:code-signing-config:csc-1",
                                   "codeSigningPolicies": {"untrustedArtifactOnDeployment": "Warn"}}  # fmt: skip
    assert evaluate(detail, SAMPLE_RULE_SETTINGS).behaviour == "code-signing-weakened"


def test_new_code_shows_the_new_hash_and_an_image_from_another_registry_is_foreign() -> None:
    verdict, finding = judged(sample("overwrite-code.json"))
    assert (verdict.behaviour, verdict.severity) == ("new-code", "HIGH")
    assert finding["ProductFields"]["change.codeSha256"] == "Pt1c8vVaBygmNtAeSyjlpdy7r8nHRqJAAL++HEGlQkc="
    assert finding["Types"] == ["TTPs/Persistence/T1525-Implant Internal Image"]  # the seed's technique
    detail = sample("overwrite-code.json")
    detail["requestParameters"]["imageUri"] = f"{OTHER}.dkr.ecr.eu-west-1.amazonaws.com/tools:latest"
    assert evaluate(detail, SAMPLE_RULE_SETTINGS).behaviour == "foreign-code"
    detail["requestParameters"] = {"functionName": "f", "s3Bucket": "artifacts", "s3Key": "f.zip"}
    _, finding = judged(detail)
    assert "does not say its account" in finding["ProductFields"]["change.s3Bucket"]


def test_environment_values_never_reach_the_finding() -> None:
    detail = sample("layer-extension-foreign-layer.json")
    detail["requestParameters"]["environment"] = {"variables": {"DB_PASSWORD": "hunter2-secret"}}
    detail["responseElements"]["environment"] = {"variables": {"DB_PASSWORD": "hunter2-secret"}}
    _, finding = judged(detail)
    assert "hunter2" not in json.dumps(finding)
    assert finding["ProductFields"]["change.environment"].startswith("changed")


# Failed calls, callers and the severity floor --------------------------------------------------------------------


def test_a_failed_call_keeps_its_behaviour_and_says_it_failed() -> None:
    detail = sample("public-function-url.json")
    detail.update(errorCode="AccessDenied", errorMessage="not authorized to perform lambda:CreateFunctionUrlConfig")
    detail["responseElements"] = None
    verdict, finding = judged(detail)
    assert verdict.behaviour == "public-function-url" and verdict.severity == "HIGH"  # nothing became public
    assert "attempted, and failed," in finding["Title"]
    assert "The call failed: AccessDenied" in finding["Description"]
    seed = sample("failed-call-access-denied.json")
    assert evaluate(seed, SAMPLE_RULE_SETTINGS).severity == "HIGH"  # a failed seed action stays HIGH


@pytest.mark.parametrize(
    ("identity", "extra", "kind"),
    [
        ({"type": "AssumedRole", "invokedBy": "cloudformation.amazonaws.com"}, {}, "automation"),
        ({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}, {}, "automation"),
        ({"type": "Root"}, {}, "person"),
        ({"type": "IAMUser"}, {"sessionCredentialFromConsole": "true"}, "person"),
        ({"type": "IAMUser"}, {}, "unknown"),  # access keys: a person's or a pipeline's, the record cannot tell
        ({"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123"}}}, {}, "person"),
        ({"type": "AssumedRole", "sessionContext": {"webIdFederationData": {"federatedProvider": "arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com"}}}, {}, "automation"),
        ({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin/bob"}, {}, "unknown"),  # the session ARN is not the issuer
        (None, {}, "unknown"),
    ],
)  # fmt: skip
def test_caller_kind_comes_from_fields_aws_writes(identity: Any, extra: dict[str, str], kind: str) -> None:
    assert caller_kind(identity, extra) == kind


def test_every_sample_finding_names_the_caller_kind() -> None:
    _, finding = judged(sample("add-permission-by-sso-admin.json"))
    assert finding["ProductFields"]["callerKind"] == "person"


# Settings: the allowlist and public access, lowering, switching off ----------------------------------------------


def test_the_allowlist_never_hides_public_access_unless_told_to() -> None:
    detail = sample("allowlisted-pipeline-public-url.json")
    verdict = evaluate(detail, SAMPLE_RULE_SETTINGS)
    assert verdict.kind == "finding" and "public access is never allowlisted" in verdict.reason
    hiding = RuleSettings.from_environment({**_sample_environment(), "ALLOWLIST_HIDES_PUBLIC": "true"})
    assert evaluate(detail, hiding).kind == "allowlisted"
    # The same role's ordinary changes stay allowlisted.
    assert evaluate(sample("deploy-role-cicd-session.json"), SAMPLE_RULE_SETTINGS).kind == "allowlisted"


def test_a_behaviour_can_be_lowered_or_switched_off_but_never_the_detector() -> None:
    lowered = RuleSettings.from_config(None, behaviour_severities="public-function-url=MEDIUM,other-write=OFF")
    assert evaluate(sample("public-function-url.json"), lowered).severity == "MEDIUM"
    assert evaluate(sample("tag-function.json"), lowered).kind == "ignored"
    with pytest.raises(SettingsError, match="cannot be lowered"):
        RuleSettings.from_config(None, behaviour_severities="detector-changed=LOW")
    # A change to the detector that is also an "other write" is still reported, CRITICAL.
    detector = DetectorIdentity(FunctionRef(ACCOUNT, "eu-west-1", "payments-api"))
    verdict = evaluate(
        sample("tag-function.json") | {"requestParameters": {"functionName": "payments-api"}}, lowered, detector
    )
    assert (verdict.kind, verdict.behaviour, verdict.severity) == ("finding", "detector-changed", "CRITICAL")


# The behaviours themselves ---------------------------------------------------------------------------------------


def test_every_behaviour_has_its_own_technique_and_a_runbook_within_the_limit() -> None:
    techniques = [behaviour.technique.split("-", 1)[0] for behaviour in BEHAVIOURS.values()]
    assert len(set(techniques)) == len(techniques)
    for behaviour in BEHAVIOURS.values():
        assert re.fullmatch(r"T\d{4}(\.\d{3})?", behaviour.technique.split("-", 1)[0])
        assert len(behaviour.runbook) <= MAX_RECOMMENDATION
        assert all(step in behaviour.runbook for step in ("Verify", "Revert", "Revoke"))


def test_every_behaviour_has_a_sample() -> None:
    sampled = {case.expected_behaviour for case in load_cases() if case.expected_verdict == "finding"}
    # The detector's own change needs the detector's identity, which a sample cannot carry: tests/unit/test_tamper.py.
    assert set(BEHAVIOURS) - sampled == {"detector-changed"}


def _sample_environment() -> dict[str, str]:
    from tests.support.cases import sample_settings

    return sample_settings()


def test_a_resource_policy_or_tag_on_the_detector_is_a_change_to_the_detector() -> None:
    detector = DetectorIdentity(FunctionRef(ACCOUNT, "eu-west-1", "payments-api"))
    everyone = RuleSettings.from_config("*")
    for file in ("resource-policy-public.json", "tag-function.json"):
        verdict = evaluate(sample(file), everyone, detector)
        assert (verdict.kind, verdict.behaviour, verdict.severity) == ("finding", "detector-changed", "CRITICAL"), file
        _, finding = judged(sample(file))
        assert finding["Resources"][0]["Id"] == f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:payments-api"
