"""Security properties: the allowlist cannot be talked into hiding a change, secrets stay out of findings and logs,
and the deployed permissions stay narrow.

Allowlist bypass attempts run through the whole handler on a mocked Security Hub, under three allowlists:

* ``*DeployRole``, the default. It matches any principal ARN that ends in ``DeployRole``, because the original
  rule's own authorised case is an IAM user named ``DeployRole``. Users, role paths, partitions and accounts that
  end in ``DeployRole`` are therefore allowlisted by design (pinned below, so that the trade-off stays visible).
* ``arn:aws:iam::111122223333:role/DeployRole``, the recommended exact pattern.
* ``arn:aws:iam::*:role/DeployRole``, an ARN-shaped pattern matched field by field (the role in any account).

Whatever the pattern, a name the caller picks (a session name, a federated user name) must never suppress a
finding, and neither may an identity the record does not vouch for.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from app import Detector
from cloudtrail import InvalidEventError
from publisher import PublishError
from tests.asff import assert_valid_finding
from tests.conftest import FakeLambdaContext, json_log_lines, new_detector, stored_findings
from tests.support.cases import load_cases
from tests.support.cloudformation import FORWARDER_PATH, Stack, as_list, load_template
from tests.template.test_template import PARAMETER_SETS, PRODUCT_ARN, stack

ACCOUNT = "111122223333"
DEFAULT_PATTERN = "*DeployRole"
EXACT_ROLE_PATTERN = f"arn:aws:iam::{ACCOUNT}:role/DeployRole"
ANY_ACCOUNT_ROLE_PATTERN = "arn:aws:iam::*:role/DeployRole"
EVERY_PATTERN = (DEFAULT_PATTERN, EXACT_ROLE_PATTERN, ANY_ACCOUNT_ROLE_PATTERN)
EXACT_PATTERNS = (EXACT_ROLE_PATTERN, ANY_ACCOUNT_ROLE_PATTERN)

SAMPLE_EVENT = next(case.event for case in load_cases() if case.file == "spoofed-deployrole-session-name.json")
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/DeployRole"
SANDBOX_ROLE = f"arn:aws:iam::{ACCOUNT}:role/DevSandboxRole"


# --- Identities --------------------------------------------------------------------------------------------------


def session(role_arn: str | None, session_arn: str) -> dict[str, Any]:
    """An AssumedRole identity; without ``role_arn`` the record carries no session issuer."""
    identity: dict[str, Any] = {"type": "AssumedRole", "arn": session_arn, "accountId": ACCOUNT}
    if role_arn is not None:
        identity["sessionContext"] = {"sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": ACCOUNT}}
    return identity


def sandbox_session(session_name: str, with_issuer: bool = True) -> dict[str, Any]:
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/DevSandboxRole/{session_name}"
    return session(SANDBOX_ROLE if with_issuer else None, session_arn)


def role_session(role_arn: str, session_name: str = "build-42") -> dict[str, Any]:
    """A session of ``role_arn`` as CloudTrail writes it: the STS ARN names the role without its path."""
    partition, account, resource = role_arn.split(":")[1], role_arn.split(":")[4], role_arn.split(":", 5)[5]
    role_name = resource.rsplit("/", 1)[-1]
    return session(role_arn, f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}")


def iam_user(arn: str, identity_type: str = "IAMUser") -> dict[str, Any]:
    return {"type": identity_type, "arn": arn, "accountId": ACCOUNT, "userName": arn.rsplit("/", 1)[-1]}


def federated_user(name: str, issuer_arn: str | None) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": "FederatedUser", "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/{name}"}
    if issuer_arn is not None:
        identity["sessionContext"] = {"sessionIssuer": {"type": "IAMUser", "arn": issuer_arn}}
    return identity


@dataclass(frozen=True)
class BypassAttempt:
    name: str
    user_identity: Any
    reported_under: tuple[str, ...] = EVERY_PATTERN
    region: str = "eu-west-1"
    principal: str | None = None
    """The identity the finding must name as the principal, when the attempt hides the real one."""


BYPASS_ATTEMPTS = [
    # Session names are chosen by whoever calls sts:AssumeRole.
    *[
        BypassAttempt(f"session of DevSandboxRole named {name!r}", sandbox_session(name), principal=SANDBOX_ROLE)
        for name in (
            "xDeployRole",
            "DeployRole",
            "../DeployRole",
            "Deploy Role",
            " DeployRole",
            "DeployRole\u200b",
            "ＤｅｐｌｏｙＲｏｌｅ",
            "role/DeployRole",
        )
    ],
    # Without a session issuer the role is recovered from the STS ARN: the role, never the session name.
    *[
        BypassAttempt(
            f"issuer-less session of DevSandboxRole named {name!r}",
            sandbox_session(name, with_issuer=False),
            principal=SANDBOX_ROLE,
        )
        for name in ("DeployRole", "x/DeployRole", "../DeployRole")
    ],
    BypassAttempt(
        "session with an empty sessionContext",
        dict(sandbox_session("DeployRole", with_issuer=False), sessionContext={}),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt(
        "session with an empty sessionIssuer",
        dict(sandbox_session("DeployRole", with_issuer=False), sessionContext={"sessionIssuer": {}}),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt(
        "session whose issuer is itself a DeployRole session",
        session(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole/x",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/DevSandboxRole/DeployRole",
        ),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt(
        "session whose issuer names DeployRole but whose ARN is a DevSandboxRole session",
        session(DEPLOY_ROLE, f"arn:aws:sts::{ACCOUNT}:assumed-role/DevSandboxRole/build-42"),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt(
        "assumed-role ARN with no session name", session(None, f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole")
    ),
    # IAM users that look like roles, but whose ARN does not end in DeployRole.
    BypassAttempt("user at path /role/ named DeployRoleX", iam_user(f"arn:aws:iam::{ACCOUNT}:user/role/DeployRoleX")),
    BypassAttempt("user named role-Deploy", iam_user(f"arn:aws:iam::{ACCOUNT}:user/role-Deploy")),
    BypassAttempt("user at path /DeployRole/", iam_user(f"arn:aws:iam::{ACCOUNT}:user/DeployRole/mallory")),
    # Case, and extra characters after the role name.
    *[
        BypassAttempt(f"role {name!r}", role_session(f"arn:aws:iam::{ACCOUNT}:role/{name}"))
        for name in ("deployrole", "DEPLOYROLE", "Deployrole")
    ],
    BypassAttempt("role DeployRole/extra", role_session(f"arn:aws:iam::{ACCOUNT}:role/DeployRole/extra")),
    BypassAttempt("role ARN with a trailing space", iam_user(f"{DEPLOY_ROLE} ")),
    BypassAttempt("role ARN with a trailing colon segment", iam_user(f"{DEPLOY_ROLE}:extra")),
    # Federated users: the name is the caller's choice; only the issuing IAM user is an identity.
    BypassAttempt("federated user DeployRole without issuer", federated_user("DeployRole", None)),
    BypassAttempt(
        "federated user DeployRole issued by alice",
        federated_user("DeployRole", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        principal=f"arn:aws:iam::{ACCOUNT}:user/alice",
    ),
    BypassAttempt(
        "federated user whose issuer is a DeployRole session",
        federated_user("DeployRole", f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole/x"),
    ),
    # Declared type and ARN disagree: never read in the caller's favour.
    BypassAttempt(
        "IAMUser type with a DevSandboxRole session ARN named DeployRole",
        iam_user(f"arn:aws:sts::{ACCOUNT}:assumed-role/DevSandboxRole/DeployRole"),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt(
        "Root type with a DevSandboxRole session ARN named DeployRole",
        iam_user(f"arn:aws:sts::{ACCOUNT}:assumed-role/DevSandboxRole/DeployRole", "Root"),
        principal=SANDBOX_ROLE,
    ),
    BypassAttempt("AssumedRole type with a bare role ARN and no issuer", session(None, DEPLOY_ROLE)),
    BypassAttempt("FederatedUser type with a bare role ARN and no issuer", iam_user(DEPLOY_ROLE, "FederatedUser")),
    # AWS services and missing identities: nothing to allowlist.
    BypassAttempt("AWS service invoked by DeployRole", {"type": "AWSService", "invokedBy": "DeployRole"}),
    BypassAttempt("AWS service invoked by the role's ARN", {"type": "AWSService", "invokedBy": DEPLOY_ROLE}),
    BypassAttempt("no userIdentity", None),
    BypassAttempt("userIdentity that is the role's ARN as text", DEPLOY_ROLE),
    # Allowlisted by the default glob by design, reported by the exact patterns.
    BypassAttempt("IAM user named DeployRole", iam_user(f"arn:aws:iam::{ACCOUNT}:user/DeployRole"), EXACT_PATTERNS),
    BypassAttempt(
        "user at path /role/ named DeployRole", iam_user(f"arn:aws:iam::{ACCOUNT}:user/role/DeployRole"), EXACT_PATTERNS
    ),
    BypassAttempt(
        "user with a colon in its path", iam_user(f"arn:aws:iam::{ACCOUNT}:user/x:role/DeployRole"), EXACT_PATTERNS
    ),
    BypassAttempt(
        "role DeployRole at path /evil/", role_session(f"arn:aws:iam::{ACCOUNT}:role/evil/DeployRole"), EXACT_PATTERNS
    ),
    BypassAttempt("role ARN with a leading space", iam_user(f" {DEPLOY_ROLE}"), EXACT_PATTERNS),
    BypassAttempt(
        "ARN with an extra field before the role", iam_user(f"arn:aws:iam::{ACCOUNT}:x:role/DeployRole"), EXACT_PATTERNS
    ),
    BypassAttempt(
        "role DeployRole in aws-cn",
        role_session(f"arn:aws-cn:iam::{ACCOUNT}:role/DeployRole"),
        EXACT_PATTERNS,
        "cn-north-1",
    ),
    BypassAttempt(
        "role DeployRole in aws-us-gov",
        role_session(f"arn:aws-us-gov:iam::{ACCOUNT}:role/DeployRole"),
        EXACT_PATTERNS,
        "us-gov-west-1",
    ),
    BypassAttempt(
        "federated user issued by an IAM user named DeployRole",
        federated_user("ci", f"arn:aws:iam::{ACCOUNT}:user/DeployRole"),
        EXACT_PATTERNS,
    ),
    # The ARN-shaped pattern allows DeployRole in any account, by its own wildcard.
    BypassAttempt(
        "role DeployRole of another account",
        role_session("arn:aws:iam::999988887777:role/DeployRole"),
        (EXACT_ROLE_PATTERN,),
    ),
]
ALLOWED_BY_DESIGN = [attempt for attempt in BYPASS_ATTEMPTS if set(attempt.reported_under) != set(EVERY_PATTERN)]


def lambda_event(user_identity: Any, region: str = "eu-west-1", **record_fields: Any) -> dict[str, Any]:
    """The sample CreateFunction event, made by ``user_identity`` (left out when None) in ``region``."""
    event = copy.deepcopy(SAMPLE_EVENT)
    record = event["detail"]
    record.pop("userIdentity")
    if user_identity is not None:
        record["userIdentity"] = copy.deepcopy(user_identity)
    record["awsRegion"] = region
    record.update(record_fields)
    return event


@pytest.fixture
def detector_allowing(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Detector]:
    """The handler as a new container starts it with ALLOWLIST_PATTERNS set (left unset for the default)."""

    def start_with(pattern: str) -> Detector:
        if pattern == DEFAULT_PATTERN:
            monkeypatch.delenv("ALLOWLIST_PATTERNS", raising=False)
        else:
            monkeypatch.setenv("ALLOWLIST_PATTERNS", pattern)
        started = new_detector()
        assert started.settings.allowlist_patterns == (pattern,)
        return started

    return start_with


def invoke(detector: Detector, event: Any) -> dict[str, Any]:
    return detector.lambda_handler(copy.deepcopy(event), FakeLambdaContext())


# --- The allowlist -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", EVERY_PATTERN)
def test_the_deployment_role_itself_is_allowlisted_under_every_pattern(
    detector_allowing: Callable[[str], Detector], security_hub: Any, pattern: str
) -> None:
    """The control for every test below: each allowlist does let the real deployment role through."""
    detector = detector_allowing(pattern)
    result = invoke(detector, lambda_event(role_session(DEPLOY_ROLE, "codebuild-payments-api")))
    assert result["verdict"] == "allowlisted", result["reason"]
    assert stored_findings(security_hub) == []


def verdicts_under(
    detector_allowing: Callable[[str], Detector], security_hub: Any, attempt: BypassAttempt, patterns: tuple[str, ...]
) -> dict[str, str]:
    """The verdict on the attempt under each pattern, each run in a new container on a record of its own; checks
    that Security Hub holds exactly the findings reported."""
    verdicts: dict[str, str] = {}
    reported: set[str] = set()
    for index, pattern in enumerate(patterns):
        detector = detector_allowing(pattern)
        event = lambda_event(attempt.user_identity, attempt.region, eventID=f"bypass-attempt-{index}")
        result = invoke(detector, event)
        verdicts[pattern] = result["verdict"]
        if result["findingId"] is not None:
            reported.add(result["findingId"])
        findings = stored_findings(security_hub)
        assert {finding["Id"] for finding in findings} == reported, pattern
        for finding in findings:
            assert_valid_finding(finding)
            if attempt.principal is not None:
                assert finding["ProductFields"]["principalArn"] == attempt.principal, pattern
    return verdicts


@pytest.mark.parametrize("attempt", BYPASS_ATTEMPTS, ids=lambda attempt: attempt.name)
def test_a_bypass_attempt_is_stored_as_a_finding(
    detector_allowing: Callable[[str], Detector], security_hub: Any, attempt: BypassAttempt
) -> None:
    verdicts = verdicts_under(detector_allowing, security_hub, attempt, attempt.reported_under)
    assert verdicts == dict.fromkeys(attempt.reported_under, "finding")


@pytest.mark.parametrize("attempt", ALLOWED_BY_DESIGN, ids=lambda attempt: attempt.name)
def test_a_glob_allowlists_every_principal_whose_arn_it_matches(
    detector_allowing: Callable[[str], Detector], security_hub: Any, attempt: BypassAttempt
) -> None:
    """By design, not a bypass: ``*DeployRole`` trusts any principal ARN ending in DeployRole (the original rule's
    authorised case is an IAM user named DeployRole), and ``arn:aws:iam::*:role/DeployRole`` trusts the role
    DeployRole of any account. Deployments that want only their deployment role set its exact ARN."""
    allowing = tuple(pattern for pattern in EVERY_PATTERN if pattern not in attempt.reported_under)
    verdicts = verdicts_under(detector_allowing, security_hub, attempt, allowing)
    assert verdicts == dict.fromkeys(allowing, "allowlisted")


# --- Identities as CloudTrail writes them ------------------------------------------------------------------------


def with_session_context(identity: dict[str, Any], **context: Any) -> dict[str, Any]:
    """``identity`` with more fields in its sessionContext, as CloudTrail adds them (web identity, source identity)."""
    changed = copy.deepcopy(identity)
    changed["sessionContext"] = {**changed.get("sessionContext", {}), **context}
    return changed


GITHUB_OIDC = {
    "federatedProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",
    "attributes": {},
}


@dataclass(frozen=True)
class RealisticIdentity:
    name: str
    user_identity: dict[str, Any]
    verdict: str
    """The same under ``*DeployRole`` and the deployment role's exact ARN: both match the role, never a name."""
    principal: str


REALISTIC_IDENTITIES = [
    # An AWS service acting with the caller's credentials (CloudFormation creating a stack's function) records the
    # caller, with invokedBy naming the service: the caller decides.
    RealisticIdentity(
        "DevSandboxRole through CloudFormation (invokedBy)",
        dict(role_session(SANDBOX_ROLE, "DeployRole"), invokedBy="cloudformation.amazonaws.com"),
        "finding",
        SANDBOX_ROLE,
    ),
    RealisticIdentity(
        "DeployRole through CloudFormation (invokedBy)",
        dict(role_session(DEPLOY_ROLE, "AWSCloudFormation"), invokedBy="cloudformation.amazonaws.com"),
        "allowlisted",
        DEPLOY_ROLE,
    ),
    # A GitHub Actions workflow through OIDC (AssumeRoleWithWebIdentity): the session is named by the workflow.
    RealisticIdentity(
        "DevSandboxRole web identity session named DeployRole (webIdFederationData)",
        with_session_context(role_session(SANDBOX_ROLE, "DeployRole"), webIdFederationData=GITHUB_OIDC),
        "finding",
        SANDBOX_ROLE,
    ),
    # sourceIdentity is set by whoever first assumes a role and follows the session through a chain; it is the
    # caller's claim, not an identity.
    RealisticIdentity(
        "DevSandboxRole session whose sourceIdentity is DeployRole",
        with_session_context(role_session(SANDBOX_ROLE, "mallory"), sourceIdentity="DeployRole"),
        "finding",
        SANDBOX_ROLE,
    ),
    # Role chaining: the record names the last role assumed. Whoever may assume DeployRole acts as it, which is
    # why its trust policy must admit the pipeline alone.
    RealisticIdentity(
        "role chain: a DevSandboxRole user who went on to assume DeployRole",
        with_session_context(role_session(DEPLOY_ROLE, "mallory"), sourceIdentity="mallory"),
        "allowlisted",
        DEPLOY_ROLE,
    ),
    RealisticIdentity(
        "role chain: a DeployRole session that went on to assume DevSandboxRole",
        role_session(SANDBOX_ROLE, "codebuild-payments-api"),
        "finding",
        SANDBOX_ROLE,
    ),
    # A person in DeployRole (console switch-role, or SSO into it) is the deployment role to the allowlist: the
    # role is what is trusted, however it is reached.
    RealisticIdentity(
        "a person in DeployRole, switched to in the console",
        with_session_context(
            role_session(DEPLOY_ROLE, "alice@example.com"),
            attributes={"creationDate": "2026-11-20T09:01:12Z", "mfaAuthenticated": "true"},
        ),
        "allowlisted",
        DEPLOY_ROLE,
    ),
]


@pytest.mark.parametrize("identity", REALISTIC_IDENTITIES, ids=lambda identity: identity.name)
def test_realistic_identities_get_their_verdict_under_the_role_allowlists(
    detector_allowing: Callable[[str], Detector], security_hub: Any, identity: RealisticIdentity
) -> None:
    for index, pattern in enumerate((DEFAULT_PATTERN, EXACT_ROLE_PATTERN)):
        detector = detector_allowing(pattern)
        event = lambda_event(identity.user_identity, eventID=f"realistic-identity-{index}")
        result = invoke(detector, event)
        assert result["verdict"] == identity.verdict, (pattern, result["reason"])
        assert identity.principal in result["reason"], pattern
    findings = stored_findings(security_hub)
    assert len(findings) == (2 if identity.verdict == "finding" else 0)
    assert {finding["ProductFields"]["principalArn"] for finding in findings} <= {identity.principal}


# --- Secrets in records ------------------------------------------------------------------------------------------

SECRET_VALUES = (
    "hunter2-db-password-5d1e",
    "sk_live_51HxYzEXAMPLEKEY",
    f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/db-AbCdEf",
    f"arn:aws:sqs:eu-west-1:{ACCOUNT}:internal-payments-queue",
)
SECRET_NAMES = ("DB_PASSWORD", "STRIPE_KEY", "DB_SECRET_ARN", "PAYMENTS_QUEUE_ARN")
VARIABLES = dict(zip(SECRET_NAMES, SECRET_VALUES, strict=True))
EXECUTION_ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api-execution"
FUNCTION_ARN = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:payments-api"
CALLER_ADDRESS = "198.51.100.77"
CALLER_AGENT = "aws-cli/2.17.0 md/command#lambda.update-function-configuration"


def record_with_environment(
    event_name: str, environment_key: str = "environment", variables_key: str = "variables"
) -> dict[str, Any]:
    """A change by DevSandboxRole whose request and response both carry the function's environment."""
    environment = {variables_key: dict(VARIABLES)}
    return lambda_event(
        sandbox_session("alice"),
        eventName=event_name,
        sourceIPAddress=CALLER_ADDRESS,
        userAgent=CALLER_AGENT,
        requestParameters={
            "functionName": "payments-api",
            "role": EXECUTION_ROLE,
            "runtime": "python3.13",
            environment_key: environment,
        },
        responseElements={
            "functionName": "payments-api",
            "functionArn": FUNCTION_ARN,
            "role": EXECUTION_ROLE,
            environment_key: copy.deepcopy(environment),
        },
    )


RECORDS_WITH_ENVIRONMENT = {
    "CreateFunction": record_with_environment("CreateFunction20150331"),
    "UpdateFunctionConfiguration": record_with_environment("UpdateFunctionConfiguration20150331v2"),
    "UpdateFunctionConfiguration, capitalised keys": record_with_environment(
        "UpdateFunctionConfiguration20150331v2", "Environment", "Variables"
    ),
}


def secrets_in(text: str) -> list[str]:
    return [secret for secret in (*SECRET_VALUES, *SECRET_NAMES) if secret in text]


@pytest.mark.parametrize("event", RECORDS_WITH_ENVIRONMENT.values(), ids=RECORDS_WITH_ENVIRONMENT.keys())
def test_findings_never_carry_the_functions_environment(
    detector: Detector, security_hub: Any, event: dict[str, Any]
) -> None:
    result = invoke(detector, event)

    [finding] = stored_findings(security_hub)
    assert finding["Id"] == result["findingId"]
    assert secrets_in(json.dumps(finding, ensure_ascii=False)) == []
    # The rest of the record is still read: the function, and the ARNs outside the environment.
    assert finding["Resources"][0]["Id"] == FUNCTION_ARN
    assert EXECUTION_ROLE in finding["ProductFields"]["p_any_aws_arns"].split(", ")


def test_a_failed_call_whose_error_message_quotes_the_environment_does_not_carry_it_into_the_finding(
    detector: Detector, security_hub: Any
) -> None:
    """Lambda refuses environments over 4 KB and quotes them in its error message, which CloudTrail records."""
    event = record_with_environment("UpdateFunctionConfiguration20150331v2")
    event["detail"]["responseElements"] = None
    event["detail"]["errorCode"] = "InvalidParameterValueException"
    event["detail"]["errorMessage"] = (
        "Lambda was unable to configure your environment variables because the environment variables you have "
        f"provided exceeded the 4KB limit. String measured: {json.dumps(VARIABLES, separators=(',', ':'))}"
    )

    invoke(detector, event)

    [finding] = stored_findings(security_hub)
    assert "InvalidParameterValueException" in finding["Description"]
    assert secrets_in(json.dumps(finding, ensure_ascii=False)) == []


def assert_logs_carry_no_record(lines: list[dict[str, Any]], emitted: str) -> None:
    logged = json.dumps(lines, ensure_ascii=False) + emitted
    assert secrets_in(logged) == []
    for record_only in (
        "requestParameters",
        "responseElements",
        "environment",
        CALLER_ADDRESS,
        CALLER_AGENT,
        EXECUTION_ROLE,
    ):
        assert record_only not in logged, f"{record_only} was logged"


@pytest.mark.parametrize("event", RECORDS_WITH_ENVIRONMENT.values(), ids=RECORDS_WITH_ENVIRONMENT.keys())
def test_logs_at_info_carry_the_verdict_but_never_the_record(
    detector: Detector,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
) -> None:
    caplog.set_level("INFO")
    invoke(detector, event)

    lines = json_log_lines(caplog)
    assert [line["message"] for line in lines] == ["Verdict: finding"]
    assert lines[0]["eventID"] == event["detail"]["eventID"]
    captured = capsys.readouterr()
    assert_logs_carry_no_record(lines, captured.out + captured.err)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(
            ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "BatchImportFindings"),
            id="client error",
        ),
        pytest.param(
            {
                "FailedCount": 1,
                "SuccessCount": 0,
                "FailedFindings": [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "bad"}],
            },
            id="rejected finding",
        ),
    ],
)
def test_logs_of_a_failed_import_carry_no_record(
    detector: Detector,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    failure: ClientError | dict[str, Any],
) -> None:
    caplog.set_level("INFO")
    answer = {"side_effect": failure} if isinstance(failure, Exception) else {"return_value": failure}
    with mock.patch.object(
        detector.deployment(FakeLambdaContext()).publisher._client, "batch_import_findings", **answer
    ):
        with pytest.raises((ClientError, PublishError)):
            invoke(detector, RECORDS_WITH_ENVIRONMENT["UpdateFunctionConfiguration"])

    lines = json_log_lines(caplog)
    assert any(line["level"] == "ERROR" for line in lines)
    captured = capsys.readouterr()
    assert_logs_carry_no_record(lines, captured.out + captured.err)


def test_logs_of_an_invalid_event_carry_no_record(
    detector: Detector, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("INFO")
    event = RECORDS_WITH_ENVIRONMENT["CreateFunction"]
    del event["detail"]["eventTime"]
    with pytest.raises(InvalidEventError):
        invoke(detector, event)

    lines = json_log_lines(caplog)
    assert [line["level"] for line in lines] == ["ERROR"]
    captured = capsys.readouterr()
    assert_logs_carry_no_record(lines, captured.out + captured.err)


# --- Deployed permissions ----------------------------------------------------------------------------------------
# Complements tests/template/test_template.py, which checks the policies of the resource types it knows: here every policy
# statement anywhere in either template is found by its shape, so a policy added under another resource type or
# property is checked too.

FORWARDER_PARAMETERS = {
    "CentralEventBusArn": f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/lambda-crud-detector-organization"
}


def deployed_stacks() -> Iterator[tuple[str, Stack]]:
    for parameter_set in sorted(PARAMETER_SETS):
        yield f"template.yaml ({parameter_set})", stack(parameter_set)
    yield "member-forwarder.yaml", Stack(load_template(FORWARDER_PATH), FORWARDER_PARAMETERS)
    # A member account's stack in the detector's Region, with the role that imports its findings there.
    yield (
        "member-forwarder.yaml (findings role)",
        Stack(
            load_template(FORWARDER_PATH),
            {
                "CentralEventBusArn": "arn:aws:events:us-east-1:999988887777:event-bus/lambda-crud-detector-organization",
                "DetectorRoleArn": "arn:aws:iam::999988887777:role/lambda-crud-detector-DetectorRole-1A2B3C4D5E6F",
            },
        ),
    )


def statements_anywhere(value: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy statement in ``value``: any object under a ``Statement`` key that has an ``Effect``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "Statement":
                for statement in as_list(item):
                    if isinstance(statement, Mapping) and "Effect" in statement:
                        yield f"{where}.Statement", dict(statement)
            yield from statements_anywhere(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from statements_anywhere(item, f"{where}[{index}]")


def wildcard_actions(resources: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: {statement}"
        for where, statement in statements_anywhere(resources)
        if "NotAction" in statement or any("*" in str(action) for action in as_list(statement.get("Action", [])))
    ]


def imports_beyond_the_own_product(resources: Mapping[str, Any]) -> list[str]:
    return [
        f"{where}: {statement}"
        for where, statement in statements_anywhere(resources)
        if "securityhub:batchimportfindings" in {str(action).lower() for action in as_list(statement.get("Action", []))}
        and (as_list(statement.get("Resource", [])) != [PRODUCT_ARN] or "NotResource" in statement)
    ]


def unencrypted_queues(resources: Mapping[str, Any]) -> list[str]:
    return [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
        and resource["Properties"].get("SqsManagedSseEnabled") is not True
        and "KmsMasterKeyId" not in resource["Properties"]
    ]


def test_no_policy_anywhere_grants_a_wildcard_action() -> None:
    for name, deployed in deployed_stacks():
        assert wildcard_actions(deployed.resources) == [], name


def test_no_policy_anywhere_lets_findings_be_imported_beyond_the_accounts_own_product() -> None:
    granted_somewhere = False
    for name, deployed in deployed_stacks():
        assert imports_beyond_the_own_product(deployed.resources) == [], name
        granted_somewhere |= any(
            "securityhub:BatchImportFindings" in as_list(statement.get("Action", []))
            for _, statement in statements_anywhere(deployed.resources)
        )
    assert granted_somewhere  # the function's own grant is found, so the check above did look at it


def test_every_queue_of_every_template_is_encrypted() -> None:
    for name, deployed in deployed_stacks():
        assert deployed.resources_of_type("AWS::SQS::Queue"), name
        assert unencrypted_queues(deployed.resources) == [], name


def test_the_permission_checks_do_catch_a_violation_in_any_resource() -> None:
    broken = copy.deepcopy(stack("defaults").resources)
    broken["ExtraTopicPolicy"] = {
        "Type": "AWS::SNS::TopicPolicy",
        "Properties": {
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "sns:*", "Resource": "*"},
                    {"Effect": "Allow", "Action": ["SecurityHub:BatchImportFindings"], "Resource": "*"},
                ]
            }
        },
    }
    broken["PlainQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 60}}

    assert len(wildcard_actions(broken)) == 1
    assert len(imports_beyond_the_own_product(broken)) == 1
    assert unencrypted_queues(broken) == ["PlainQueue"]
