"""The rule: which records are in scope, and whose changes are allowlisted."""

from __future__ import annotations

from typing import Any

import pytest

from rule import CRUD_ACTIONS, RuleSettings, action_of, evaluate, matches_pattern, principal_identity
from tests.conftest import SAMPLE_RULE_SETTINGS
from tests.support.cases import INVALID, load_cases

CASES = [case for case in load_cases() if case.expected_verdict != INVALID]


def lambda_record(event_name: str, user_identity: Any = None, **extra: Any) -> dict[str, Any]:
    record = {
        "eventSource": "lambda.amazonaws.com",
        "eventName": event_name,
        "eventID": "9f0c1b2a-0000-4000-8000-00000000abcd",
        "eventTime": "2026-11-20T09:15:31Z",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "userIdentity": user_identity
        if user_identity is not None
        else {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
    }
    record.update(extra)
    return record


def assumed_role(role_arn: str | None, session_arn: str) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": "AssumedRole", "arn": session_arn}
    if role_arn is not None:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": role_arn}}
    return identity


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.file)
def test_sample_events_get_their_expected_verdict(case: Any) -> None:
    assert evaluate(case.event["detail"], SAMPLE_RULE_SETTINGS).kind == case.expected_verdict, case.why


SUFFIXES = ["", "20150331", "20150331v2", "20171031", "20150331v10"]


@pytest.mark.parametrize("action", sorted(CRUD_ACTIONS))
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_action_is_in_scope_plain_and_suffixed(action: str, suffix: str) -> None:
    verdict = evaluate(lambda_record(action + suffix))
    assert verdict.kind == "finding"
    assert verdict.action == action


@pytest.mark.parametrize(
    ("event_name", "action"),
    [
        ("DeleteFunctionConcurrency20171031", "DeleteFunctionConcurrency"),  # shares the DeleteFunction prefix
        ("DeleteFunctionUrlConfig", "DeleteFunctionUrlConfig"),
        ("PutFunctionConcurrency20171031", "PutFunctionConcurrency"),
        ("PublishLayerVersion20181031", "PublishLayerVersion"),
        ("TagResource20170331v2", "TagResource"),
    ],
)
def test_other_writes_are_findings_of_their_own_action_never_a_seed_action(event_name: str, action: str) -> None:
    verdict = evaluate(lambda_record(event_name))
    assert (verdict.kind, verdict.action) == ("finding", action)
    assert verdict.behaviour == "other-write"
    assert verdict.severity in ("LOW", "MEDIUM")


@pytest.mark.parametrize(
    "event_name",
    [
        "deletefunction",  # CloudTrail writes the API's own spelling: a case variant is an unknown action
        "DELETEFUNCTION20150331",
        "DeleteFunction2015",  # a suffix is exactly 8 digits
        "DeleteFunction201503311",
        "DeleteFunction20150331v",
        "DeleteFunction20150331x2",
        "DeleteFunction ",
        "xDeleteFunction",
        "CreateFunctionX",
        "",
    ],
)
def test_unknown_and_look_alike_names_are_findings_at_the_lowest_severity(event_name: str) -> None:
    verdict = evaluate(lambda_record(event_name))
    assert verdict.kind == "finding"
    assert verdict.grade is not None and not verdict.grade.known_action
    assert verdict.severity == "LOW"
    assert verdict.action not in CRUD_ACTIONS


@pytest.mark.parametrize("event_name", ["GetFunction20150331v2", "ListFunctions20150331", "GetPolicy20150331v2"])
def test_reads_are_ignored(event_name: str) -> None:
    assert evaluate(lambda_record(event_name)).kind == "ignored"
    assert evaluate(lambda_record(event_name, readOnly=True)).kind == "ignored"


@pytest.mark.parametrize("source", ["iam.amazonaws.com", "lambda.amazonaws.com.evil", "", None, 7])
def test_other_event_sources_are_ignored(source: Any) -> None:
    assert evaluate(lambda_record("DeleteFunction", eventSource=source)).kind == "ignored"


def test_action_of_strips_only_an_api_version_suffix() -> None:
    assert action_of("UpdateFunctionCode20150331v2") == "UpdateFunctionCode"
    assert action_of("DeleteFunctionConcurrency20171031") == "DeleteFunctionConcurrency"
    assert action_of("Delete Function") is None


@pytest.mark.parametrize(
    ("user_identity", "expected"),
    [
        (
            assumed_role(
                "arn:aws:iam::111122223333:role/ci/DeployRole",
                "arn:aws:sts::111122223333:assumed-role/DeployRole/build-42",
            ),
            "arn:aws:iam::111122223333:role/ci/DeployRole",
        ),
        # no issuer in the record: the role is recovered by dropping the session name
        (
            assumed_role(None, "arn:aws:sts::111122223333:assumed-role/DeployRole/build-42"),
            "arn:aws:iam::111122223333:role/DeployRole",
        ),
        (
            assumed_role(None, "arn:aws-cn:sts::111122223333:assumed-role/Ops/x"),
            "arn:aws-cn:iam::111122223333:role/Ops",
        ),
        ({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"}, "arn:aws:iam::111122223333:user/alice"),
        ({"type": "Root", "arn": "arn:aws:iam::111122223333:root"}, "arn:aws:iam::111122223333:root"),
        (
            {
                "type": "FederatedUser",
                "arn": "arn:aws:sts::111122223333:federated-user/DeployRole",
                "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/bob"}},
            },
            "arn:aws:iam::111122223333:user/bob",
        ),
        ({"type": "FederatedUser", "arn": "arn:aws:sts::111122223333:federated-user/DeployRole"}, None),
        ({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}, None),
        ({"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/DeployRole"}, None),
        # a record whose type and ARN disagree is read by the ARN's shape, never in the caller's favour
        (
            {"type": "IAMUser", "arn": "arn:aws:sts::111122223333:assumed-role/Dev/xDeployRole"},
            "arn:aws:iam::111122223333:role/Dev",
        ),
        # IAM paths may contain colons: the issuer still names the session's role, and keeps its path
        (
            assumed_role(
                "arn:aws:iam::111122223333:role/team:ci/DeployRole",
                "arn:aws:sts::111122223333:assumed-role/DeployRole/b-1",
            ),
            "arn:aws:iam::111122223333:role/team:ci/DeployRole",
        ),
        # an issuer naming another role than the session's is not believed
        (
            assumed_role(
                "arn:aws:iam::111122223333:role/team:ci/DeployRole",
                "arn:aws:sts::111122223333:assumed-role/Dev/xDeployRole",
            ),
            "arn:aws:iam::111122223333:role/Dev",
        ),
        # an issuer that is itself an STS session proves nothing
        (
            assumed_role(
                "arn:aws:sts::111122223333:assumed-role/DeployRole/x",
                "arn:aws:sts::111122223333:assumed-role/Dev/xDeployRole",
            ),
            "arn:aws:iam::111122223333:role/Dev",
        ),
        ({}, None),
        (None, None),
        ("arn:aws:iam::111122223333:user/DeployRole", None),
        ({"type": "IAMUser", "arn": 42}, None),
    ],
)
def test_principal_identity_is_one_the_caller_cannot_choose(user_identity: Any, expected: str | None) -> None:
    assert principal_identity(user_identity) == expected


def test_deploy_role_session_is_allowlisted_whatever_its_session_name() -> None:
    identity = assumed_role(
        "arn:aws:iam::111122223333:role/DeployRole", "arn:aws:sts::111122223333:assumed-role/DeployRole/anything"
    )
    verdict = evaluate(lambda_record("UpdateFunctionCode20150331v2", identity))
    assert verdict.kind == "allowlisted"
    assert verdict.principal_arn == "arn:aws:iam::111122223333:role/DeployRole"


def test_session_named_like_the_deploy_role_is_a_finding() -> None:
    identity = assumed_role(
        "arn:aws:iam::111122223333:role/Dev", "arn:aws:sts::111122223333:assumed-role/Dev/xDeployRole"
    )
    verdict = evaluate(lambda_record("UpdateFunctionCode20150331v2", identity))
    assert verdict.kind == "finding"
    assert verdict.principal_arn == "arn:aws:iam::111122223333:role/Dev"


@pytest.mark.parametrize(
    "user_identity", [None, {}, {"type": "AWSService"}, {"type": "AssumedRole"}, "DeployRole", 3, []]
)
def test_missing_identity_is_never_allowlisted(user_identity: Any) -> None:
    record = lambda_record("DeleteFunction")
    record["userIdentity"] = user_identity
    settings = RuleSettings(allowlist_patterns=("*",))
    assert evaluate(record, settings).kind == "finding"


def test_failed_calls_are_still_findings() -> None:
    verdict = evaluate(lambda_record("DeleteFunction20150331", errorCode="AccessDenied"))
    assert verdict.kind == "finding"
    assert "attempted" in verdict.reason


def test_allowlist_comes_from_configuration() -> None:
    settings = RuleSettings.from_config("arn:aws:iam::111122223333:role/Pipeline, *:user/alice")
    assert settings.allowlist_patterns == ("arn:aws:iam::111122223333:role/Pipeline", "*:user/alice")
    assert evaluate(lambda_record("DeleteFunction"), settings).kind == "allowlisted"
    assert RuleSettings.from_config(None).allowlist_patterns == ("*DeployRole",)
    # an empty allowlist allowlists nobody, not everybody
    assert RuleSettings.from_config("").allowlist_patterns == ()
    user = {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/DeployRole"}
    assert evaluate(lambda_record("DeleteFunction", user), RuleSettings.from_config("")).kind == "finding"


def test_every_write_is_watched_without_a_setting() -> None:
    for name in ("PutFunctionConcurrency20171031", "CreateFunctionUrlConfig20211031", "DeleteFunction20150331"):
        assert evaluate(lambda_record(name)).kind == "finding", name


@pytest.mark.parametrize(
    ("arn", "pattern", "expected"),
    [
        ("arn:aws:iam::111122223333:role/DeployRole", "*DeployRole", True),
        ("arn:aws:iam::111122223333:role/DeployRole", "*deployrole", False),
        ("arn:aws:iam::111122223333:role/DeployRole", "arn:aws:iam::*:role/DeployRole", True),
        ("arn:aws:iam::111122223333:role/ci/DeployRole", "arn:aws:iam::111122223333:role/DeployRole", False),
        # an ARN pattern is matched field by field: `*` never reaches across a colon inside an IAM path
        ("arn:aws:iam::111122223333:user/x:role/DeployRole", "arn:aws:iam::*:role/DeployRole", False),
        ("arn:aws:iam::111122223333:user/DeployRole", "arn:aws:iam::*:role/DeployRole", False),
        ("arn:aws-us-gov:iam::111122223333:role/DeployRole", "arn:aws:iam::*:role/DeployRole", False),
    ],
)
def test_allowlist_patterns(arn: str, pattern: str, expected: bool) -> None:
    assert matches_pattern(arn, pattern) is expected
