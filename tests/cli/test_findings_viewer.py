"""The findings viewer (``python -m lambda_crud_detector.findings``) on a mocked Security Hub holding this detector's findings and
others'. moto ignores GetFindings filters, so every selection seen here is the viewer's own re-check; what the viewer
asks Security Hub for is checked on the request itself."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from lambda_crud_detector import findings as viewer
from rule import RULE_ID
from tests.conftest import DETECTOR_ACCOUNT

NOW = datetime.now(timezone.utc)
PRODUCT_ARN = f"arn:aws:securityhub:us-east-1:{DETECTOR_ACCOUNT}:product/{DETECTOR_ACCOUNT}/default"
ALICE = "arn:aws:iam::111122223333:user/alice"
DEV_ROLE = "arn:aws:iam::111122223333:role/DevSandboxRole"
DEV_SESSION = "arn:aws:sts::111122223333:assumed-role/DevSandboxRole/xDeployRole"
ENGINEER_ROLE = "arn:aws:iam::444455556666:role/PlatformEngineer"
ENGINEER_SESSION = "arn:aws:sts::444455556666:assumed-role/PlatformEngineer/carol"


def asff_finding(
    number: int,
    age: timedelta,
    account: str = "111122223333",
    principal: str = ALICE,
    caller: str = ALICE,
    generator: str = RULE_ID,
    region: str = "eu-west-1",
) -> dict[str, Any]:
    """A finding shaped like the detector's, for a call made ``age`` ago in ``account``."""
    stamp = (NOW - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    function_arn = f"arn:aws:lambda:{region}:{account}:function:function-{number}"
    return {
        "SchemaVersion": "2018-10-08",
        "Id": f"{generator}/{account}/{region}/event-{number:04d}",
        "ProductArn": PRODUCT_ARN,
        "GeneratorId": generator,
        "AwsAccountId": DETECTOR_ACCOUNT,
        "CreatedAt": stamp,
        "UpdatedAt": stamp,
        "Severity": {"Label": "HIGH", "Original": "High"},
        "Types": ["TTPs/Persistence/T1525-Implant Internal Image"],
        "Title": f"[{caller}] performed Lambda [UpdateFunctionCode] in [{account} {region}].",
        "Description": "Unauthorized lambda Create, Read, Update, or Delete event occurred.",
        "Resources": [{"Type": "AwsLambdaFunction", "Id": function_arn, "Partition": "aws", "Region": region}],
        "ProductFields": {
            "eventName": "UpdateFunctionCode20150331v2",
            "recipientAccountId": account,
            "awsRegion": region,
            "principalArn": principal,
            "userIdentity.arn": caller,
            "functionArn": function_arn,
            "behaviour": "new-code",
        },
    }


# Five of this detector's findings and two of another generator's, at various times, accounts and principals.
OURS = [
    asff_finding(1, timedelta(hours=1)),
    asff_finding(2, timedelta(hours=30), principal=DEV_ROLE, caller=DEV_SESSION),
    asff_finding(
        3,
        timedelta(days=3),
        account="444455556666",
        principal=ENGINEER_ROLE,
        caller=ENGINEER_SESSION,
        region="us-east-2",
    ),
    asff_finding(4, timedelta(days=10), principal=DEV_ROLE, caller=DEV_SESSION),
    asff_finding(5, timedelta(days=40), account="444455556666"),
]
OTHERS = [
    asff_finding(6, timedelta(hours=2), generator="aws-foundational-security-best-practices/v/1.0.0/Lambda.1"),
    asff_finding(7, timedelta(days=1), generator="AWS.LAMBDA.CRUD.SHADOW", principal=DEV_ROLE, caller=DEV_SESSION),
]


@pytest.fixture
def client(security_hub: Any) -> Any:
    """The mocked Security Hub, holding OURS and OTHERS."""
    response = security_hub.batch_import_findings(Findings=OURS + OTHERS)
    assert response["FailedCount"] == 0
    return security_hub


def listed_ids(capsys: pytest.CaptureFixture[str], *arguments: str) -> list[str]:
    """The Ids of the findings ``--json`` prints for ``arguments``."""
    assert viewer.main(["--region", "us-east-1", "--json", *arguments]) == 0
    return [finding["Id"] for finding in json.loads(capsys.readouterr().out)]


def ids(*findings: dict[str, Any]) -> list[str]:
    return [finding["Id"] for finding in findings]


def test_generator_id_is_the_rules() -> None:
    assert viewer.GENERATOR_ID == RULE_ID


def test_lists_only_this_detectors_findings_oldest_first(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert listed_ids(capsys) == ids(*reversed(OURS))


def test_table_shows_the_calls_account_and_region_not_the_detectors(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert viewer.main(["--region", "us-east-1", "--since", "4d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "TIME",
        "(UTC)",
        "PRINCIPAL",
        "ACTION",
        "FUNCTION",
        "ACCOUNT",
        "REGION",
        "SEVERITY",
        "BEHAVIOUR",
    ]
    assert len(lines) == 4
    engineer = lines[1].split()  # the oldest of the three
    assert engineer[2:] == [
        ENGINEER_ROLE,
        "UpdateFunctionCode20150331v2",
        "function-3",
        "444455556666",
        "us-east-2",
        "HIGH",
        "new-code",
    ]
    assert DETECTOR_ACCOUNT not in "\n".join(lines)
    assert lines[1].startswith((NOW - timedelta(days=3)).strftime("%Y-%m-%d %H:%M"))


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("24h", [OURS[0]]),
        ("2d", [OURS[1], OURS[0]]),
        ("1w", [OURS[2], OURS[1], OURS[0]]),
        ((NOW - timedelta(days=20)).date().isoformat(), [OURS[3], OURS[2], OURS[1], OURS[0]]),
        ((NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), [OURS[0]]),
    ],
)
def test_since(client: Any, capsys: pytest.CaptureFixture[str], since: str, expected: list[dict[str, Any]]) -> None:
    assert listed_ids(capsys, "--since", since) == ids(*expected)


def test_account_is_the_account_the_call_was_made_in(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert listed_ids(capsys, "--account", "444455556666") == ids(OURS[4], OURS[2])
    assert listed_ids(capsys, "--account", DETECTOR_ACCOUNT) == []


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (ALICE, [OURS[4], OURS[0]]),
        ("*:role/DevSandboxRole", [OURS[3], OURS[1]]),  # the role the rule judged
        ("*/xDeployRole", [OURS[3], OURS[1]]),  # the session, as recorded
        ("arn:aws:*:444455556666:*", [OURS[2]]),
        ("*nobody*", []),
    ],
)
def test_principal_glob(
    client: Any, capsys: pytest.CaptureFixture[str], principal: str, expected: list[dict[str, Any]]
) -> None:
    assert listed_ids(capsys, "--principal", principal) == ids(*expected)


def test_criteria_combine(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert listed_ids(capsys, "--principal", "*DevSandboxRole*", "--since", "7d", "--account", "111122223333") == ids(
        OURS[1]
    )


def test_json_is_the_findings_themselves(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert viewer.main(["--region", "us-east-1", "--json", "--since", "24h"]) == 0
    assert json.loads(capsys.readouterr().out) == [OURS[0]]


def test_no_findings_says_so(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert viewer.main(["--region", "us-east-1", "--principal", "*nobody*"]) == 0
    assert capsys.readouterr().out.strip() == "No findings."


def test_every_page_is_read_and_the_filters_are_sent(client: Any) -> None:
    requests: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.securityhub.GetFindings", lambda params, **_: requests.append(dict(params))
    )
    criteria = viewer.Criteria(since=NOW - timedelta(days=365))

    found = viewer.list_findings(client, criteria, page_size=2)

    assert ids(*found) == ids(*reversed(OURS))
    assert [request["MaxResults"] for request in requests] == [2, 2, 2, 2]  # 7 findings held, 2 per page
    assert ["NextToken" in request for request in requests] == [False, True, True, True]
    expected = viewer.security_hub_filters(criteria, NOW)
    for request in requests:
        assert request["Filters"]["GeneratorId"] == [{"Value": RULE_ID, "Comparison": "EQUALS"}]
        assert request["Filters"]["CreatedAt"][0]["Start"] == expected["CreatedAt"][0]["Start"]


def test_page_size_option_reads_every_page(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert listed_ids(capsys, "--page-size", "1") == ids(*reversed(OURS))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "yesterdayish"], "argument --since: 'yesterdayish' is neither a duration"),
        (["--since", "24 parsecs"], "argument --since"),
        (["--account", "1111"], "argument --account: '1111' is not an AWS account ID"),
        (["--page-size", "101"], "argument --page-size"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        viewer.main(arguments)
    assert exit_info.value.code != 0
    assert message in capsys.readouterr().err


def test_missing_credentials_give_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Credentials are resolved before any request; the endpoint is a closed local port all the same.
    assert viewer.main(["--region", "us-east-1", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no AWS credentials" in error and "Traceback" not in error


def test_missing_region_gives_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    assert viewer.main(["--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "no AWS Region" in capsys.readouterr().err


# The pure parts --------------------------------------------------------------------------------------------


def test_parse_since() -> None:
    assert viewer.parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert viewer.parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert viewer.parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert viewer.parse_since("2026-11-01T08:00:00+02:00") == datetime(2026, 11, 1, 6, tzinfo=timezone.utc)


def test_filters_ask_for_this_generator_the_time_range_and_the_fields() -> None:
    since = NOW - timedelta(days=1)
    filters = viewer.security_hub_filters(
        viewer.Criteria(since=since, account="111122223333", principal="*:role/Dev*"), NOW
    )
    assert filters["GeneratorId"] == [{"Value": RULE_ID, "Comparison": "EQUALS"}]
    (created,) = filters["CreatedAt"]
    assert datetime.fromisoformat(created["Start"]) == since.replace(microsecond=since.microsecond // 1000 * 1000)
    assert datetime.fromisoformat(created["End"]) >= NOW
    assert filters["ProductFields"] == [
        {"Key": "recipientAccountId", "Value": "111122223333", "Comparison": "EQUALS"},
        {"Key": "principalArn", "Value": ":role/Dev", "Comparison": "CONTAINS"},
        {"Key": "userIdentity.arn", "Value": ":role/Dev", "Comparison": "CONTAINS"},
    ]


def test_filters_without_criteria_ask_only_for_this_generator() -> None:
    assert viewer.security_hub_filters(viewer.Criteria(principal="*")) == {
        "GeneratorId": [{"Value": RULE_ID, "Comparison": "EQUALS"}]
    }


@pytest.mark.parametrize(
    ("glob", "literal"),
    [("*DeployRole", "DeployRole"), ("arn:aws:iam::*:role/[Dd]ev*", "arn:aws:iam::"), ("a?bcd*e", "bcd"), ("*", "")],
)
def test_longest_literal(glob: str, literal: str) -> None:
    assert viewer.longest_literal(glob) == literal


def test_matches_rejects_what_the_api_would_have_filtered_out() -> None:
    finding = OURS[1]
    assert viewer.matches(finding, viewer.Criteria())
    assert not viewer.matches(OTHERS[1], viewer.Criteria())
    assert not viewer.matches(finding, viewer.Criteria(since=NOW - timedelta(hours=29)))
    assert not viewer.matches(finding, viewer.Criteria(account="444455556666"))
    assert not viewer.matches(finding, viewer.Criteria(principal="*Dev"))  # a glob matches the whole ARN
    assert viewer.matches({**finding, "ProductFields": {}}, viewer.Criteria()) is True
    assert not viewer.matches({**finding, "CreatedAt": "not a time"}, viewer.Criteria(since=NOW))


def test_format_table_aligns_columns() -> None:
    rows = [viewer.finding_row(finding) for finding in OURS[:2]]
    lines = viewer.format_table(rows).splitlines()
    assert len(lines) == 3
    assert lines[1].index(ALICE) == lines[2].index(DEV_ROLE) == lines[0].index("PRINCIPAL")


def test_row_names_the_function_or_else_the_resource_touched() -> None:
    mapping_arn = "arn:aws:lambda:eu-west-1:111122223333:event-source-mapping:a1b2c3d4"
    no_function = {**OURS[0], "ProductFields": {**OURS[0]["ProductFields"], "functionArn": ""}}
    assert viewer.finding_row(OURS[0]).function == "function-1"
    assert viewer.finding_row({**no_function, "Resources": [{"Type": "Other", "Id": mapping_arn}]}).function == (
        "event-source-mapping:a1b2c3d4"
    )
    assert viewer.finding_row({**no_function, "Resources": [{"Type": "Other", "Id": "lambda:X:1"}]}).function == "-"
