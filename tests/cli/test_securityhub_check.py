"""The Security Hub check against the strict local Security Hub, with the new Security Hub's answers stubbed.

moto has no GetFindingsV2, and no emulator can say whether AWS's new Security Hub shows a custom product's findings:
these tests show that the command imports a valid finding, reads it back, archives it, and reports each possible
answer of GetFindingsV2 correctly; only a real account answers the question itself.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambda_crud_detector import securityhub_check
from tests.conftest import DETECTOR_ACCOUNT, stored_findings


class NewSecurityHub:
    """The moto client, plus a GetFindingsV2 that answers as the new Security Hub might."""

    def __init__(self, client: Any, answer: str) -> None:
        self._client, self._answer, self.v2_calls = client, answer, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_findings_v2(self, **request: Any) -> dict[str, Any]:
        self.v2_calls.append(request)
        if self._answer == "not enabled":
            error = {"Code": "AccessDeniedException", "Message": "Security Hub is not enabled for this account"}
            raise ClientError({"Error": error}, "GetFindingsV2")
        titles = {item["Filter"]["Value"] for item in request["Filters"]["CompositeFilters"][0]["StringFilters"]}
        shown = [f for f in stored_findings(self._client) if f["Title"] in titles] if self._answer == "shows" else []
        return {"Findings": [{"finding_info": {"title": f["Title"], "uid": f["Id"]}} for f in shown]}


def run(client: Any, answer: str) -> tuple[securityhub_check.Report, NewSecurityHub]:
    hub = NewSecurityHub(client, answer)
    return securityhub_check.run_check(hub, DETECTOR_ACCOUNT, "us-east-1", wait_seconds=0, sleep=lambda _: None), hub


@pytest.mark.parametrize(("answer", "found_v2"), [("shows", True), ("does not show", False), ("not enabled", None)])
def test_imports_finds_reports_and_archives(security_hub: Any, answer: str, found_v2: bool | None) -> None:
    report, hub = run(security_hub, answer)

    assert report.ok and report.imported and report.found_v1 and report.archived
    assert report.found_v2 is found_v2
    assert bool(report.v2_note) is (answer == "not enabled")
    # The strict local Security Hub accepted both imports, and kept the archived one: its UpdatedAt is later.
    [stored] = stored_findings(security_hub)
    assert stored["Id"] == report.finding_id and stored["RecordState"] == "ARCHIVED"
    assert stored["Title"].startswith("lambda-crud-detector TEST FINDING")
    assert stored["GeneratorId"] != "AWS.LAMBDA.CRUD"  # never taken for a detection
    assert hub.v2_calls, "GetFindingsV2 was not asked"
    text = securityhub_check.format_report(report, DETECTOR_ACCOUNT, "us-east-1")
    expected = {True: "GetFindingsV2 (new):   yes", False: "GetFindingsV2 (new):   no", None: "could not tell"}
    assert expected[found_v2] in text
    if answer == "not enabled":
        assert "not enabled in this account and Region" in text


def test_a_refused_import_is_reported_and_nothing_is_left_behind(security_hub: Any) -> None:
    # Findings of another account's default product are refused by Security Hub (here: the strict local one).
    with pytest.raises(ClientError, match="AccessDenied"):
        securityhub_check.run_check(security_hub, "999988887777", "us-east-1", wait_seconds=0)
    assert stored_findings(security_hub) == []


def test_command_runs_end_to_end_and_exits_zero(
    security_hub: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(securityhub_check, "find_v2", lambda client, finding: False)
    assert securityhub_check.main(["--region", "us-east-1", "--wait", "0"]) == 0
    out = capsys.readouterr().out
    assert f"account {DETECTOR_ACCOUNT}" in out and "archived (RecordState ARCHIVED): yes" in out
    assert stored_findings(security_hub)[0]["RecordState"] == "ARCHIVED"


def test_help_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as help_exit:
        securityhub_check.main(["--help"])
    assert help_exit.value.code == 0 and "GetFindingsV2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        securityhub_check.main(["--wait", "-1"])
    assert bad.value.code == 2


def test_missing_region_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        assert securityhub_check.main([], session=boto3.session.Session()) == 2
    assert "no AWS Region" in capsys.readouterr().err
