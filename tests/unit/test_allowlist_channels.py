"""Allowlist entries with channel conditions: ``PRINCIPAL_PATTERN[;key=glob]...``.

A deployment role is trusted only when its pipeline uses it: CloudFormation (``invokedBy``), a GitHub OIDC session
(``webIdentityProvider``), a role chain started by the release bot (``sourceIdentity``), or the pipeline's egress
addresses (``sourceIp``). A person holding the same role's credentials is reported, with the channel it lacked.
A malformed allowlist stops the function at start-up, naming the entry; the template refuses what it can first.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from app import Detector
from rule import RuleSettings, SettingsError, evaluate
from tests.asff import assert_valid_finding
from tests.conftest import FakeLambdaContext, json_log_lines, new_detector, stored_findings
from tests.support.cases import load_cases
from tests.support.cloudformation import TEMPLATE_PATH, load_template

ACCOUNT = "111122223333"
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/DeployRole"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BuildRole"
GITHUB_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
CFN = "cloudformation.amazonaws.com"
DONE_WHEN_ALLOWLIST = f"arn:aws:iam::123456789012:role/DeployRole;invokedBy={CFN}"


def session(
    role_arn: str,
    *,
    invoked_by: str | None = None,
    provider: str | None = None,
    source_identity: str | None = None,
    source_ip: str = "203.0.113.50",
    event_name: str = "UpdateFunctionCode20150331v2",
) -> dict[str, Any]:
    """A CloudTrail record of a Lambda call by a session of ``role_arn``, with the channel fields given."""
    account, role_name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    context: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account, "userName": role_name},
        "webIdFederationData": {} if provider is None else {"federatedProvider": provider, "attributes": {}},
        "attributes": {"creationDate": "2026-11-20T09:14:02Z", "mfaAuthenticated": "false"},
    }
    if source_identity is not None:
        context["sourceIdentity"] = source_identity
    identity: dict[str, Any] = {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/session-1",
        "accountId": account,
        "sessionContext": context,
    }
    if invoked_by is not None:
        identity["invokedBy"] = invoked_by
    return {
        "eventSource": "lambda.amazonaws.com",
        "eventName": event_name,
        "eventID": "9f0c1b2a-0000-4000-8000-00000000abcd",
        "eventTime": "2026-11-20T09:15:31Z",
        "awsRegion": "eu-west-1",
        "recipientAccountId": account,
        "sourceIPAddress": invoked_by or source_ip,
        "userIdentity": identity,
    }


def verdict(record: dict[str, Any], allowlist: str) -> str:
    return evaluate(record, RuleSettings.from_config(allowlist)).kind


# --- Done when ---------------------------------------------------------------------------------------------------


def test_done_when_invoked_by() -> None:
    deploy_role = "arn:aws:iam::123456789012:role/DeployRole"
    assert verdict(session(deploy_role, invoked_by=CFN), DONE_WHEN_ALLOWLIST) == "allowlisted"
    assert verdict(session(deploy_role, source_ip="203.0.113.50"), DONE_WHEN_ALLOWLIST) == "finding"
    other = "arn:aws:iam::123456789012:role/OtherRole"
    assert verdict(session(other, invoked_by=CFN), DONE_WHEN_ALLOWLIST) == "finding"


def test_a_trusted_role_used_outside_its_channel_says_so_in_the_reason() -> None:
    deploy_role = "arn:aws:iam::123456789012:role/DeployRole"
    result = evaluate(session(deploy_role), RuleSettings.from_config(DONE_WHEN_ALLOWLIST))
    assert result.kind == "finding"
    assert result.reason.startswith(f"{deploy_role} used without invokedBy={CFN} (the record has none)")
    assert result.unmet_channel == f"invokedBy={CFN} (the record has none)"
    # Another service is shown as what the record holds.
    result = evaluate(
        session(deploy_role, invoked_by="codebuild.amazonaws.com"), RuleSettings.from_config(DONE_WHEN_ALLOWLIST)
    )
    assert f"invokedBy={CFN} (the record has 'codebuild.amazonaws.com')" in result.reason


def test_a_role_no_entry_names_gets_the_plain_reason() -> None:
    result = evaluate(
        session("arn:aws:iam::123456789012:role/OtherRole", invoked_by=CFN),
        RuleSettings.from_config(DONE_WHEN_ALLOWLIST),
    )
    assert result.unmet_channel is None
    assert result.reason.endswith(", not allowlisted") and "used without" not in result.reason


def test_done_when_web_identity_provider() -> None:
    allowlist = f"{DEPLOY_ROLE};webIdentityProvider={GITHUB_PROVIDER}"
    assert verdict(session(DEPLOY_ROLE, provider=GITHUB_PROVIDER), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE), allowlist) == "finding"
    assert verdict(session(OTHER_ROLE, provider=GITHUB_PROVIDER), allowlist) == "finding"
    # Another identity provider, even one whose ARN ends like GitHub's.
    lookalike = f"arn:aws:iam::{ACCOUNT}:oidc-provider/attacker.example/token.actions.githubusercontent.com"
    assert verdict(session(DEPLOY_ROLE, provider=lookalike), allowlist) == "finding"
    # ... which a suffix glob would let through: docs/configuration.md recommends the provider's exact ARN.
    assert (
        verdict(
            session(DEPLOY_ROLE, provider=lookalike),
            f"{DEPLOY_ROLE};webIdentityProvider=*token.actions.githubusercontent.com",
        )
        == "allowlisted"
    )
    # An ARN-shaped glob is matched field by field, as principal patterns are.
    any_account = "arn:aws:iam::*:oidc-provider/token.actions.githubusercontent.com"
    assert (
        verdict(session(DEPLOY_ROLE, provider=GITHUB_PROVIDER), f"{DEPLOY_ROLE};webIdentityProvider={any_account}")
        == "allowlisted"
    )


def test_done_when_source_identity() -> None:
    allowlist = f"{DEPLOY_ROLE};sourceIdentity=release-bot"
    assert verdict(session(DEPLOY_ROLE, source_identity="release-bot"), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE), allowlist) == "finding"
    assert verdict(session(DEPLOY_ROLE, source_identity="alice@example.com"), allowlist) == "finding"
    assert verdict(session(OTHER_ROLE, source_identity="release-bot"), allowlist) == "finding"
    # Matching is case-sensitive and whole: no prefix, suffix or case variant passes.
    for lookalike in ("Release-Bot", "release-bot2", "xrelease-bot", "release-bot "):
        assert verdict(session(DEPLOY_ROLE, source_identity=lookalike), allowlist) == "finding", lookalike


def test_source_ip_condition() -> None:
    allowlist = f"{DEPLOY_ROLE};sourceIp=198.51.100.16/28"
    assert verdict(session(DEPLOY_ROLE, source_ip="198.51.100.17"), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE, source_ip="198.51.100.32"), allowlist) == "finding"
    # A service name, "AWS Internal", IPv6, or nothing: not an address in the range, so a finding (fail closed).
    for source in ("cloudformation.amazonaws.com", "AWS Internal", "2001:db8::1", "::ffff:198.51.100.17", ""):
        assert verdict(session(DEPLOY_ROLE, source_ip=source), allowlist) == "finding", source
    assert verdict(session(OTHER_ROLE, source_ip="198.51.100.17"), allowlist) == "finding"
    assert (
        verdict(session(DEPLOY_ROLE, source_ip="2001:db8::1"), f"{DEPLOY_ROLE};sourceIp=2001:db8::/32") == "allowlisted"
    )


def test_a_bare_pattern_beside_a_conditioned_one_still_works() -> None:
    allowlist = f"{DEPLOY_ROLE};invokedBy={CFN},{OTHER_ROLE}"
    assert verdict(session(OTHER_ROLE), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE, invoked_by=CFN), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE), allowlist) == "finding"


def test_every_condition_of_an_entry_must_hold() -> None:
    allowlist = f"{DEPLOY_ROLE};webIdentityProvider={GITHUB_PROVIDER};sourceIp=192.0.2.0/24"
    assert verdict(session(DEPLOY_ROLE, provider=GITHUB_PROVIDER, source_ip="192.0.2.9"), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE, provider=GITHUB_PROVIDER, source_ip="203.0.113.9"), allowlist) == "finding"
    assert verdict(session(DEPLOY_ROLE, source_ip="192.0.2.9"), allowlist) == "finding"


def test_entries_for_one_role_are_alternatives_and_the_reason_lists_each() -> None:
    allowlist = f"{DEPLOY_ROLE};invokedBy={CFN},{DEPLOY_ROLE};sourceIdentity=release-bot"
    assert verdict(session(DEPLOY_ROLE, invoked_by=CFN), allowlist) == "allowlisted"
    assert verdict(session(DEPLOY_ROLE, source_identity="release-bot"), allowlist) == "allowlisted"
    result = evaluate(session(DEPLOY_ROLE), RuleSettings.from_config(allowlist))
    assert result.unmet_channel == (
        f"invokedBy={CFN} (the record has none) or sourceIdentity=release-bot (the record has none)"
    )


# --- Bypass attempts ---------------------------------------------------------------------------------------------


def test_a_person_in_the_deployment_role_from_a_laptop_is_reported() -> None:
    # The role's credentials (stolen, or a break-glass session) used directly, not through CloudFormation.
    laptop = session(DEPLOY_ROLE, source_ip="203.0.113.50")
    laptop["userAgent"] = "aws-cli/2.22.4 md/awscrt#0.22.0 ua/2.0 os/macos#24.1.0 md/arch#arm64 lang/python#3.12.6"
    assert verdict(laptop, f"{DEPLOY_ROLE};invokedBy={CFN}") == "finding"


@pytest.mark.parametrize(
    "where",
    [
        # invokedBy is written by AWS; a caller cannot add it to its own call. Fields of the same name elsewhere in
        # the record (request parameters, the session's attributes, the top level) are not it.
        {"requestParameters": {"invokedBy": CFN}},
        {"invokedBy": CFN},
        {"userAgent": CFN},
        {"sourceIPAddress": CFN},
        {"additionalEventData": {"invokedBy": CFN}},
    ],
    ids=["request parameter", "top level", "user agent", "source address", "additional data"],
)
def test_invoked_by_is_read_only_from_the_identity(where: dict[str, Any]) -> None:
    record = session(DEPLOY_ROLE)
    record.update(where)
    assert verdict(record, f"{DEPLOY_ROLE};invokedBy={CFN}") == "finding"


def test_channel_fields_of_the_wrong_type_or_place_never_satisfy_a_condition() -> None:
    allowlist = (
        f"{DEPLOY_ROLE};invokedBy={CFN},{DEPLOY_ROLE};sourceIdentity=release-bot,{DEPLOY_ROLE};webIdentityProvider=*"
    )
    odd = [
        {"invokedBy": [CFN]},
        {"invokedBy": {"name": CFN}},
        {"invokedBy": ""},
        {"sessionContext": {"sourceIdentity": ["release-bot"]}},
        {"sessionContext": "sourceIdentity=release-bot"},
        {"sessionContext": {"webIdFederationData": {"federatedProvider": None}}},
        {"sessionContext": {"webIdFederationData": [GITHUB_PROVIDER]}},
        {"sourceIdentity": "release-bot"},  # not inside sessionContext
    ]
    for fields in odd:
        record = session(DEPLOY_ROLE)
        identity = record["userIdentity"]
        issuer = identity["sessionContext"]["sessionIssuer"]
        identity.update(copy.deepcopy(fields))
        if isinstance(identity.get("sessionContext"), dict):
            identity["sessionContext"].setdefault("sessionIssuer", issuer)
        assert verdict(record, allowlist) == "finding", fields


def test_a_role_chain_keeps_the_source_identity_of_its_start() -> None:
    # alice's sessions carry the source identity her identity provider set; chaining from her admin role into the
    # release role keeps it (it cannot be changed in a chain), so she cannot pass as the release bot.
    chained = session(DEPLOY_ROLE, source_identity="alice@example.com")
    assert verdict(chained, f"{DEPLOY_ROLE};sourceIdentity=release-bot") == "finding"
    # A session name chosen to look like the bot changes nothing.
    chained["userIdentity"]["arn"] = f"arn:aws:sts::{ACCOUNT}:assumed-role/DeployRole/release-bot"
    assert verdict(chained, f"{DEPLOY_ROLE};sourceIdentity=release-bot") == "finding"


def test_an_aws_service_identity_with_the_channel_is_still_reported() -> None:
    # invokedBy alone proves nothing about who is behind the call: with no principal, nothing is allowlisted.
    record = session(DEPLOY_ROLE, invoked_by=CFN)
    record["userIdentity"] = {"type": "AWSService", "invokedBy": CFN}
    assert verdict(record, f"*;invokedBy={CFN}") == "finding"


def test_a_session_name_or_issuer_naming_the_role_does_not_borrow_its_channel() -> None:
    record = session(OTHER_ROLE, invoked_by=CFN)
    record["userIdentity"]["arn"] = f"arn:aws:sts::{ACCOUNT}:assumed-role/BuildRole/DeployRole"
    record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = DEPLOY_ROLE
    assert verdict(record, f"{DEPLOY_ROLE};invokedBy={CFN}") == "finding"


# --- Malformed allowlists ----------------------------------------------------------------------------------------

MALFORMED = [
    (f"{DEPLOY_ROLE};bogusKey=x", "unknown condition key 'bogusKey'"),
    (f"{DEPLOY_ROLE};invokedby={CFN}", "unknown condition key 'invokedby'"),
    (f";invokedBy={CFN}", "principal pattern is empty"),
    (f" ;invokedBy={CFN}", "principal pattern is empty"),
    ("arn:aws:iam::role/DeployRole", "does not have six fields"),
    ("arn:aws:iam:111122223333:role/DeployRole", "does not have six fields"),
    (f"{DEPLOY_ROLE};webIdentityProvider=arn:aws:iam:oidc-provider/x", "does not have six fields"),
    (f"{DEPLOY_ROLE};sourceIp=198.51.100.0/33", "not an IP network"),
    (f"{DEPLOY_ROLE};sourceIp=198.51.100.1/24", "not an IP network"),
    (f"{DEPLOY_ROLE};sourceIp=office", "not an IP network"),
    (f"{DEPLOY_ROLE};invokedBy=", "empty value"),
    (f"{DEPLOY_ROLE};invokedBy", "is not key=glob"),
    (f"{DEPLOY_ROLE};", "is not key=glob"),
    (f"{DEPLOY_ROLE};invokedBy={CFN};invokedBy=codedeploy.amazonaws.com", "given twice"),
]


@pytest.mark.parametrize(("allowlist", "problem"), MALFORMED, ids=[allowlist for allowlist, _ in MALFORMED])
def test_a_malformed_entry_is_refused_naming_it(allowlist: str, problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        RuleSettings.from_config(f"*:user/alice,{allowlist}")
    message = str(raised.value)
    assert problem in message
    assert repr(allowlist.strip()) in message


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("trusted_layer_accounts", "017000801446,12345", "'12345' is not a 12-digit"),
        ("behaviour_severities", "other-write=LOUD", "'LOUD' is not one of"),
        ("behaviour_severities", "no-such-behaviour=LOW", "known behaviour"),
        ("behaviour_severities", "detector-changed=OFF", "cannot be lowered"),
        ("behaviour_severities", "other-write=CRITICAL", "not raise it"),
        ("behaviour_severities", "other-write=LOW,other-write=OFF", "given twice"),
        ("allowlist_hides_public", "yes", "true or false"),
    ],
)
def test_a_malformed_grading_setting_is_refused_naming_it(setting: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        RuleSettings.from_config(None, **{setting: value})


def test_well_formed_entries_are_understood_as_written() -> None:
    settings = RuleSettings.from_config(
        f"*DeployRole, {DEPLOY_ROLE};invokedBy={CFN};sourceIp=198.51.100.0/24,"
        f"arn:aws:iam::*:role/Gh*;webIdentityProvider={GITHUB_PROVIDER},x;sourceIdentity=a=b",
    )
    assert [entry.as_logged() for entry in settings.allowlist] == [
        {"principal": "*DeployRole"},
        {"principal": DEPLOY_ROLE, "invokedBy": CFN, "sourceIp": "198.51.100.0/24"},
        {"principal": "arn:aws:iam::*:role/Gh*", "webIdentityProvider": GITHUB_PROVIDER},
        {"principal": "x", "sourceIdentity": "a=b"},  # a source identity may contain "="
    ]


# --- The handler: refusal and the start-up log --------------------------------------------------------------------


def test_the_handler_refuses_to_start_with_a_malformed_allowlist(
    detector: Detector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALLOWLIST_PATTERNS", "arn:aws:iam::123456789012:role/DeployRole;bogusKey=x")
    with pytest.raises(SettingsError, match=re.escape("'arn:aws:iam::123456789012:role/DeployRole;bogusKey=x'")):
        new_detector()
    refusals = [record for record in caplog.records if record.getMessage().startswith("Refusing to start")]
    assert len(refusals) == 1 and refusals[0].levelname == "ERROR"
    assert "bogusKey" in refusals[0].getMessage()


def test_the_handler_logs_the_allowlist_as_understood_at_cold_start(
    detector: Detector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALLOWLIST_PATTERNS", f"{DEPLOY_ROLE};invokedBy={CFN},*:user/alice")
    monkeypatch.setenv("TRUSTED_LAYER_ACCOUNTS", "444455556666")
    monkeypatch.setenv("BEHAVIOUR_SEVERITIES", "other-write=LOW")
    new_detector()
    (line,) = [line for line in json_log_lines(caplog) if line["message"] == "Rule settings"]
    assert line["level"] == "INFO"
    assert line["allowlist"] == [{"principal": DEPLOY_ROLE, "invokedBy": CFN}, {"principal": "*:user/alice"}]
    assert line["trustedLayerAccounts"] == ["444455556666"]
    assert line["behaviourSeverities"] == {"other-write": "LOW"}
    assert line["allowlistHidesPublic"] is False


def test_a_finding_for_a_role_used_outside_its_channel_tells_the_analyst(
    detector: Detector, monkeypatch: pytest.MonkeyPatch, security_hub: Any
) -> None:
    monkeypatch.setenv("ALLOWLIST_PATTERNS", f"{DEPLOY_ROLE};invokedBy={CFN}")
    started = new_detector()
    event = copy.deepcopy(
        next(case.event for case in load_cases() if case.file == "spoofed-deployrole-session-name.json")
    )
    event["detail"] = session(DEPLOY_ROLE, source_identity="alice@example.com")
    result = started.lambda_handler(event, FakeLambdaContext())
    assert result["verdict"] == "finding"
    (finding,) = stored_findings(security_hub)
    assert_valid_finding(finding)
    expected = f"The allowlist trusts this principal only with invokedBy={CFN} (the record has none)."
    assert expected in finding["Description"]
    assert finding["ProductFields"]["verdictReason"].startswith(f"{DEPLOY_ROLE} used without invokedBy={CFN}")
    assert finding["ProductFields"]["sessionContext.sourceIdentity"] == "alice@example.com"
    assert "userIdentity.invokedBy" not in finding["ProductFields"]


# --- The template's guard ---------------------------------------------------------------------------------------
# The grammar lives in one place, the function's start-up check (RuleSettings). The template's parameter only
# guards against what cannot be an allowlist at all: whitespace, and a length that would crowd Lambda's 4 KB of
# environment variables.


def allowed_pattern(path: Any, parameter: str) -> re.Pattern[str]:
    return re.compile(load_template(path)["Parameters"][parameter]["AllowedPattern"])


def passes_the_guard(value: str) -> bool:
    parameter = load_template(TEMPLATE_PATH)["Parameters"]["AllowlistPatterns"]
    return bool(allowed_pattern(TEMPLATE_PATH, "AllowlistPatterns").fullmatch(value)) and (
        len(value) <= parameter["MaxLength"]
    )


VALID_ALLOWLISTS = [
    "*DeployRole",
    "",
    DONE_WHEN_ALLOWLIST,
    f"{DEPLOY_ROLE};invokedBy={CFN},{OTHER_ROLE}",
    f"arn:aws:iam::*:role/Gh*;webIdentityProvider={GITHUB_PROVIDER};sourceIp=192.0.2.0/24",
    "x;sourceIdentity=a=b,*:user/alice,a,ar,arn,arnold*",
    "arn:aws:iam::111122223333:role/team:ci/DeployRole",
]
REFUSED_BY_THE_GUARD = [
    "*DeployRole, *CiRole",
    "*DeployRole\t",
    "*DeployRole\n*CiRole",
    " ",
    "*DeployRole," * 200,
]


def test_template_default_allowlist_stays_the_original_rules() -> None:
    parameter = load_template(TEMPLATE_PATH)["Parameters"]["AllowlistPatterns"]
    assert parameter["Default"] == "*DeployRole"
    assert passes_the_guard(parameter["Default"])


def test_the_template_does_not_copy_the_grammar() -> None:
    guard = load_template(TEMPLATE_PATH)["Parameters"]["AllowlistPatterns"]["AllowedPattern"]
    assert len(guard) < 40
    assert not any(key in guard for key in ("invokedBy", "sourceIp", "arn:"))


@pytest.mark.parametrize("value", VALID_ALLOWLISTS)
def test_the_guard_passes_well_formed_allowlists(value: str) -> None:
    assert passes_the_guard(value)
    RuleSettings.from_config(value)  # and the function reads them


@pytest.mark.parametrize("value", REFUSED_BY_THE_GUARD, ids=repr)
def test_the_guard_refuses_whitespace_and_excessive_length(value: str) -> None:
    assert not passes_the_guard(value)


@pytest.mark.parametrize(("allowlist", "problem"), MALFORMED, ids=[allowlist for allowlist, _ in MALFORMED])
def test_what_the_guard_lets_through_the_function_refuses(allowlist: str, problem: str) -> None:
    # Every malformed entry without whitespace reaches the function, which refuses to start, naming it.
    if not passes_the_guard(allowlist):
        assert re.search(r"\s", allowlist)
        return
    with pytest.raises(SettingsError, match=re.escape(problem)):
        RuleSettings.from_config(allowlist)
