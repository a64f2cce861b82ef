"""Judge stored CloudTrail history with the live rule, to see who changes Lambda functions before switching it on.

    lambda-crud-detector backtest [--lookup-events | --s3 s3://BUCKET/PREFIX | --path DIR | --athena] [options]

The rule, its settings (ALLOWLIST_PATTERNS, TRUSTED_LAYER_ACCOUNTS, BEHAVIOUR_SEVERITIES and ALLOWLIST_HIDES_PUBLIC,
or the options of the same names) and the finding
Ids are the deployed function's own (functions/detector), so what backtest reports is what the detector would
have reported, Id for Id; --import sends those findings to Security Hub, where a later live event of the same
call does not duplicate them.

Reads AWS through the usual credential chain and Region settings. Exit status: 0 when every file, object, page
and record could be judged, 1 when some could not (they are named; everything else is judged), 2 on a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lambda_crud_detector.cost import Usage, format_cost, monthly_cost
from lambda_crud_detector.findings import parse_since
from lambda_crud_detector.terminal import printable
from lambda_crud_detector.trail_judge import (
    DIRECT,
    SEVERITIES,
    Judge,
    JudgeConfig,
    Judgement,
    judge_local_file,
    judge_path,
    start_worker,
)
from lambda_crud_detector.trail_sources import (
    Page,
    RateLimiter,
    athena_pages,
    athena_prefilter_query,
    bounded_map,
    iso,
    local_log_files,
    lookup_event_pages,
    parse_s3_url,
    run_athena_query,
    s3_log_keys,
    s3_objects,
    trail_prefixes,
)

IMPORT_BATCH = 100
"""The most findings one BatchImportFindings call takes."""
IMPORT_BATCH_BYTES = 5 * 1024 * 1024
"""Below the 6 MB a BatchImportFindings call may carry."""
IMPORT_RATE_PER_SECOND = 5.0
"""Half of BatchImportFindings' 10 calls/s, leaving room for the live detector in the same account and Region."""
DEFAULT_WORKERS = min(os.cpu_count() or 1, 4)
PIPELINE_MIN_CALLS = 5
PIPELINE_MIN_DAYS = 2
_HUMAN_ROLES = ("AWSReservedSSO_",)
"""Role name prefixes of roles that people sign in to (IAM Identity Center): never a pipeline."""


# Arguments ---------------------------------------------------------------------------------------------------


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-crud-detector backtest",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "examples:\n"
            "  lambda-crud-detector backtest --since 90d --regions us-east-1,eu-west-1\n"
            "  lambda-crud-detector backtest --s3 s3://my-trail-bucket/AWSLogs/o-abc123def4/ --since 30d\n"
            "  lambda-crud-detector backtest --path ./trail-copy --json\n"
            "  lambda-crud-detector backtest --athena --database default --table cloudtrail_logs --since 180d\n"
            "  lambda-crud-detector backtest --path ./trail-copy --allowlist 'arn:aws:iam::111122223333:role/DeployRole'"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--lookup-events",
        action="store_true",
        help="CloudTrail LookupEvents, the last 90 days of management events (default; no setup)",
    )
    source.add_argument(
        "--s3",
        metavar="S3_URL",
        help="a trail's log files in S3: s3://BUCKET[/PREFIX], in the "
        "layout CloudTrail writes (organisation trails too)",
    )
    source.add_argument("--path", type=Path, metavar="DIR", help="local .json and .json.gz log files, any layout")
    source.add_argument("--athena", action="store_true", help="the CloudTrail table in Athena")
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="from then on: 30m, 24h, 90d, 2w or an ISO 8601 date/time (default for LookupEvents: 90d)",
    )
    parser.add_argument("--until", type=parse_since, metavar="WHEN", help="up to then (default: now)")
    parser.add_argument(
        "--regions",
        metavar="LIST",
        help="comma-separated Regions (LookupEvents default: the session's Region; S3 and Athena default: all)",
    )
    parser.add_argument(
        "--allowlist",
        metavar="PATTERNS",
        default=os.environ.get("ALLOWLIST_PATTERNS"),
        help="ALLOWLIST_PATTERNS to judge with (default: $ALLOWLIST_PATTERNS, else the function's default)",
    )
    parser.add_argument(
        "--trusted-layer-accounts",
        metavar="ACCOUNTS",
        default=os.environ.get("TRUSTED_LAYER_ACCOUNTS"),
        help="TRUSTED_LAYER_ACCOUNTS to judge with (default: $TRUSTED_LAYER_ACCOUNTS, else AWS's layer publishers)",
    )
    parser.add_argument(
        "--behaviour-severities",
        metavar="LEVELS",
        default=os.environ.get("BEHAVIOUR_SEVERITIES"),
        help="BEHAVIOUR_SEVERITIES to judge with, e.g. other-write=LOW (default: $BEHAVIOUR_SEVERITIES)",
    )
    parser.add_argument(
        "--allowlist-hides-public",
        metavar="BOOL",
        default=os.environ.get("ALLOWLIST_HIDES_PUBLIC"),
        help="ALLOWLIST_HIDES_PUBLIC to judge with (default: $ALLOWLIST_HIDES_PUBLIC, else false)",
    )
    parser.add_argument("--database", default="default", help="Athena database (default: default)")
    parser.add_argument("--table", default="cloudtrail_logs", help="Athena CloudTrail table (default: cloudtrail_logs)")
    parser.add_argument("--workgroup", help="Athena workgroup (default: the account's primary)")
    parser.add_argument(
        "--output-location", metavar="S3_URL", help="Athena results location, if the workgroup has none"
    )
    parser.add_argument(
        "--athena-where",
        metavar="SQL",
        help="one more condition for the Athena query, such as a partition range: \"timestamp >= '2026/09/01'\"",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="processes judging local files, threads downloading S3 objects (default: CPUs, at most 4)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object: counts, findings, errors")
    parser.add_argument(
        "--import",
        dest="import_findings",
        action="store_true",
        help="send the would-be findings to Security Hub, as the detector would",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def regions_of(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


# Progress on stderr --------------------------------------------------------------------------------------------


class Progress:
    """Files or pages done, records per second and the time left, at most once a second, on stderr."""

    def __init__(self, unit: str, total: int | None, enabled: bool, stream: Any = sys.stderr) -> None:
        self.unit, self.total, self.enabled, self.stream = unit, total, enabled, stream
        self.done = self.records = 0
        self.started = self._last = time.monotonic()

    def update(self, records: int, share_done: float | None = None) -> None:
        self.done += 1
        self.records += records
        now = time.monotonic()
        if not self.enabled or (now - self._last < 1.0 and self.done != self.total):
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        if share_done is None and self.total:
            share_done = self.done / self.total
        eta = f", about {_duration(elapsed * (1 - share_done) / share_done)} left" if share_done else ""
        of_total = f"/{self.total:,}" if self.total else ""
        print(
            f"[backtest] {self.unit} {self.done:,}{of_total}, {self.records:,} records,"
            f" {self.records / elapsed:,.0f} records/s{eta}",
            file=self.stream,
            flush=True,
        )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# Running a source ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    judgement: Judgement
    sources: int = 0
    skipped: int = 0
    """Files left out on purpose (digest files)."""


def judge_local(
    root: Path, config: JudgeConfig, workers: int, progress_enabled: bool, on_judgement: Callable[[Judgement], None]
) -> Run:
    """Every log file under ``root``, one file per task, over ``workers`` processes when there are several files."""
    files, digests = local_log_files(root)
    if not files:
        print(f"backtest: no .json or .json.gz log files under {root}", file=sys.stderr)
    run = Run(Judgement(), len(files), len(digests))
    progress = Progress("files", len(files), progress_enabled)
    if workers > 1 and len(files) > 1:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=start_worker, initargs=(config,))
        _collect(bounded_map(judge_path, [str(path) for path in files], workers, pool), run, progress, on_judgement)
    else:
        judge = Judge(config)
        _collect((judge_local_file(judge, path) for path in files), run, progress, on_judgement)
    return run


def _collect(
    results: Iterable[Judgement], run: Run, progress: Progress, on_judgement: Callable[[Judgement], None]
) -> None:
    for judgement in results:
        on_judgement(judgement)
        judgement.built = []  # imported already; only the summaries are kept
        run.judgement.add(judgement)
        progress.update(judgement.records)


def judge_pages(
    pages: Iterable[Page], judge: Judge, unit: str, progress_enabled: bool, on_judgement: Callable[[Judgement], None]
) -> Run:
    run = Run(Judgement())
    progress = Progress(unit, None, progress_enabled)
    for page in pages:
        judgement = judge.records(page.records, page.name)
        judgement.errors = page.errors + judgement.errors
        run.sources += 1
        on_judgement(judgement)
        judgement.built = []
        run.judgement.add(judgement)
        progress.update(judgement.records, page.done)
    return run


def judge_s3(
    session: Any,
    url: str,
    since: datetime | None,
    until: datetime,
    regions: list[str],
    judge: Judge,
    workers: int,
    progress_enabled: bool,
    on_judgement: Callable[[Judgement], None],
) -> Run:
    bucket, prefix = parse_s3_url(url)
    client = session.client("s3")
    keys = s3_log_keys(client, bucket, trail_prefixes(client, bucket, prefix, since, until, regions), workers)
    if not keys:
        print(
            f"backtest: no log files under {url} (in the layout [PREFIX/]AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/"
            "YYYY/MM/DD/) for these dates and Regions",
            file=sys.stderr,
        )
    run = Run(Judgement(), len(keys))
    progress = Progress("objects", len(keys), progress_enabled)

    def judged() -> Iterator[Judgement]:
        for name, content, error in s3_objects(client, bucket, keys, workers):
            yield (
                judge.log_file(content, name)
                if content is not None
                else Judgement(errors=[{"source": name, "error": error}])
            )

    _collect(judged(), run, progress, on_judgement)
    return run


def lookup_pages(session: Any, regions: list[str], since: datetime, until: datetime) -> Iterator[Page]:
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 5})
    for number, region in enumerate(regions):
        client = session.client("cloudtrail", region_name=region, config=config)
        for page in lookup_event_pages(client, region, since, until):
            if page.done is not None:  # the share of all Regions, for the estimate of the time left
                page.done = (number + page.done) / len(regions)
            yield page


# Security Hub import -------------------------------------------------------------------------------------------


class Importer:
    """Sends built findings in batches of at most 100 (and 5 MB), at most IMPORT_RATE_PER_SECOND calls a second."""

    def __init__(self, publisher: Any, rate_per_second: float = IMPORT_RATE_PER_SECOND) -> None:
        self.publisher, self.limiter = publisher, RateLimiter(rate_per_second)
        self.batch: list[dict[str, Any]] = []
        self.batch_bytes = 0
        self.sent = 0

    def add(self, findings: Iterable[dict[str, Any]]) -> None:
        for finding in findings:
            size = len(json.dumps(finding))
            if len(self.batch) == IMPORT_BATCH or self.batch_bytes + size > IMPORT_BATCH_BYTES:
                self.flush()
            self.batch.append(finding)
            self.batch_bytes += size

    def flush(self) -> None:
        if not self.batch:
            return
        self.limiter.wait()
        self.publisher.publish(self.batch)  # raises on any rejected finding
        self.sent += len(self.batch)
        self.batch, self.batch_bytes = [], 0


def security_hub_importer(session: Any) -> tuple[Importer, Any]:
    """An importer for the caller's own account and Region, and that account as the detector's."""
    from finding import DetectorAccount
    from publisher import FindingPublisher, client_config

    if not session.region_name:
        raise ValueError("no AWS Region to import into: set AWS_REGION or configure a Region")
    identity = session.client("sts").get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    detector = DetectorAccount(identity["Account"], partition, session.region_name)
    # The detector's retries and timeouts; run by the user, it honours the endpoint their configuration names.
    client = session.client("securityhub", config=client_config(local=True))
    return Importer(FindingPublisher(client)), detector


# Output --------------------------------------------------------------------------------------------------------


def suggested_entries(findings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Allowlist entries, principal plus channel, for principals that act like pipelines.

    A pipeline here is an IAM role (not a role people sign in to through IAM Identity Center, not an IAM user
    with long-lived keys, never a call without a verifiable identity) that made at least PIPELINE_MIN_CALLS
    successful changes through one channel, an AWS service (``invokedBy``) or a web identity provider, on
    PIPELINE_MIN_DAYS days or more. The entry names the role exactly, never a glob, and the channel, so that the
    same role used by hand stays a finding. Calls made directly with a role's credentials are never suggested:
    nothing tells a pipeline from a person, or an intruder, holding the same role.
    """
    calls: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for finding in findings:
        principal = finding.get("principal")
        if principal and finding["channel"] != DIRECT and not finding.get("errorCode") and _is_pipeline_role(principal):
            calls[(principal, finding["channel"])].append(finding)
    suggestions = []
    for (principal, channel), made in calls.items():
        day_count = len({(finding.get("eventTime") or "")[:10] for finding in made})
        if len(made) < PIPELINE_MIN_CALLS or day_count < PIPELINE_MIN_DAYS:
            continue
        suggestions.append(
            {
                "entry": f"{principal};{channel}",
                "principal": principal,
                "channel": channel,
                "calls": len(made),
                "days": day_count,
                "actions": sorted({str(finding.get("action")) for finding in made}),
            }
        )
    return sorted(suggestions, key=lambda suggestion: (-suggestion["calls"], suggestion["entry"]))


def _is_pipeline_role(principal: str) -> bool:
    fields = principal.split(":", 5)
    if len(fields) != 6 or fields[2] != "iam" or not fields[5].startswith("role/"):
        return False
    name = fields[5].rsplit("/", 1)[-1]
    # A comma or semicolon would break the comma-separated allowlist; glob characters would widen the entry.
    return not name.startswith(_HUMAN_ROLES) and not any(character in principal for character in ",;*?[]")


def grouped(findings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Would-be findings grouped by principal, channel, action, account and Region, with first and last seen."""
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for finding in findings:
        who = finding.get("principal") or f"(unverified) {finding.get('caller') or 'unknown'}"
        key = (
            who,
            finding["channel"],
            str(finding.get("action")),
            str(finding.get("account")),
            str(finding.get("region")),
            str(finding.get("severity")),
            str(finding.get("behaviour")),
        )
        group = groups.setdefault(key, {"count": 0, "first": None, "last": None, "changed": ""})
        group["count"] += 1
        group["changed"] = group["changed"] or finding.get("changed") or ""
        seen = finding.get("eventTime") or ""
        group["first"] = seen if group["first"] is None else min(group["first"], seen)
        group["last"] = seen if group["last"] is None else max(group["last"], seen)
    rows = [
        {
            "principal": key[0],
            "channel": key[1],
            "action": key[2],
            "account": key[3],
            "region": key[4],
            "severity": key[5],
            "behaviour": key[6],
            **group,
        }
        for key, group in groups.items()
    ]
    return sorted(rows, key=lambda row: (-_SEVERITY_RANK.get(row["severity"], -1), -row["count"], row["principal"]))


_SEVERITY_RANK = {level: rank for rank, level in enumerate(SEVERITIES)}
CHANGED_WIDTH = 100


def severity_counts(judgement: Judgement) -> dict[str, int]:
    """Would-be findings by severity, most severe first, every level shown."""
    return {level: judgement.severities.get(level, 0) for level in reversed(SEVERITIES)}


def report_json(run: Run, suggestions: list[dict[str, Any]]) -> str:
    judgement = run.judgement
    document = {
        "counts": dict(judgement.counts),
        "findingsBySeverity": severity_counts(judgement),
        "findingsByBehaviour": dict(judgement.behaviours.most_common()),
        "findings": sorted(judgement.findings, key=lambda finding: (finding.get("eventTime") or "", finding["id"])),
        "errors": sorted_errors(judgement.errors),
        "suggestedAllowlist": suggestions,
        "records": judgement.records,
        "outsideTimeRange": judgement.outside_window,
        "folded": judgement.folded,
        "sources": run.sources,
        "skippedDigestFiles": run.skipped,
    }
    return json.dumps(document, indent=2)


def report_text(run: Run, suggestions: list[dict[str, Any]], allowlist: str | None, seconds: float) -> str:
    """The summary for a person; every value from a record is escaped for the terminal first."""
    judgement = run.judgement
    lines = [
        f"Judged {judgement.records:,} records from {run.sources:,} files or pages in {seconds:.1f} s"
        + (f" ({judgement.outside_window:,} outside the time range left out)" if judgement.outside_window else "")
        + (f"; {run.skipped:,} digest files skipped" if run.skipped else "")
        + ".",
        "Allowlist: " + ("the function's default" if allowlist is None else _printable(allowlist) or "(nobody)"),
        "",
        "VERDICT      RECORDS",
        *(f"{kind:<12} {count:>8,}" for kind, count in judgement.counts.items()),
        "",
    ]
    if judgement.findings:
        lines += ["SEVERITY     FINDINGS", *(f"{level:<12} {n:>8,}" for level, n in severity_counts(judgement).items())]
        lines += ["", "BEHAVIOUR                 FINDINGS"]
        lines += [f"{_printable(name):<25} {n:>8,}" for name, n in judgement.behaviours.most_common()]
        lines.append("")
    groups = grouped(judgement.findings)
    if groups:
        lines.append("Would-be findings, by severity, behaviour, principal, channel, action, account and Region:")
        header = (
            "SEVERITY",
            "BEHAVIOUR",
            "COUNT",
            "PRINCIPAL",
            "CHANNEL",
            "ACTION",
            "ACCOUNT",
            "REGION",
            "FIRST SEEN",
            "LAST SEEN",
            "WHAT CHANGED (first)",
        )
        table = [header] + [
            (
                row["severity"],
                row["behaviour"],
                str(row["count"]),
                row["principal"],
                row["channel"],
                row["action"],
                row["account"],
                row["region"],
                row["first"],
                row["last"],
                _clipped(row["changed"], CHANGED_WIDTH),
            )
            for row in groups
        ]
        lines += _columns([[_printable(cell) for cell in row] for row in table])
    else:
        lines.append("No would-be findings.")
    lines.append("")
    if suggestions:
        lines.append(
            f"Suggested allowlist entries (IAM roles that changed functions like a pipeline: at least"
            f" {PIPELINE_MIN_CALLS} successful calls on {PIPELINE_MIN_DAYS}+ days through one AWS service"
            f" or web identity provider):"
        )
        for suggestion in suggestions:
            lines.append(
                f"  {_printable(suggestion['entry'])}    # {suggestion['calls']} calls on {suggestion['days']}"
                f" days: {', '.join(suggestion['actions'])}"
            )
        lines.append("Check each with the role's owner before adding it: an allowlisted role is a blind spot.")
    else:
        lines.append(
            "No principal acted like a pipeline through an AWS service or a web identity: no allowlist"
            " entry to suggest (calls made directly with a role's credentials are never suggested)."
        )
    if judgement.errors:
        lines += ["", f"Could not judge ({len(judgement.errors):,}):"]
        lines += [
            f"  {_printable(error['source'])}"
            + (f" record {error['record']}" if "record" in error else "")
            + f": {_printable(error['error'])}"
            for error in sorted_errors(judgement.errors)
        ]
    return "\n".join(lines)


def allowlist_override(suggestions: Sequence[dict[str, Any]]) -> str | None:
    """The suggested entries as a `sam deploy` argument, quoted for a POSIX shell: entries hold ``;`` (and a
    team's own may hold ``*``), which the shell would otherwise split or expand. Only entries that print as they
    are: a record's text that needs escaping for the terminal is not put on a command line."""
    entries = [
        suggestion["entry"] for suggestion in suggestions if _printable(suggestion["entry"]) == suggestion["entry"]
    ]
    if not entries:
        return None
    return "--parameter-overrides " + shlex.quote("AllowlistPatterns=" + ",".join(entries))


DAYS_PER_MONTH = 365.25 / 12


def history_days(since: datetime | None, until: datetime, findings: Sequence[dict[str, Any]]) -> float:
    """The length of the history read, in days: the time range asked for, else the span of the would-be findings'
    event times (at least a day)."""
    if since is not None:
        return max((until - since).total_seconds() / 86400, 1.0)
    times = sorted(str(finding.get("eventTime")) for finding in findings if finding.get("eventTime"))
    if len(times) < 2:
        return 1.0
    try:
        first, last = (datetime.fromisoformat(times[index].replace("Z", "+00:00")) for index in (0, -1))
    except ValueError:
        return 1.0
    return max((last - first).total_seconds() / 86400, 1.0)


def deploy_advice(run: Run, suggestions: Sequence[dict[str, Any]], days: float) -> str:
    """The suggested allowlist as a ready `sam deploy` line, and what this history would cost a month."""
    counts = run.judgement.counts
    invocations = sum(count for kind, count in counts.items() if kind not in ("ignored", "invalid"))
    findings = counts.get("finding", 0)
    scale = DAYS_PER_MONTH / days
    lines = [""]
    override = allowlist_override(suggestions)
    if override is not None:
        lines += [
            "To deploy with the suggested allowlist (replacing the default *DeployRole; add your own entries):",
            f"  sam deploy {override}",
            "",
        ]
    lines += [
        f"Estimated monthly cost of the detector on this history ({days:,.1f} days read: {invocations:,}"
        f" invocations, {findings:,} findings; scaled to a month, list prices of docs/cost.md):",
        format_cost(monthly_cost(Usage(writes=invocations * scale, findings=findings * scale))),
    ]
    return "\n".join(lines)


def _clipped(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def sorted_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors by source and record, whichever worker reported them first."""
    return sorted(errors, key=lambda error: (str(error["source"]), error.get("record", -1)))


def _columns(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[index]) for row in table) for index in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]


def _printable(value: Any) -> str:
    """A record's text made safe for a terminal: a caller-chosen session name must not carry escape sequences."""
    return printable(str(value))


# Command -------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    parser = argument_parser()
    arguments = parser.parse_args(argv)
    now = datetime.now(timezone.utc)
    until = arguments.until or now
    since = arguments.since
    regions = regions_of(arguments.regions)
    show_progress = not arguments.no_progress

    needs_aws = not arguments.path or arguments.import_findings
    if needs_aws and session is None:
        import boto3

        session = boto3.session.Session()

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        importer, detector = security_hub_importer(session) if arguments.import_findings else (None, None)
        config = JudgeConfig(
            allowlist=arguments.allowlist,
            trusted_layer_accounts=arguments.trusted_layer_accounts,
            behaviour_severities=arguments.behaviour_severities,
            allowlist_hides_public=arguments.allowlist_hides_public,
            since=iso(since) if since else None,
            until=iso(until) if arguments.until else None,
            detector=detector,
        )
        judge = Judge(config)
    except (ValueError, BotoCoreError, ClientError) as error:
        print(f"backtest: error: {error}", file=sys.stderr)
        return 2

    def on_judgement(judgement: Judgement) -> None:
        if importer is not None:
            importer.add(judgement.built)

    started = time.monotonic()
    try:
        if arguments.path:
            if not arguments.path.exists():
                print(f"backtest: error: {arguments.path} does not exist", file=sys.stderr)
                return 2
            run = judge_local(arguments.path, config, max(1, arguments.workers), show_progress, on_judgement)
        elif arguments.s3:
            run = judge_s3(
                session,
                arguments.s3,
                since,
                until,
                regions,
                judge,
                max(1, arguments.workers),
                show_progress,
                on_judgement,
            )
        elif arguments.athena:
            client = session.client("athena")
            query = athena_prefilter_query(arguments.table, since, until, regions, arguments.athena_where)
            if show_progress:
                print(f"[backtest] Athena query:\n{query}", file=sys.stderr, flush=True)
            execution = run_athena_query(
                client, query, arguments.database, arguments.workgroup, arguments.output_location
            )
            run = judge_pages(athena_pages(client, execution), judge, "pages", show_progress, on_judgement)
        else:
            since = since or parse_since("90d", now)
            pages = lookup_pages(session, regions or [session.region_name], since, until)
            run = judge_pages(pages, judge, "pages", show_progress, on_judgement)
        if importer is not None:
            importer.flush()
    except (BotoCoreError, ClientError, RuntimeError, ValueError) as error:
        print(f"backtest: error: {error}", file=sys.stderr)
        return 2

    suggestions = suggested_entries(run.judgement.findings)
    if arguments.json:
        print(report_json(run, suggestions))
    else:
        print(report_text(run, suggestions, arguments.allowlist, time.monotonic() - started))
        print(deploy_advice(run, suggestions, history_days(since, until, run.judgement.findings)))
    if importer is not None:
        print(f"backtest: imported {importer.sent:,} findings into Security Hub.", file=sys.stderr)
    return 1 if run.judgement.errors else 0


if __name__ == "__main__":
    sys.exit(main())
