"""List the findings of this detector (rule AWS.LAMBDA.CRUD) that Security Hub holds.

    lambda-crud-detector findings [--since 24h] [--account 111122223333] [--principal '*role/Dev*'] [--json]

Reads a real account through the usual AWS credential chain and Region settings, or a local Security Hub with
``--endpoint-url`` (by default AWS_ENDPOINT_URL_SECURITYHUB, when set). Every filter is sent to Security Hub, so that
only matching findings are transferred, and checked again here on each finding: a local Security Hub (moto)
ignores filters, and Security Hub can only approximate a principal glob.

"Account" and "Region" are where the Lambda call happened (the CloudTrail record's recipientAccountId and
awsRegion), in both of the detector's modes: with FindingsAccount=detector the finding itself is held by the
detector's account, with FindingsAccount=source by that same account, and the administrator account of Security
Hub sees both kinds. So ``--account`` selects the same findings whichever account holds them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from lambda_crud_detector.terminal import printable, printable_json

GENERATOR_ID = "AWS.LAMBDA.CRUD"
"""The GeneratorId the detector gives its findings (the rule's id, ``rule.RULE_ID``)."""

MAX_PAGE_SIZE = 100
"""The most findings GetFindings returns in one page."""

PRINCIPAL_KEYS = ("principalArn", "userIdentity.arn")
"""ProductFields a --principal glob is matched against: the identity the rule judged, and the caller as recorded."""

_DURATION = re.compile(r"(?P<amount>\d+)\s*(?P<unit>[mhdw])")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ACCOUNT_ID = re.compile(r"\d{12}")
_GLOB_SYNTAX = re.compile(r"\*|\?|\[[^\]]*\]?")
# Security Hub compares dates against a closed range; its end is set a day ahead so that findings stamped by a
# clock running ahead of this one are not left out.
_CLOCK_MARGIN = timedelta(days=1)
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Criteria:
    """What to list, beyond being this detector's finding."""

    since: datetime | None = None
    account: str | None = None
    principal: str | None = None


@dataclass(frozen=True)
class Row:
    time: str
    principal: str
    action: str
    function: str
    account: str
    region: str
    severity: str
    behaviour: str


COLUMNS = {
    "time": "TIME (UTC)",
    "principal": "PRINCIPAL",
    "action": "ACTION",
    "function": "FUNCTION",
    "account": "ACCOUNT",
    "region": "REGION",
    "severity": "SEVERITY",
    "behaviour": "BEHAVIOUR",
}


# Arguments ---------------------------------------------------------------------------------------------------


def add_security_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """``--region`` and ``--endpoint-url``: which Security Hub a command reads or writes (shared by every command
    that talks to Security Hub, so that each takes the same environment variables)."""
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or None,
        help="Security Hub Region (default: $AWS_REGION, else $AWS_DEFAULT_REGION or the AWS config)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL_SECURITYHUB") or None,
        help="a Security Hub endpoint to use instead of AWS's (default: $AWS_ENDPOINT_URL_SECURITYHUB)",
    )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A moment, from a duration back from ``now`` (``30m``, ``24h``, ``7d``, ``2w``) or an ISO 8601 date or time
    (``2026-11-01``, ``2026-11-01T08:00:00Z``; without an offset, UTC)."""
    now = now or datetime.now(timezone.utc)
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        return now - timedelta(**{_DURATION_UNITS[duration["unit"]]: int(duration["amount"])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration such as 30m, 24h, 7d or 2w nor an ISO 8601 date such as 2026-11-01"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_account(text: str) -> str:
    if not _ACCOUNT_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS account ID (12 digits)")
    return text


def parse_page_size(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-crud-detector findings",
        description="List the Security Hub findings of the Lambda change detector (rule AWS.LAMBDA.CRUD).",
        epilog=(
            "examples:\n"
            "  lambda-crud-detector findings --since 24h\n"
            "  lambda-crud-detector findings --since 2026-11-01 --account 111122223333 --json\n"
            "  lambda-crud-detector findings --principal '*:role/DevSandboxRole'\n"
            "  lambda-crud-detector findings --endpoint-url http://127.0.0.1:5000 --region us-east-1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only findings of calls made since then: 30m, 24h, 7d, 2w, or an ISO 8601 date/time (UTC)",
    )
    parser.add_argument(
        "--account", type=parse_account, metavar="ACCOUNT_ID", help="only calls made in this AWS account"
    )
    parser.add_argument(
        "--principal",
        metavar="GLOB",
        help="only calls by a principal whose ARN (the role, or the caller as recorded) matches",
    )
    parser.add_argument("--json", action="store_true", help="print the findings themselves, as a JSON array")
    add_security_hub_arguments(parser)
    parser.add_argument(
        "--page-size",
        type=parse_page_size,
        default=MAX_PAGE_SIZE,
        metavar="N",
        help=f"findings asked for per request, 1 to {MAX_PAGE_SIZE} (default: {MAX_PAGE_SIZE})",
    )
    return parser


# Filters -----------------------------------------------------------------------------------------------------


def security_hub_filters(criteria: Criteria, now: datetime | None = None) -> dict[str, Any]:
    """GetFindings filters that keep at least every finding ``criteria`` selects.

    Security Hub joins EQUALS and CONTAINS filters on one field with OR, so the ProductFields filters (account and
    principal together) only narrow the search; ``matches`` applies the criteria exactly.
    """
    filters: dict[str, Any] = {"GeneratorId": [{"Value": GENERATOR_ID, "Comparison": "EQUALS"}]}
    if criteria.since is not None:
        end = (now or datetime.now(timezone.utc)) + _CLOCK_MARGIN
        # CreatedAt is the CloudTrail eventTime: the detector stamps every finding with the time of the call.
        filters["CreatedAt"] = [{"Start": _iso(criteria.since), "End": _iso(end)}]
    product_fields = []
    if criteria.account is not None:
        product_fields.append({"Key": "recipientAccountId", "Value": criteria.account, "Comparison": "EQUALS"})
    fragment = longest_literal(criteria.principal or "")
    if fragment:
        product_fields += [{"Key": key, "Value": fragment, "Comparison": "CONTAINS"} for key in PRINCIPAL_KEYS]
    if product_fields:
        filters["ProductFields"] = product_fields
    return filters


def longest_literal(glob: str) -> str:
    """The longest run of ``glob`` without wildcards: text every matching string contains."""
    return max(_GLOB_SYNTAX.split(glob), key=len, default="")


def matches(finding: Mapping[str, Any], criteria: Criteria) -> bool:
    """Whether ``finding`` is this detector's and meets every criterion."""
    fields = _product_fields(finding)
    if finding.get("GeneratorId") != GENERATOR_ID:
        return False
    if criteria.since is not None:
        created = _parse_time(finding.get("CreatedAt"))
        if created is None or created < criteria.since:
            return False
    if criteria.account is not None and fields.get("recipientAccountId") != criteria.account:
        return False
    if criteria.principal is not None:
        return any(fnmatchcase(fields[key], criteria.principal) for key in PRINCIPAL_KEYS if key in fields)
    return True


# Reading -----------------------------------------------------------------------------------------------------


def fetch_findings(client: Any, filters: Mapping[str, Any], page_size: int = MAX_PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Every finding GetFindings returns for ``filters``, page after page."""
    pages = client.get_paginator("get_findings").paginate(
        Filters=dict(filters), PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        yield from page["Findings"]


def list_findings(client: Any, criteria: Criteria, page_size: int = MAX_PAGE_SIZE) -> list[dict[str, Any]]:
    """This detector's findings that meet ``criteria``, oldest call first."""
    fetched = fetch_findings(client, security_hub_filters(criteria), page_size)
    found = [finding for finding in fetched if matches(finding, criteria)]
    return sorted(found, key=lambda finding: (_parse_time(finding.get("CreatedAt")) or _NEVER, str(finding.get("Id"))))


# Output ------------------------------------------------------------------------------------------------------


def finding_row(finding: Mapping[str, Any]) -> Row:
    fields = _product_fields(finding)
    created = _parse_time(finding.get("CreatedAt"))
    return Row(
        time=created.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if created else "-",
        principal=fields.get("principalArn") or fields.get("userIdentity.arn") or "-",
        action=fields.get("eventName") or "-",
        function=_function_name(finding, fields),
        account=fields.get("recipientAccountId") or "-",
        region=fields.get("awsRegion") or "-",
        severity=str((finding.get("Severity") or {}).get("Label", "-")),
        behaviour=fields.get("behaviour") or "-",
    )


def format_table(rows: Sequence[Row]) -> str:
    """Rows under a header, each column as wide as its widest cell."""
    if not rows:
        return "No findings."
    # Every cell comes from a finding, and so from a record a caller wrote: escaped before it reaches a terminal.
    table = [list(COLUMNS.values())] + [[printable(getattr(row, name)) for name in COLUMNS] for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table)


def format_json(findings: Iterable[Mapping[str, Any]]) -> str:
    return printable_json(json.dumps(list(findings), indent=2, ensure_ascii=False, default=str))


# Command -----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    criteria = Criteria(since=arguments.since, account=arguments.account, principal=arguments.principal)
    try:
        client = boto3.session.Session(region_name=arguments.region).client(
            "securityhub", endpoint_url=arguments.endpoint_url
        )
        findings = list_findings(client, criteria, arguments.page_size)
    except (BotoCoreError, ClientError) as error:
        print(f"{parser.prog}: error: {_explain(error)}", file=sys.stderr)
        return 2
    print(format_json(findings) if arguments.json else format_table([finding_row(finding) for finding in findings]))
    return 0


def _explain(error: Exception) -> str:
    if isinstance(error, NoRegionError):
        return "no AWS Region: pass --region or set AWS_REGION"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: configure a profile (aws configure / aws sso login) or set AWS_PROFILE"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"Security Hub refused the request: {details.get('Code')}: {details.get('Message')}"
    return str(error)


def _product_fields(finding: Mapping[str, Any]) -> Mapping[str, str]:
    fields = finding.get("ProductFields")
    return fields if isinstance(fields, Mapping) else {}


def _function_name(finding: Mapping[str, Any], fields: Mapping[str, str]) -> str:
    """The function's name; for a call on something else, what the finding's resource names (its ARN's resource)."""
    function_arn = fields.get("functionArn")
    if function_arn and ":function:" in function_arn:
        return function_arn.split(":function:", 1)[1]
    resource_id = str(((finding.get("Resources") or [{}])[0]).get("Id", ""))
    arn_parts = resource_id.split(":", 5)
    return arn_parts[5] if resource_id.startswith("arn:") and len(arn_parts) == 6 else "-"


def _parse_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    sys.exit(main())
