"""Backtest: stored CloudTrail history judged by the live rule, from every source, with the function's own Ids.

What each test proves, given moto: S3 and Security Hub are moto's (Security Hub checks no ASFF limit, so the
findings are also checked with tests/asff.py); LookupEvents is not implemented by moto, so it is botocore's
Stubber on a real CloudTrail client, which checks every request and response against the service's model;
Athena is moto's, with query results seeded through its documented /moto-api/static/athena/query-results
endpoint (moto runs no SQL, so the query text is checked separately).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

import rule
from app import Detector
from bench import backtest as bench_backtest
from lambda_crud_detector import backtest
from lambda_crud_detector.trail_judge import Judge, JudgeConfig, channel
from lambda_crud_detector.trail_sources import (
    ATHENA_COLUMNS,
    RateLimiter,
    athena_prefilter_query,
    lookup_event_pages,
    record_from_athena_row,
    trail_prefixes,
)
from publisher import FindingPublisher
from tests.asff import assert_valid_finding
from tests.conftest import DETECTOR_ACCOUNT, FakeLambdaContext, stored_findings
from tests.support.cases import INVALID, PROJECT_ROOT, load_cases

ACCOUNT = "111122223333"


def sample_records() -> list[dict[str, Any]]:
    """The CloudTrail record of every sample event the handler accepts."""
    return [copy.deepcopy(case.event["detail"]) for case in load_cases() if case.expected_verdict != INVALID]


def other_service_record(index: int) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventTime": "2026-11-20T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetBucketAcl",
        "awsRegion": "eu-west-1",
        "eventID": f"other-{index}",
        "recipientAccountId": ACCOUNT,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
    }


def lambda_record_without_event_id() -> dict[str, Any]:
    record = sample_records()[0]
    del record["eventID"]
    return record


def write_log(path: Path, records: list[Any], compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"Records": records}).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def run_backtest(arguments: list[str], session: Any = None) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        status = backtest.main(arguments, session=session)
    return status, stdout.getvalue(), stderr.getvalue()


def run_json(arguments: list[str], session: Any = None) -> tuple[int, dict[str, Any]]:
    status, out, _ = run_backtest([*arguments, "--json", "--no-progress"], session)
    return status, json.loads(out)


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A trail copy in two layouts: gzip files in CloudTrail's folders, and a plain .json file elsewhere."""
    records = sample_records()
    layout = tmp_path / "AWSLogs" / ACCOUNT / "CloudTrail" / "eu-west-1" / "2026" / "11" / "20"
    write_log(
        layout / f"{ACCOUNT}_CloudTrail_eu-west-1_20261120T1000Z_a.json.gz",
        [other_service_record(index) for index in range(30)] + records[:6],
    )
    write_log(tmp_path / "exported" / "deeper" / "more.json", records[6:] + [other_service_record(99)], compress=False)
    return tmp_path


# The live rule, record by record -------------------------------------------------------------------------------


def handler_results(detector: Detector, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the deployed handler answers for each record, delivered as EventBridge delivers it."""
    results = []
    for index, record in enumerate(records):
        event = {
            "version": "0",
            "id": f"event-{index}",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.lambda",
            "account": record.get("recipientAccountId", ACCOUNT),
            "time": record["eventTime"],
            "region": "eu-west-1",
            "resources": [],
            "detail": copy.deepcopy(record),
        }
        results.append(detector.lambda_handler(event, FakeLambdaContext()))
    return results


def test_counts_and_ids_equal_what_the_handler_decides_record_by_record(
    trail: Path, detector: Detector, security_hub: Any
) -> None:
    status, report = run_json(["--path", str(trail), "--workers", "1"])

    answers = handler_results(detector, sample_records())
    decided = Counter(answer["verdict"] for answer in answers)
    assert status == 0 and report["errors"] == []
    assert report["counts"] == {
        "finding": decided["finding"],
        "allowlisted": decided["allowlisted"],
        "ignored": decided["ignored"] + 31,
        "invalid": 0,
    }
    handler_ids = sorted(answer["findingId"] for answer in answers if answer["findingId"])
    assert sorted(finding["id"] for finding in report["findings"]) == handler_ids
    assert {finding["Id"] for finding in stored_findings(security_hub)} == set(handler_ids)
    for finding in report["findings"]:
        assert finding["eventID"] and finding["action"] and finding["reason"]
        assert f"/{finding['eventID']}/" in finding["id"] or "/sha256/" in finding["id"]
    spoofed = next(f for f in report["findings"] if f["eventID"] == "0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a04")
    assert spoofed["principal"] == "arn:aws:iam::111122223333:role/DevSandboxRole"


def test_settings_come_from_the_environment_or_the_flags(trail: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, default = run_json(["--path", str(trail)])
    _, nobody = run_json(["--path", str(trail), "--allowlist", ""])
    _, switched_off = run_json(["--path", str(trail), "--behaviour-severities", "other-write=OFF"])
    monkeypatch.setenv("ALLOWLIST_PATTERNS", "")
    _, from_environment = run_json(["--path", str(trail)])

    assert default["counts"]["allowlisted"] > 0
    assert nobody["counts"]["allowlisted"] == from_environment["counts"]["allowlisted"] == 0
    assert nobody["counts"]["finding"] == default["counts"]["finding"] + default["counts"]["allowlisted"]
    other_writes = default["findingsByBehaviour"]["other-write"]
    assert other_writes >= 1
    assert switched_off["counts"]["finding"] == default["counts"]["finding"] - other_writes
    assert "other-write" not in switched_off["findingsByBehaviour"]


def test_counts_by_severity_and_behaviour_add_up_to_the_findings(trail: Path) -> None:
    _, report = run_json(["--path", str(trail)])
    findings = report["findings"]
    assert sum(report["findingsBySeverity"].values()) == len(findings) == report["counts"]["finding"]
    assert sum(report["findingsByBehaviour"].values()) == len(findings)
    assert list(report["findingsBySeverity"]) == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"]
    assert report["findingsBySeverity"]["CRITICAL"] >= 1  # the public permission samples
    public = [f for f in findings if f["behaviour"] == "public-permission"]
    assert public and all(f["severity"] in ("CRITICAL", "HIGH") for f in public)
    assert any("principal *" in f["changed"] for f in public)
    _, text, _ = run_backtest(["--path", str(trail), "--no-progress"])
    assert "SEVERITY     FINDINGS" in text and "BEHAVIOUR" in text and "WHAT CHANGED" in text


def test_worker_processes_change_nothing(tmp_path: Path) -> None:
    bench_backtest.write_synthetic_trail(tmp_path, 5_000, seed=3)
    _, alone = run_json(["--path", str(tmp_path), "--workers", "1"])
    _, pooled = run_json(["--path", str(tmp_path), "--workers", "2"])
    assert alone == pooled
    assert sum(alone["counts"].values()) == alone["records"] == 5_000
    assert alone["counts"]["finding"] > 0 and alone["counts"]["allowlisted"] > 0


def test_the_fast_path_counts_exactly_as_judging_every_parsed_record(tmp_path: Path) -> None:
    """Records that only look like Lambda calls, or spell the event source with escapes, are not miscounted."""
    tricky = [
        {**other_service_record(1), "requestParameters": {"note": "lambda.amazonaws.com"}},  # in the bytes only
        {**sample_records()[0], "eventSource": "lambda.amazonaws.com"},
    ]
    escaped = json.dumps({"Records": tricky}).replace('"eventSource": "lambda', '"eventSource": "\\u006cambda')
    (tmp_path / "escaped.json").write_text(escaped)
    judge = Judge(JudgeConfig())
    fast = judge.log_file((tmp_path / "escaped.json").read_bytes(), "escaped.json")
    plain = judge.records(json.loads(escaped)["Records"], "escaped.json")
    assert fast.counts == plain.counts and fast.counts["finding"] == 1 and fast.counts["ignored"] == 1


def test_time_range_leaves_out_records_outside_it(trail: Path) -> None:
    _, inside = run_json(["--path", str(trail), "--since", "2026-11-20T00:00:00Z", "--until", "2026-11-21"])
    _, before = run_json(["--path", str(trail), "--until", "2001-01-01"])
    assert inside["outsideTimeRange"] < inside["records"]
    assert before["outsideTimeRange"] == before["records"] and before["findings"] == []


# Bad input -----------------------------------------------------------------------------------------------------


def test_corrupt_files_are_named_the_rest_judged_and_the_exit_status_is_not_zero(trail: Path) -> None:
    good = write_log(trail / "good" / "b.json.gz", sample_records())
    truncated = trail / "bad" / "truncated.json.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(good.read_bytes()[:-40])
    not_json = trail / "bad" / "notes.json"
    not_json.write_text("this is not JSON")
    not_a_log = trail / "bad" / "other.json"
    not_a_log.write_text('{"detail": {}}')
    odd_records = write_log(
        trail / "bad" / "odd.json",
        [other_service_record(1), ["not", "an", "object"], "text", lambda_record_without_event_id()],
    )
    digest = trail / "AWSLogs" / ACCOUNT / "CloudTrail-Digest" / "eu-west-1" / "digest.json.gz"
    write_log(digest, [])

    status, report = run_json(["--path", str(trail)])

    assert status == 1
    named = {error["source"] for error in report["errors"]}
    assert {str(truncated), str(not_json), str(not_a_log), str(odd_records)} == named
    by_source = {(error["source"], error.get("record")): error["error"] for error in report["errors"]}
    assert "Compressed file ended" in by_source[(str(truncated), None)]
    assert "unreadable" in by_source[(str(not_json), None)]
    assert "not a CloudTrail log file" in by_source[(str(not_a_log), None)]
    assert "not an object but a list" in by_source[(str(odd_records), 1)]
    assert "not an object but a string" in by_source[(str(odd_records), 2)]
    assert "eventID" in by_source[(str(odd_records), 3)]
    # Everything else was judged: the findings of every readable file are there.
    readable = [run_json(["--path", str(trail / folder)])[1] for folder in ("AWSLogs", "exported", "good")]
    assert report["counts"]["finding"] == sum(part["counts"]["finding"] for part in readable)
    assert report["counts"]["invalid"] == 3
    assert report["skippedDigestFiles"] == 1


def test_a_lone_surrogate_in_one_request_does_not_hide_the_file(tmp_path: Path) -> None:
    record = sample_records()[0]
    record["requestParameters"] = {"description": "PLACEHOLDER"}
    text = json.dumps({"Records": [record, other_service_record(1)]}).replace("PLACEHOLDER", "\\ud800")
    (tmp_path / "surrogate.json").write_text(text)
    status, report = run_json(["--path", str(tmp_path)])
    assert status == 0 and report["counts"]["finding"] == 1 and report["counts"]["ignored"] == 1


def test_json_nested_too_deep_to_parse_is_named_not_a_crash(tmp_path: Path) -> None:
    write_log(tmp_path / "good.json.gz", sample_records())
    nested = "[" * 50_000 + "]" * 50_000
    (tmp_path / "deep.json").write_text('{"Records": [{"requestParameters": ' + nested + "}]}")
    status, report = run_json(["--path", str(tmp_path), "--workers", "1"])
    assert status == 1 and [error["source"] for error in report["errors"]] == [str(tmp_path / "deep.json")]
    assert "RecursionError" in report["errors"][0]["error"] and report["counts"]["finding"] > 0


def test_a_malformed_allowlist_stops_before_reading(trail: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(allowlist: str | None, **settings: str | None) -> Any:
        raise ValueError(f"allowlist entry {allowlist!r}: unknown condition key")

    monkeypatch.setattr(rule.RuleSettings, "from_config", staticmethod(refuse))
    status, out, err = run_backtest(["--path", str(trail), "--allowlist", "x;colour=red", "--json"])
    assert status == 2 and out == "" and "unknown condition key" in err


# Output --------------------------------------------------------------------------------------------------------


def test_make_backtest_prints_only_json_on_stdout_and_fails_on_a_truncated_file(trail: Path) -> None:
    truncated = trail / "truncated.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps({"Records": sample_records()}).encode())[:-30])
    completed = subprocess.run(
        ["make", "-s", "backtest", f"ARGS=--path {trail} --json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(completed.stdout)
    assert completed.returncode != 0
    assert set(report) >= {"counts", "findings", "errors"}
    assert set(report["counts"]) == {"finding", "allowlisted", "ignored", "invalid"}
    assert [error["source"] for error in report["errors"]] == [str(truncated)]
    assert report["counts"]["finding"] == len(report["findings"]) > 0
    assert "[backtest] files" in completed.stderr


def role_calls(role_name: str, days: int, session_suffix: str = "", **identity: str) -> list[dict[str, Any]]:
    """One CreateFunction a day by sessions of the role ``role_name``, with more identity fields if given."""
    base = next(r for r in sample_records() if r["eventID"] == "0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a04")
    records = []
    for day in range(1, days + 1):
        record = copy.deepcopy(base)
        record["eventID"], record["eventTime"] = f"{role_name}-{day}", f"2026-11-0{day}T10:00:00Z"
        record["userIdentity"]["arn"] = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/run-{day}{session_suffix}"
        record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
        record["userIdentity"].update(identity)
        records.append(record)
    return records


def test_human_summary_groups_findings_and_suggests_pipeline_roles(tmp_path: Path) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/PaymentsPipeline"
    records = role_calls("PaymentsPipeline", 6, "\x1b[2J", invokedBy="cloudformation.amazonaws.com")
    # A record is anyone's to write: a principal that would clear the screen and reverse the rest of its line.
    hostile = role_calls("Mallory\x1b[2J\u202eelor", 1)
    write_log(tmp_path / "trail.json.gz", records + hostile + sample_records())

    status, text, _ = run_backtest(["--path", str(tmp_path), "--no-progress"])
    _, report = run_json(["--path", str(tmp_path)])

    assert status == 0
    # Text from a record can neither drive the terminal nor reverse how a line reads; it is shown escaped.
    assert "\x1b" not in text and "\u202e" not in text
    assert "Mallory\\x1b[2J\\u202eelor" in text
    assert f"{role};invokedBy=cloudformation.amazonaws.com" in text
    # Rows lead with the severity and behaviour, then the count.
    row = next(line for line in text.splitlines() if line.split()[2:3] == ["6"] and "PaymentsPipeline" in line)
    assert row.startswith("HIGH") and "new-code" in row
    assert "2026-11-01T10:00:00Z" in row and "2026-11-06T10:00:00Z" in row and "CreateFunction" in row
    assert [s["entry"] for s in report["suggestedAllowlist"]] == [f"{role};invokedBy=cloudformation.amazonaws.com"]
    # People and unverifiable callers are never suggested.
    assert not any("AWSReservedSSO" in s["entry"] or ":user/" in s["entry"] for s in report["suggestedAllowlist"])


def rule_understands_channel_conditions() -> bool:
    """Whether this rule reads ``PRINCIPAL;invokedBy=GLOB`` allowlist entries (older rules read one glob)."""
    [record] = role_calls("ProbeRole", 1, invokedBy="cloudformation.amazonaws.com")
    try:
        settings = rule.RuleSettings.from_config(
            f"arn:aws:iam::{ACCOUNT}:role/ProbeRole;invokedBy=cloudformation.amazonaws.com"
        )
    except ValueError:
        return False
    return rule.evaluate(record, settings).kind == "allowlisted"


def test_a_suggested_entry_allowlists_what_it_was_suggested_for_and_no_more(tmp_path: Path) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/BuildRole"
    by_pipeline = role_calls("BuildRole", 5, invokedBy="cloudformation.amazonaws.com")
    by_hand = role_calls("BuildRole", 6)
    for record in by_hand:
        record["eventID"] += "-by-hand"
    write_log(tmp_path / "trail.json.gz", by_pipeline + by_hand)

    _, before = run_json(["--path", str(tmp_path)])
    [suggestion] = before["suggestedAllowlist"]  # the direct calls, however many, are never suggested
    assert suggestion["entry"] == f"{role};invokedBy=cloudformation.amazonaws.com" and suggestion["calls"] == 5
    assert before["counts"]["finding"] == 11
    if not rule_understands_channel_conditions():
        pytest.skip("this rule's allowlist has no channel conditions (PRINCIPAL;invokedBy=GLOB)")
    _, after = run_json(["--path", str(tmp_path), "--allowlist", suggestion["entry"]])
    assert after["counts"]["allowlisted"] == 5 and after["counts"]["finding"] == 6
    assert all(finding["eventID"].endswith("-by-hand") for finding in after["findings"])


def test_channel_is_written_as_an_allowlist_condition() -> None:
    assert channel({"invokedBy": "cloudformation.amazonaws.com"}) == "invokedBy=cloudformation.amazonaws.com"
    federated = {
        "sessionContext": {"webIdFederationData": {"federatedProvider": "token.actions.githubusercontent.com"}}
    }
    assert channel(federated) == "webIdentityProvider=token.actions.githubusercontent.com"
    assert channel({"type": "IAMUser"}) == "direct"


# S3 ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_trail() -> Iterator[Any]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="trail-bucket")
        yield session


def put_log(session: Any, key: str, records: list[Any]) -> None:
    session.client("s3").put_object(
        Bucket="trail-bucket", Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode())
    )


def test_s3_organisation_trail_is_read_and_pruned_by_date(s3_trail: Any) -> None:
    records = [{**record, "eventTime": "2026-11-20T23:58:00Z"} for record in sample_records()]
    base = "logs/AWSLogs/o-a1b2c3d4e5/"
    put_log(
        s3_trail,
        f"{base}{ACCOUNT}/CloudTrail/eu-west-1/2026/11/20/{ACCOUNT}_CloudTrail_eu-west-1_1.json.gz",
        records[:5],
    )
    put_log(
        s3_trail,
        f"{base}444455556666/CloudTrail/us-east-1/2026/11/21/444455556666_CloudTrail_us-east-1_2.json.gz",
        records[5:],
    )
    # Outside the dates, a digest and an insight: none of them may be read.
    s3_trail.client("s3").put_object(
        Bucket="trail-bucket", Body=b"corrupt", Key=f"{base}{ACCOUNT}/CloudTrail/eu-west-1/2026/10/01/old.json.gz"
    )
    s3_trail.client("s3").put_object(
        Bucket="trail-bucket",
        Body=b"corrupt",
        Key=f"{base}{ACCOUNT}/CloudTrail-Digest/eu-west-1/2026/11/20/digest.json.gz",
    )

    status, report = run_json(
        ["--s3", "s3://trail-bucket/logs", "--since", "2026-11-19", "--until", "2026-11-22", "--workers", "3"], s3_trail
    )
    everything_status, everything = run_json(["--s3", "s3://trail-bucket/logs/"], s3_trail)
    _, local = run_json_records(records)

    assert status == 0 and report["errors"] == []
    assert report["sources"] == 2
    assert report["counts"] == local["counts"]
    assert sorted(f["id"] for f in report["findings"]) == sorted(f["id"] for f in local["findings"])
    assert everything_status == 1 and [e["source"] for e in everything["errors"]] == [
        f"s3://trail-bucket/{base}{ACCOUNT}/CloudTrail/eu-west-1/2026/10/01/old.json.gz"
    ]


def run_json_records(records: list[Any]) -> tuple[int, dict[str, Any]]:
    """The same records judged in this process, with the settings the command reads from the environment."""
    judge = Judge(
        JudgeConfig(
            allowlist=os.environ.get("ALLOWLIST_PATTERNS"),
            trusted_layer_accounts=os.environ.get("TRUSTED_LAYER_ACCOUNTS"),
            behaviour_severities=os.environ.get("BEHAVIOUR_SEVERITIES"),
            allowlist_hides_public=os.environ.get("ALLOWLIST_HIDES_PUBLIC"),
        )
    )
    judgement = judge.records(records, "memory")
    return 0, {"counts": dict(judgement.counts), "findings": judgement.findings}


def test_an_s3_location_without_logs_says_so(s3_trail: Any) -> None:
    put_log(s3_trail, f"elsewhere/AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/2026/11/20/x.json.gz", sample_records())
    status, out, err = run_backtest(["--s3", "s3://trail-bucket/", "--json", "--no-progress"], s3_trail)
    assert status == 0 and json.loads(out)["records"] == 0
    assert "no log files under s3://trail-bucket/" in err


def test_s3_prefixes_reach_one_folder_per_day_and_region(s3_trail: Any) -> None:
    for region in ("eu-west-1", "us-east-1"):
        put_log(s3_trail, f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/11/20/x.json.gz", [])
    client = s3_trail.client("s3")
    since, until = datetime(2026, 11, 20, tzinfo=timezone.utc), datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    prefixes = trail_prefixes(client, "trail-bucket", "", since, until, ["eu-west-1"])
    assert prefixes == [f"AWSLogs/{ACCOUNT}/CloudTrail/eu-west-1/2026/11/{day}/" for day in (20, 21, 22)]
    deeper = trail_prefixes(client, "trail-bucket", f"AWSLogs/{ACCOUNT}/CloudTrail/", None, until, None)
    assert deeper == [f"AWSLogs/{ACCOUNT}/CloudTrail/{region}/" for region in ("eu-west-1", "us-east-1")]


# LookupEvents (moto does not implement it: botocore's Stubber keeps the API's contract) -------------------------


def lookup_event(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": "false",
        "EventTime": datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
        "EventSource": "lambda.amazonaws.com",
        "CloudTrailEvent": json.dumps(record),
    }


class FakeClock:
    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_lookup_events_pages_within_the_quota_backing_off_when_throttled() -> None:
    records = [
        # Newest first, as LookupEvents answers, one hour apart: as many as there are samples.
        {**record, "eventTime": f"2026-11-{29 - index // 24:02d}T{23 - index % 24:02d}:00:00Z"}
        for index, record in enumerate(sample_records())
    ]
    client = boto3.client("cloudtrail", region_name="eu-west-1")
    since, until = datetime(2026, 9, 1, tzinfo=timezone.utc), datetime(2026, 11, 30, tzinfo=timezone.utc)
    expected = {
        "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "lambda.amazonaws.com"}],
        "StartTime": since,
        "EndTime": until,
        "MaxResults": 50,
    }
    clock = FakeClock()
    with Stubber(client) as stub:
        stub.add_response(
            "lookup_events", {"Events": [lookup_event(r) for r in records[:6]], "NextToken": "t1"}, expected
        )
        stub.add_client_error(
            "lookup_events",
            service_error_code="ThrottlingException",
            http_status_code=400,
            expected_params={**expected, "NextToken": "t1"},
        )
        stub.add_response(
            "lookup_events", {"Events": [lookup_event(r) for r in records[6:]]}, {**expected, "NextToken": "t1"}
        )
        pages = list(
            lookup_event_pages(
                client, "eu-west-1", since, until, RateLimiter(2.0, clock.time, clock.sleep), clock.sleep
            )
        )
        stub.assert_no_pending_responses()

    assert [len(page.records) for page in pages] == [6, len(records) - 6]
    assert pages[-1].done == 1.0 and 0 < pages[0].done < 1
    assert 1.0 in clock.sleeps  # backed off after the throttle
    assert all(seconds >= 0.5 - 1e-9 for seconds in clock.sleeps if seconds < 1.0)  # never more than 2 calls/s
    judged = Judge(JudgeConfig()).records([r for page in pages for r in page.records], "lookup")
    assert judged.counts == Judge(JudgeConfig()).records(records, "memory").counts


class StubbedSession:
    """A session whose CloudTrail clients are real clients answered by Stubber, one per Region."""

    region_name = "eu-west-1"

    def __init__(self, records_by_region: dict[str, list[dict[str, Any]]]) -> None:
        self.stubs: list[Stubber] = []
        self.records_by_region = records_by_region

    def client(self, service: str, region_name: str | None = None, config: Any = None) -> Any:
        assert service == "cloudtrail"
        client = boto3.client("cloudtrail", region_name=region_name, config=config)
        stub = Stubber(client)
        stub.add_response("lookup_events", {"Events": [lookup_event(r) for r in self.records_by_region[region_name]]})
        stub.activate()
        self.stubs.append(stub)
        return client


def test_lookup_events_is_the_default_source_and_reads_every_region_asked_for() -> None:
    records = [{**record, "eventTime": "2026-11-20T10:00:00Z"} for record in sample_records()]
    session = StubbedSession({"eu-west-1": records[:5], "us-east-1": records[5:]})
    status, report = run_json(
        ["--regions", "eu-west-1,us-east-1", "--since", "2026-11-01", "--until", "2026-12-01"], session
    )
    for stub in session.stubs:
        stub.assert_no_pending_responses()
    assert status == 0 and report["sources"] == 2
    assert report["counts"] == run_json_records(records)[1]["counts"]


def test_rate_limiter_spaces_calls() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock.time, clock.sleep)
    for _ in range(5):
        limiter.wait()
    assert clock.now == pytest.approx(2.0)


# Athena --------------------------------------------------------------------------------------------------------

ATHENA_NAMES = list(ATHENA_COLUMNS)


def athena_row(record: dict[str, Any]) -> list[dict[str, str]]:
    """The row Athena returns for a record of the CloudTrail table (structs lower-cased, as Athena does)."""

    def lower(value: Any) -> Any:
        if isinstance(value, dict):
            return {key.lower(): lower(item) for key, item in value.items()}
        return [lower(item) for item in value] if isinstance(value, list) else value

    values: list[dict[str, str]] = []
    for column, name in ATHENA_COLUMNS.items():
        value = record.get(name)
        if value is None:
            values.append({})
        elif column in ("useridentity", "resources"):
            values.append({"VarCharValue": json.dumps(lower(value))})
        elif column in ("requestparameters", "responseelements"):
            values.append({"VarCharValue": json.dumps(value)})
        else:
            values.append({"VarCharValue": str(value).lower() if isinstance(value, bool) else str(value)})
    return values


def test_athena_rows_go_through_the_same_rule() -> None:
    records = sample_records()
    header = [{"VarCharValue": name} for name in ATHENA_NAMES]
    with mock_aws():
        seeded = requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/athena/query-results",
            json={
                "region": "us-east-1",
                "results": [
                    {
                        "rows": [{"Data": header}] + [{"Data": athena_row(record)} for record in records],
                        "column_info": [{"Name": name, "Type": "varchar"} for name in ATHENA_NAMES],
                    }
                ],
            },
            timeout=10,
        )
        assert seeded.status_code == 201
        session = boto3.session.Session(region_name="us-east-1")
        status, report = run_json(
            [
                "--athena",
                "--database",
                "trails",
                "--table",
                "cloudtrail_logs",
                "--output-location",
                "s3://athena-results/",
            ],
            session,
        )
        athena = session.client("athena")
        [execution_id] = athena.list_query_executions()["QueryExecutionIds"]
        execution = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert execution["QueryExecutionContext"]["Database"] == "trails"
    assert "FROM cloudtrail_logs" in execution["Query"] and "readonly IS NULL OR" in execution["Query"]

    _, expected = run_json_records(records)
    assert status == 0 and report["errors"] == []
    assert report["counts"] == expected["counts"]
    assert sorted(f["id"] for f in report["findings"]) == sorted(f["id"] for f in expected["findings"])


def test_athena_row_rebuilds_the_record_the_rule_reads() -> None:
    record = next(r for r in sample_records() if r["eventID"] == "0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a04")
    rebuilt = record_from_athena_row(dict(zip(ATHENA_NAMES, [cell.get("VarCharValue") for cell in athena_row(record)])))
    for key in (
        "eventSource",
        "eventName",
        "eventID",
        "eventTime",
        "awsRegion",
        "recipientAccountId",
        "requestParameters",
    ):
        assert rebuilt[key] == record[key]
    assert (
        rebuilt["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
        == record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
    )
    assert rebuilt["userIdentity"]["arn"] == record["userIdentity"]["arn"]


def test_athena_prefilter_selects_every_lambda_call_that_is_not_a_read() -> None:
    query = athena_prefilter_query(
        "cloudtrail_logs",
        datetime(2026, 9, 1, tzinfo=timezone.utc),
        datetime(2026, 12, 1, tzinfo=timezone.utc),
        ["eu-west-1"],
        "timestamp >= '2026/09/01'",
    )
    assert "eventsource = 'lambda.amazonaws.com'" in query
    assert "(readonly IS NULL OR readonly <> 'true')" in query
    assert "eventtime >= '2026-09-01T00:00:00Z'" in query and "eventtime < '2026-12-01T00:00:00Z'" in query
    assert "awsregion IN ('eu-west-1')" in query and "(timestamp >= '2026/09/01')" in query
    assert "eventname" not in query.split("WHERE", 1)[1]  # every write, known or not, reaches the rule
    with pytest.raises(ValueError):
        athena_prefilter_query("t", None, datetime.now(timezone.utc), ["eu-west-1' OR '1'='1"], None)


# Import into Security Hub ---------------------------------------------------------------------------------------


def test_import_sends_the_functions_findings_in_batches_of_at_most_100(
    tmp_path: Path, security_hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = next(r for r in sample_records() if r["eventID"] == "0a6f7c1d-3b9e-4c55-9a0e-7d2b1e4f6a04")
    records = []
    for index in range(230):
        record = copy.deepcopy(base)
        record["eventID"] = f"{index:08d}-0000-4000-8000-000000000000"
        records.append(record)
    write_log(tmp_path / "trail.json.gz", records)
    batch_sizes: list[int] = []
    real_publish = FindingPublisher.publish

    def counting_publish(self: Any, findings: list[dict[str, Any]]) -> None:
        batch_sizes.append(len(findings))
        real_publish(self, findings)

    monkeypatch.setattr(FindingPublisher, "publish", counting_publish)
    monkeypatch.setattr(backtest, "IMPORT_RATE_PER_SECOND", 1000.0)
    session = boto3.session.Session(region_name="us-east-1")
    status, report = run_json(["--path", str(tmp_path), "--import"], session)

    stored = stored_findings(security_hub)
    assert status == 0 and batch_sizes == [100, 100, 30]
    assert {finding["Id"] for finding in stored} == {finding["id"] for finding in report["findings"]}
    for finding in stored[:5]:
        assert_valid_finding(finding)
        assert finding["AwsAccountId"] == DETECTOR_ACCOUNT


# The bench row -------------------------------------------------------------------------------------------------


def test_bench_measures_backtest_against_reading_the_same_files() -> None:
    speed = bench_backtest.measure(records=3_000, repetitions=2, workers=1)
    assert speed.counts_match and sum(speed.counts.values()) == 3_000 and speed.files == 3
    assert len(speed.subject) == len(speed.baseline) == 2 and speed.ratio > 0
    assert speed.counts["finding"] > 0 and speed.counts["ignored"] > 2_500
    assert "equal to a plain record-by-record judgement: yes" in bench_backtest.details(speed)[0]


def test_synthetic_trail_looks_like_a_real_one(tmp_path: Path) -> None:
    paths = bench_backtest.write_synthetic_trail(tmp_path, 20_000, seed=5)
    records = [r for path in paths for r in json.loads(gzip.decompress(path.read_bytes()))["Records"]]
    lambda_calls = [r for r in records if r["eventSource"] == "lambda.amazonaws.com"]
    writes = [r for r in lambda_calls if not r["readOnly"]]
    assert len(records) == 20_000 and all(path.match("AWSLogs/*/CloudTrail/*/2026/11/*/*.json.gz") for path in paths)
    assert 0.005 < len(writes) / len(records) < 0.02 and len(lambda_calls) > 3 * len(writes)
    assert len({r["eventID"] for r in records}) == len(records)


def test_bench_row_gives_the_paired_ratio_and_fails_when_the_counts_differ() -> None:
    from dataclasses import replace

    from bench import run as bench

    speed = bench_backtest.BacktestSpeed(1_000, 1, 1, {"finding": 1}, True, (1.0, 2.0), (2.0, 2.0))
    row = bench.backtest_row(speed)
    assert (row.ratio, row.ok) == ("0.75", "yes")  # median of the paired ratios 0.5 and 1.0
    assert bench.backtest_row(replace(speed, subject=(3.0, 3.0))).ok == "NO"
    assert bench.backtest_row(replace(speed, counts_match=False)).ok == "NO"
