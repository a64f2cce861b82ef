"""Check, on your own account, which Security Hub shows a finding imported the way the detector imports its own.

    lambda-crud-detector securityhub-check [--region us-east-1] [--wait 60]

Imports ONE clearly labelled test finding (INFORMATIONAL, title "lambda-crud-detector TEST FINDING ...") into the
account's default product with BatchImportFindings, as the detector does; looks for it with GetFindings (Security
Hub CSPM, ASFF) and with GetFindingsV2 (the new Security Hub, OCSF); reports what each answered; then archives the
test finding (a provider archives by importing it again with RecordState ARCHIVED). Where the new Security Hub is
not enabled, or the credentials may not call GetFindingsV2, it says so rather than failing.

Uses the usual AWS credential chain and Region settings, or a local Security Hub with ``--endpoint-url``. Needs
sts:GetCallerIdentity, securityhub:BatchImportFindings, securityhub:GetFindings and securityhub:GetFindingsV2.
Exit status: 0 when the test finding was imported, found by GetFindings and archived (whatever GetFindingsV2
answered); 1 when one of those failed; 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from lambda_crud_detector.findings import _explain, add_security_hub_arguments

GENERATOR_ID = "lambda-crud-detector/securityhub-check"
"""Not the rule's GeneratorId (AWS.LAMBDA.CRUD): the detector's notification rule and viewer never pick it up."""
TITLE_PREFIX = "lambda-crud-detector TEST FINDING"
POLL_SECONDS = 5.0


@dataclass
class Report:
    finding_id: str
    imported: bool = False
    found_v1: bool = False
    found_v2: bool | None = None
    """None when GetFindingsV2 could not answer (not enabled, not allowed, not in this SDK)."""
    v2_note: str = ""
    archived: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.imported and self.found_v1 and self.archived


def test_finding(account: str, region: str, partition: str, now: datetime, token: str) -> dict[str, Any]:
    """The ASFF test finding: labelled as a test everywhere a person could see it, about no real resource."""
    stamp = now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "SchemaVersion": "2018-10-08",
        "Id": f"{GENERATOR_ID}/{token}",
        "ProductArn": f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default",
        "GeneratorId": GENERATOR_ID,
        "AwsAccountId": account,
        "CreatedAt": stamp,
        "UpdatedAt": stamp,
        "Title": f"{TITLE_PREFIX} {token} (safe to ignore; archived by the check)",
        "Description": (
            "Imported by lambda-crud-detector's Security Hub check (lambda-crud-detector securityhub-check) to see which"
            " Security Hub shows findings of a custom product. It concerns no resource and is archived at once."
        ),
        "FindingProviderFields": {
            "Severity": {"Label": "INFORMATIONAL"},
            "Types": ["Software and Configuration Checks"],
        },
        "Resources": [{"Type": "Other", "Id": f"lambda-crud-detector-securityhub-check-{token}", "Region": region}],
        "RecordState": "ACTIVE",
    }


def archived(finding: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The same finding, archived: Security Hub keeps an import only if its UpdatedAt is later than the stored one."""
    later = max(now, datetime.fromisoformat(finding["UpdatedAt"].replace("Z", "+00:00")) + timedelta(milliseconds=1))
    stamp = later.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {**finding, "UpdatedAt": stamp, "RecordState": "ARCHIVED"}


def find_v1(client: Any, finding_id: str) -> bool:
    filters = {"Id": [{"Value": finding_id, "Comparison": "EQUALS"}]}
    return any(item.get("Id") == finding_id for item in client.get_findings(Filters=filters)["Findings"])


def find_v2(client: Any, finding: dict[str, Any]) -> bool:
    """Whether GetFindingsV2 returns the test finding. How a custom ASFF finding maps to OCSF is not documented, so
    the Id is looked for where OCSF keeps identifiers, and the unique title where it keeps titles."""
    string_filters = [
        {"FieldName": "finding_info.uid", "Filter": {"Value": finding["Id"], "Comparison": "EQUALS"}},
        {"FieldName": "metadata.uid", "Filter": {"Value": finding["Id"], "Comparison": "EQUALS"}},
        {"FieldName": "finding_info.title", "Filter": {"Value": finding["Title"], "Comparison": "EQUALS"}},
    ]
    response = client.get_findings_v2(
        Filters={"CompositeFilters": [{"StringFilters": string_filters, "Operator": "OR"}]}, MaxResults=10
    )
    return bool(response.get("Findings"))


def run_check(
    client: Any,
    account: str,
    region: str,
    partition: str = "aws",
    wait_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> Report:
    """Import, look up with both APIs (polling for up to ``wait_seconds``: imports are not read back at once), and
    archive the test finding, whatever the lookups answered."""
    token = uuid.uuid4().hex[:12]
    finding = test_finding(account, region, partition, clock(), token)
    report = Report(finding["Id"])
    response = client.batch_import_findings(Findings=[finding])
    if response.get("FailedCount"):
        report.problems.append(f"BatchImportFindings refused the test finding: {response.get('FailedFindings')}")
        return report
    report.imported = True
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            report.found_v1 = report.found_v1 or find_v1(client, finding["Id"])
            if report.found_v2 is not True and not report.v2_note:
                try:
                    report.found_v2 = find_v2(client, finding)
                except ClientError as error:
                    details = error.response.get("Error", {})
                    report.v2_note = (
                        f"GetFindingsV2 answered {details.get('Code')}: {details.get('Message')}. Either the new"
                        " Security Hub is not enabled in this account and Region, or these credentials may not call"
                        " securityhub:GetFindingsV2."
                    )
                except AttributeError:
                    report.v2_note = "this boto3 has no GetFindingsV2: upgrade boto3 to ask the new Security Hub."
            if (report.found_v1 and report.found_v2 is not False) or time.monotonic() >= deadline:
                break
            sleep(POLL_SECONDS)
    finally:
        answer = client.batch_import_findings(Findings=[archived(finding, clock())])
        report.archived = not answer.get("FailedCount")
        if not report.archived:
            report.problems.append(f"archiving the test finding failed: {answer.get('FailedFindings')}")
    if not report.found_v1:
        report.problems.append(f"GetFindings did not return the test finding within {wait_seconds:.0f} s")
    return report


def format_report(report: Report, account: str, region: str) -> str:
    if report.found_v2 is None:
        v2 = "could not tell"
    else:
        v2 = "yes: the new Security Hub shows findings of a custom product" if report.found_v2 else "no"
    lines = [
        f"Security Hub check in account {account}, Region {region}",
        f"  test finding Id:                {report.finding_id}",
        f"  imported (BatchImportFindings): {'yes' if report.imported else 'no'}",
        f"  found by GetFindings (CSPM):    {'yes' if report.found_v1 else 'no'}",
        f"  found by GetFindingsV2 (new):   {v2}",
    ]
    if report.found_v2 is False:
        lines.append(
            "    The new Security Hub answered but did not return it: findings imported into Security Hub CSPM"
            " did not appear there within the wait (try a longer --wait once)."
        )
    if report.v2_note:
        lines.append(f"    {report.v2_note}")
    lines.append(f"  archived (RecordState ARCHIVED): {'yes' if report.archived else 'no'}")
    lines += [f"  problem: {problem}" for problem in report.problems]
    return "\n".join(lines)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-crud-detector securityhub-check",
        description=(
            "Import one labelled test finding, look for it with GetFindings and GetFindingsV2, report, archive it."
        ),
        epilog=(
            "examples:\n"
            "  lambda-crud-detector securityhub-check --region us-east-1\n"
            "  lambda-crud-detector securityhub-check --wait 300\n"
            "  lambda-crud-detector securityhub-check --endpoint-url http://127.0.0.1:5000 --region us-east-1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_security_hub_arguments(parser)
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep looking for the test finding before archiving it (default: 60)",
    )
    return parser


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    if arguments.wait < 0:
        parser.error("--wait must not be negative")
    try:
        session = session or boto3.session.Session(region_name=arguments.region)
        region = arguments.region or session.region_name
        if not region:
            raise NoRegionError()
        # A local Security Hub (moto) answers STS on the same endpoint: the check never leaves it for AWS's STS.
        identity = session.client("sts", region_name=region, endpoint_url=arguments.endpoint_url).get_caller_identity()
        account, partition = identity["Account"], identity["Arn"].split(":", 2)[1]
        client = session.client("securityhub", region_name=region, endpoint_url=arguments.endpoint_url)
    except (BotoCoreError, ClientError) as error:
        print(f"{parser.prog}: error: {_explain(error)}", file=sys.stderr)
        return 2
    try:
        report = run_check(client, account, region, partition, arguments.wait)
    except (BotoCoreError, ClientError) as error:
        print(f"{parser.prog}: error: {_explain(error)}", file=sys.stderr)
        return 1
    print(format_report(report, account, region))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
