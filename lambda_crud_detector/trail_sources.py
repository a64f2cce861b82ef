"""Where backtest reads CloudTrail history from: local files, a trail's S3 objects, LookupEvents and Athena.

Each source hands over one file, object or page at a time, so memory stays bounded by one of them however
long the history. Nothing here judges: records go to lambda_crud_detector/trail_judge.py, the rule stays in one place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambda_crud_detector.trail_judge import file_error, parse_json

LOG_SUFFIXES = (".json", ".json.gz")
DIGEST_MARKER = "CloudTrail-Digest"
"""Digest files (integrity hashes, no records) sit beside the logs in a trail's bucket and copies of it."""


@dataclass
class Page:
    """Records read in one go (a LookupEvents page, an Athena result page), and what could not be read."""

    name: str
    records: list[Any]
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: float | None = None
    """The share of the whole source read once this page is judged, from 0 to 1, when it can be told."""


def iso(moment: datetime) -> str:
    """A moment as CloudTrail writes eventTime (``YYYY-MM-DDTHH:MM:SSZ``), so that times compare as strings."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RateLimiter:
    """At most ``per_second`` calls per second: ``wait()`` before each call."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / per_second
        self._clock, self._sleep, self._next = clock, sleep, 0.0

    def wait(self) -> None:
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


# Local files ---------------------------------------------------------------------------------------------------


def local_log_files(root: Path) -> tuple[list[Path], list[Path]]:
    """The log files under ``root`` (or ``root`` itself), in any folder layout, sorted; and the digest files
    left out."""
    candidates = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    logs = [path for path in candidates if path.name.endswith(LOG_SUFFIXES)]
    digests = [path for path in logs if DIGEST_MARKER in path.as_posix()]
    return [path for path in logs if path not in digests], digests


# S3, in the layout CloudTrail writes ---------------------------------------------------------------------------

_ORGANIZATION = re.compile(r"o-[a-z0-9]{10,32}")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as (bucket, prefix)."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValueError(f"{url!r} is not an s3://BUCKET[/PREFIX] URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix


def days(since: datetime, until: datetime) -> list[date]:
    """Every UTC day from ``since`` to ``until``, and the day after, whose folder may hold the last records
    (CloudTrail delivers a file some minutes after its records, into the folder of the delivery day)."""
    first, last = since.astimezone(timezone.utc).date(), until.astimezone(timezone.utc).date() + timedelta(days=1)
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def trail_prefixes(
    client: Any,
    bucket: str,
    prefix: str,
    since: datetime | None,
    until: datetime,
    regions: Sequence[str] | None,
) -> list[str]:
    """The key prefixes holding the trail's log files, down to one per day when ``since`` is given.

    ``prefix`` may stop anywhere in ``[PREFIX/]AWSLogs/[o-ORG/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/``; the levels
    below it are discovered by listing, and only the ``CloudTrail`` folders are read (not digests or insights).
    """
    base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    if "AWSLogs/" not in base:
        base += "AWSLogs/"
    levels = [part for part in base.split("AWSLogs/", 1)[1].split("/") if part]
    if levels and _ORGANIZATION.fullmatch(levels[0]):
        levels = levels[1:]
    # levels is now [], [ACCOUNT], [ACCOUNT, CloudTrail], [ACCOUNT, CloudTrail, REGION] or deeper.
    if len(levels) > 3:
        return [base]
    if len(levels) == 3:
        region_prefixes = [base]
    elif len(levels) == 2:
        region_prefixes = _children(client, bucket, base)
    else:
        accounts = [base] if len(levels) == 1 else _accounts(client, bucket, base)
        region_prefixes = [
            region for account in accounts for region in _children(client, bucket, f"{account}CloudTrail/")
        ]
    region_prefixes = [
        item
        for item in region_prefixes
        if _REGION.fullmatch(item.rstrip("/").rsplit("/", 1)[-1])
        and (not regions or item.rstrip("/").rsplit("/", 1)[-1] in regions)
    ]
    if since is None:
        return region_prefixes
    return [f"{region}{day:%Y/%m/%d}/" for region in region_prefixes for day in days(since, until)]


def _children(client: Any, bucket: str, prefix: str) -> list[str]:
    folders: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    return folders


def _accounts(client: Any, bucket: str, awslogs: str) -> list[str]:
    """Account folders under AWSLogs/, looking one level further into organisation folders."""
    accounts = []
    for folder in _children(client, bucket, awslogs):
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if _ACCOUNT.fullmatch(name):
            accounts.append(folder)
        elif _ORGANIZATION.fullmatch(name):
            accounts += [
                item
                for item in _children(client, bucket, folder)
                if _ACCOUNT.fullmatch(item.rstrip("/").rsplit("/", 1)[-1])
            ]
    return accounts


def s3_log_keys(client: Any, bucket: str, prefixes: Iterable[str], workers: int = 1) -> list[str]:
    """The log files' keys under every prefix, listed by ``workers`` threads (an organisation's trail has one
    prefix per account, Region and day), sorted."""

    def listed(prefix: str) -> list[str]:
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [
                item["Key"]
                for item in page.get("Contents", [])
                if item["Key"].endswith(LOG_SUFFIXES) and DIGEST_MARKER not in item["Key"]
            ]
        return keys

    return sorted(key for keys in bounded_map(listed, prefixes, workers) for key in keys)


def s3_objects(
    client: Any, bucket: str, keys: Sequence[str], workers: int
) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(name, content, error) for each key, downloaded by ``workers`` threads with at most twice as many
    objects in flight, so memory holds a bounded number of objects, never the trail."""

    def fetch(key: str) -> tuple[str, bytes | None, str | None]:
        name = f"s3://{bucket}/{key}"
        try:
            return name, client.get_object(Bucket=bucket, Key=key)["Body"].read(), None
        except (BotoCoreError, ClientError, OSError) as error:
            return name, None, f"could not be downloaded: {error}"

    yield from bounded_map(fetch, keys, workers)


def bounded_map(
    function: Callable[[Any], Any], items: Iterable[Any], workers: int, executor: Executor | None = None
) -> Iterator[Any]:
    """``function`` over ``items`` in ``executor`` (by default ``workers`` threads), results as they complete,
    with at most ``2 * workers`` pending: memory holds a few results, never all of them."""
    with executor or ThreadPoolExecutor(max_workers=workers) as pool:
        pending: set[Future[Any]] = set()
        for item in items:
            pending.add(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in finished)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in finished)


# LookupEvents --------------------------------------------------------------------------------------------------

LOOKUP_RATE_PER_SECOND = 2.0
"""LookupEvents' quota: 2 requests per second per account and Region."""
LOOKUP_PAGE_SIZE = 50
"""The most events LookupEvents returns per page."""
MAX_THROTTLED_RETRIES = 8


def lookup_event_pages(
    client: Any,
    region: str,
    since: datetime,
    until: datetime,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Page]:
    """Every Lambda event LookupEvents holds in ``region`` between ``since`` and ``until``, a page at a time.

    Calls are spaced to the quota; a ThrottlingException that gets past botocore's own retries is waited out
    with exponential backoff, and the same page is asked for again, so nothing is skipped.
    """
    limiter = limiter or RateLimiter(LOOKUP_RATE_PER_SECOND)
    request: dict[str, Any] = {
        "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "lambda.amazonaws.com"}],
        "StartTime": since,
        "EndTime": until,
        "MaxResults": LOOKUP_PAGE_SIZE,
    }
    span = max((until - since).total_seconds(), 1.0)
    number = 0
    while True:
        response = _lookup_with_backoff(client, request, limiter, sleep)
        number += 1
        page = Page(f"LookupEvents {region} page {number}", [])
        oldest: datetime | None = None
        for event in response.get("Events", []):
            try:
                page.records.append(parse_json(event["CloudTrailEvent"]))
            except (KeyError, TypeError, ValueError) as error:
                page.errors.append(file_error(f"{page.name} event {event.get('EventId')}", f"unreadable: {error}"))
            event_time = event.get("EventTime")
            if isinstance(event_time, datetime):
                oldest = event_time if oldest is None else min(oldest, event_time)
        if oldest is not None:  # events come newest first
            page.done = min(1.0, max(0.0, (until - oldest).total_seconds() / span))
        token = response.get("NextToken")
        if not token:
            page.done = 1.0
        yield page
        if not token:
            return
        request["NextToken"] = token


def _lookup_with_backoff(
    client: Any, request: Mapping[str, Any], limiter: RateLimiter, sleep: Callable[[float], None]
) -> dict[str, Any]:
    for attempt in range(MAX_THROTTLED_RETRIES + 1):
        limiter.wait()
        try:
            return client.lookup_events(**request)
        except ClientError as error:
            throttled = error.response.get("Error", {}).get("Code") in ("ThrottlingException", "Throttling")
            if not throttled or attempt == MAX_THROTTLED_RETRIES:
                raise
            sleep(min(30.0, 2.0**attempt))
    raise AssertionError("unreachable")


# Athena --------------------------------------------------------------------------------------------------------

# The CloudTrail table's columns (as the Athena documentation's DDL names them) that the rule and the finding read,
# with the name CloudTrail gives them in a record. Structs come back as JSON text (CAST ... AS JSON), so that no
# DDL variant's nested fields have to be named in the query.
ATHENA_COLUMNS: dict[str, str] = {
    "eventversion": "eventVersion",
    "useridentity": "userIdentity",
    "eventtime": "eventTime",
    "eventsource": "eventSource",
    "eventname": "eventName",
    "awsregion": "awsRegion",
    "sourceipaddress": "sourceIPAddress",
    "useragent": "userAgent",
    "errorcode": "errorCode",
    "errormessage": "errorMessage",
    "requestparameters": "requestParameters",
    "responseelements": "responseElements",
    "requestid": "requestID",
    "eventid": "eventID",
    "resources": "resources",
    "eventtype": "eventType",
    "readonly": "readOnly",
    "recipientaccountid": "recipientAccountId",
}
_STRUCT_COLUMNS = ("useridentity", "resources")
_JSON_STRING_COLUMNS = ("requestparameters", "responseelements")
# Athena lower-cases struct field names; these are the CloudTrail spellings of those the record may hold.
_FIELD_NAMES = {
    name.lower(): name
    for name in (
        "type",
        "principalId",
        "arn",
        "accountId",
        "invokedBy",
        "accessKeyId",
        "userName",
        "onBehalfOf",
        "userId",
        "identityStoreArn",
        "sessionContext",
        "attributes",
        "mfaAuthenticated",
        "creationDate",
        "sessionIssuer",
        "ec2RoleDelivery",
        "webIdFederationData",
        "federatedProvider",
        "sourceIdentity",
        "identityProvider",
        "credentialId",
    )
}


def athena_prefilter_query(
    table: str,
    since: datetime | None,
    until: datetime,
    regions: Sequence[str] | None,
    extra_where: str | None,
) -> str:
    """The query that makes Athena do the scanning: only Lambda calls that are not reads, in the time range.

    Every Lambda write is judged, so the query selects what the detector's event pattern delivers (readOnly false,
    or no readOnly); the rows still go through the rule, so the query may only ever select too much, never too
    little.
    """
    conditions = [
        "eventsource = 'lambda.amazonaws.com'",
        "(readonly IS NULL OR readonly <> 'true')",
        f"eventtime < '{iso(until)}'",
    ]
    if since is not None:
        conditions.append(f"eventtime >= '{iso(since)}'")
    if regions:
        for region in regions:
            if not _REGION.fullmatch(region):
                raise ValueError(f"not a Region: {region!r}")
        conditions.append("awsregion IN (" + ", ".join(f"'{region}'" for region in regions) + ")")
    if extra_where:
        conditions.append(f"({extra_where})")
    columns = [
        f"json_format(CAST({column} AS JSON)) AS {column}" if column in _STRUCT_COLUMNS else column
        for column in ATHENA_COLUMNS
    ]
    return f"SELECT {', '.join(columns)}\nFROM {table}\nWHERE " + "\n  AND ".join(conditions)


def record_from_athena_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    """The CloudTrail record an Athena row of the CloudTrail table stands for (NULL columns are left out)."""
    record: dict[str, Any] = {}
    for column, name in ATHENA_COLUMNS.items():
        value = row.get(column)
        if value is None:
            continue
        if column in _STRUCT_COLUMNS:
            parsed = parse_json(value)
            if isinstance(parsed, list) and column == "useridentity":
                raise ValueError("useridentity came back as a JSON array: run the query on Athena engine version 3")
            record[name] = _cloudtrail_names(parsed)
        elif column in _JSON_STRING_COLUMNS:
            try:
                record[name] = parse_json(value)
            except ValueError:
                record[name] = value
        elif column == "readonly":
            record[name] = value.lower() == "true"
        else:
            record[name] = value
    return record


def _cloudtrail_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {_FIELD_NAMES.get(key, key): _cloudtrail_names(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_cloudtrail_names(item) for item in value]
    return value


ATHENA_PAGE_SIZE = 1000
"""The most rows GetQueryResults returns per page."""


def run_athena_query(
    client: Any,
    query: str,
    database: str,
    workgroup: str | None,
    output: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Start the query and wait until it has succeeded; its execution id. Raises RuntimeError if it failed."""
    request: dict[str, Any] = {"QueryString": query, "QueryExecutionContext": {"Database": database}}
    if workgroup:
        request["WorkGroup"] = workgroup
    if output:
        request["ResultConfiguration"] = {"OutputLocation": output}
    execution_id = client.start_query_execution(**request)["QueryExecutionId"]
    delay = 0.5
    while True:
        status = client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            return execution_id
        if state in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"Athena query {execution_id} {state.lower()}: {status.get('StateChangeReason', '')}")
        sleep(delay)
        delay = min(delay * 2, 5.0)


def athena_pages(client: Any, execution_id: str) -> Iterator[Page]:
    """The query's rows as records, a result page at a time."""
    columns: list[str] | None = None
    request: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": ATHENA_PAGE_SIZE}
    number = 0
    while True:
        response = client.get_query_results(**request)
        number += 1
        result = response["ResultSet"]
        rows = [[cell.get("VarCharValue") for cell in row.get("Data", [])] for row in result.get("Rows", [])]
        if columns is None:
            columns = [info["Name"].lower() for info in result.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
            if rows and [str(value).lower() for value in rows[0]] == columns:
                rows = rows[1:]  # the first page starts with the header row
        page = Page(f"Athena {execution_id} page {number}", [])
        for index, values in enumerate(rows):
            try:
                page.records.append(record_from_athena_row(dict(zip(columns, values))))
            except ValueError as error:
                page.errors.append(file_error(f"{page.name} row {index}", f"unreadable: {error}"))
        token = response.get("NextToken")
        yield page
        if not token:
            return
        request["NextToken"] = token
