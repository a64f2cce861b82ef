"""Judge CloudTrail records with the detector's own rule, exactly as the deployed function would.

Everything that decides is imported from functions/detector: ``cloudtrail.unwrap`` refuses what the handler
refuses, ``rule.evaluate`` gives the verdict, ``finding.finding_id`` the Id and ``finding.build_finding`` the
finding. This module only counts, and reads log files fast enough to replay months of a trail.

Verdicts per record:

* not a JSON object: ``invalid``, and named in the errors;
* another service than Lambda: ``ignored`` without asking the rule, because the function never receives such
  a record (its event rule only delivers ``source: aws.lambda``) and the rule would say ``ignored`` anyway;
* a Lambda record the handler's ``unwrap`` refuses (no eventID, eventTime, ...): ``invalid``, named in the errors;
* every other record: whatever ``rule.evaluate`` says, counted by the verdict's kind.
"""

from __future__ import annotations

import gc
import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

# The function's own modules, by the top-level names they have in Lambda (lambda_crud_detector/__init__.py puts
# their directory on sys.path).
from cloudtrail import InvalidEventError, unwrap
from finding import DetectorAccount, build_finding, finding_id, fold_id
from flood import FloodFolder
from grading import SEVERITIES as SEVERITIES  # re-exported for the reports
from rule import LAMBDA_EVENT_SOURCE, RuleSettings, Verdict, evaluate

REQUIRED_KINDS = ("finding", "allowlisted", "ignored", "invalid")
"""Always present in the counts, even at zero; any other verdict kind the rule gives is added as it comes."""

DIRECT = "direct"
"""The channel of a call made with the principal's own credentials, not through an AWS service or web identity."""

# The envelope EventBridge puts around a CloudTrail record, so that the handler's own checks judge the record.
_ENVELOPE = {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.lambda"}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class JudgeConfig:
    """What a judge needs; plain values, so that worker processes can build their own judge from it."""

    allowlist: str | None = None
    """``ALLOWLIST_PATTERNS`` as the function reads it: None means the rule's default."""
    trusted_layer_accounts: str | None = None
    """``TRUSTED_LAYER_ACCOUNTS``: None means the rule's default (AWS's own layer publishers)."""
    behaviour_severities: str | None = None
    """``BEHAVIOUR_SEVERITIES``: None lowers nothing."""
    allowlist_hides_public: str | None = None
    """``ALLOWLIST_HIDES_PUBLIC``: None means the rule's default (false)."""
    since: str | None = None
    """Only records whose eventTime is at or after this (``YYYY-MM-DDTHH:MM:SSZ``); None: no bound."""
    until: str | None = None
    """Only records whose eventTime is before this; None: no bound."""
    detector: DetectorAccount | None = None
    """When set, each would-be finding is also built, as the function would import it for this account."""


@dataclass
class Judgement:
    """What was decided about some records; judgements of different files or pages add up."""

    counts: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(REQUIRED_KINDS, 0)))
    severities: Counter[str] = field(default_factory=Counter)
    """Would-be findings by severity."""
    behaviours: Counter[str] = field(default_factory=Counter)
    """Would-be findings by behaviour."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    """One summary per would-be finding (see ``finding_summary``)."""
    built: list[dict[str, Any]] = field(default_factory=list)
    """The ASFF findings themselves, only when the config names a detector account."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    outside_window: int = 0
    """Records left out because their eventTime is outside --since/--until."""
    folded: int = 0
    """Findings that the detector would fold (flood.py): their summary's id is their fold's."""

    def add(self, other: Judgement) -> None:
        self.counts.update(other.counts)
        self.severities.update(other.severities)
        self.behaviours.update(other.behaviours)
        self.findings += other.findings
        self.built += other.built
        self.errors += other.errors
        self.records += other.records
        self.outside_window += other.outside_window
        self.folded += other.folded


class Judge:
    """The live rule with the function's settings, applied record by record."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        # Raises ValueError on a setting the function itself would refuse at cold start.
        self.settings = RuleSettings.from_config(
            config.allowlist,
            trusted_layer_accounts=config.trusted_layer_accounts,
            behaviour_severities=config.behaviour_severities,
            allowlist_hides_public=config.allowlist_hides_public,
        )
        # Folds as one execution environment would, on the same eventTime windows (each worker process on its own).
        self.folder = FloodFolder("backtest")

    def records(self, records: Iterable[Any], source: str) -> Judgement:
        """Judge each record; ``source`` names where they came from, for the errors."""
        judgement = Judgement()
        for index, record in enumerate(records):
            judgement.records += 1
            self._record(record, index, source, judgement)
        return judgement

    def log_file(self, data: bytes, source: str) -> Judgement:
        """Judge a CloudTrail log file (``{"Records": [...]}``, gzip-compressed or not); a file that cannot be
        read is reported in the errors, never raised.

        A first pass reads only each record's eventSource and eventTime (msgspec skips the rest, in C); only the
        records that may be Lambda calls in the time range are then built whole and judged. Every other record is
        counted exactly as judging it whole would count it, so the counts are those of a record-by-record judgement.
        """
        try:
            if data[:2] == _GZIP_MAGIC:
                data = gzip.decompress(data)
            with _no_cycle_collection():
                sightings = _SIGHTINGS.decode(data).Records
        except (OSError, EOFError, zlib.error, RecursionError) as error:
            # RecursionError: JSON nested deeper than any parser here follows; named, never a crash of the run.
            return Judgement(errors=[file_error(source, f"unreadable: {_describe(error)}")])
        except msgspec.MsgspecError:
            # Not a log file, a record that is not an object, or JSON that only the standard library reads.
            return self._whole_file(data, source)
        judgement = Judgement(records=len(sightings))
        since, until = self.config.since, self.config.until
        candidates = []
        for index, sighting in enumerate(sightings):
            event_time = sighting.eventTime
            if (
                (since is not None or until is not None)
                and isinstance(event_time, str)
                and ((since is not None and event_time < since) or (until is not None and event_time >= until))
            ):
                judgement.outside_window += 1
            elif sighting.eventSource != LAMBDA_EVENT_SOURCE:
                judgement.counts["ignored"] += 1
            else:
                candidates.append(index)
        if not candidates:
            return judgement
        try:
            raw_records = _RAW_LOG_FILE.decode(data).Records
            for index in candidates:
                self._record(parse_json(raw_records[index]), index, source, judgement)
        except Exception as error:  # a bug on one odd record must not stop the judgement of the other files
            return Judgement(errors=[file_error(source, f"could not be judged: {_describe(error)}")])
        return judgement

    def _whole_file(self, data: bytes, source: str) -> Judgement:
        try:
            with _no_cycle_collection():
                document = parse_json(data)
        except (ValueError, RecursionError) as error:
            return Judgement(errors=[file_error(source, f"unreadable: {_describe(error)}")])
        records = document.get("Records") if isinstance(document, dict) else None
        if not isinstance(records, list):
            return Judgement(
                errors=[file_error(source, "not a CloudTrail log file: expected an object with a Records list")]
            )
        return self.records(records, source)

    def _record(self, record: Any, index: int, source: str, judgement: Judgement) -> None:
        counts, since, until = judgement.counts, self.config.since, self.config.until
        if type(record) is not dict:
            counts["invalid"] += 1
            judgement.errors.append(record_error(source, index, f"record is not an object but {_kind(record)}"))
            return
        if since is not None or until is not None:
            event_time = record.get("eventTime")
            if isinstance(event_time, str) and (
                (since is not None and event_time < since) or (until is not None and event_time >= until)
            ):
                judgement.outside_window += 1
                return
        if record.get("eventSource") != LAMBDA_EVENT_SOURCE:
            counts["ignored"] += 1
            return
        self._lambda_record(record, index, source, judgement)

    def _lambda_record(self, record: dict[str, Any], index: int, source: str, judgement: Judgement) -> None:
        try:
            # As EventBridge delivers a record: on the bus of the account that received it.
            event = unwrap({**_ENVELOPE, "account": record.get("recipientAccountId"), "detail": record})
        except InvalidEventError as error:
            judgement.counts["invalid"] += 1
            judgement.errors.append(record_error(source, index, str(error)))
            return
        verdict = evaluate(record, self.settings)
        judgement.counts[verdict.kind] += 1
        if verdict.kind != "finding":
            return
        judgement.severities[str(verdict.severity)] += 1
        judgement.behaviours[str(verdict.behaviour)] += 1
        summary = finding_summary(record, verdict, source)
        # An import (--import) sends every finding on its own, paced by the importer, so that none waits for a fold.
        fold = self.folder.admit(event, verdict) if self.config.detector is None else None
        if fold is not None:
            judgement.folded += 1
            summary["id"] = fold_id(fold)
        judgement.findings.append(summary)
        if self.config.detector is not None:
            judgement.built.append(build_finding(event, verdict, self.config.detector))


class _Sighting(msgspec.Struct):
    """What tells whether a record may concern the rule; msgspec skips every other field without building it."""

    eventSource: Any = None
    eventTime: Any = None


class _SightedLogFile(msgspec.Struct):
    Records: list[_Sighting]


class _RawLogFile(msgspec.Struct):
    Records: list[msgspec.Raw]


_SIGHTINGS = msgspec.json.Decoder(_SightedLogFile)
_RAW_LOG_FILE = msgspec.json.Decoder(_RawLogFile)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector would otherwise walk the many fresh objects a log file parses into, several
    times over, for nothing: parsed JSON holds no cycles. That is about a third of the parse time."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def parse_json(data: bytes | str) -> Any:
    """msgspec for speed; the standard library for what msgspec refuses but CloudTrail can still write (a lone
    surrogate escape in a caller-chosen string, for one), so that no caller can make a whole file unreadable by
    putting such a value in one request."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return json.loads(data)


def finding_summary(record: Mapping[str, Any], verdict: Verdict, source: str) -> dict[str, Any]:
    """What backtest reports of a would-be finding: its Id, the call, what it did and how bad, who and through
    what, where and when, and what changed."""
    identity = record.get("userIdentity")
    identity = identity if isinstance(identity, Mapping) else {}
    details = verdict.grade.details if verdict.grade is not None else ()
    return {
        "id": finding_id(record),
        "eventID": _text(record.get("eventID")),
        "eventTime": _text(record.get("eventTime")),
        "eventName": _text(record.get("eventName")),
        "action": verdict.action,
        "behaviour": verdict.behaviour,
        "severity": verdict.severity,
        "callerKind": verdict.caller_kind,
        "principal": verdict.principal_arn,
        "caller": _text(identity.get("arn")) or _text(identity.get("invokedBy")) or _text(identity.get("type")),
        "identityType": _text(identity.get("type")),
        "channel": channel(identity),
        "account": _text(record.get("recipientAccountId")),
        "region": _text(record.get("awsRegion")),
        "errorCode": _text(record.get("errorCode")),
        "changed": "; ".join(f"{label} {value}" for label, value in details),
        "reason": verdict.reason,
        "source": source,
    }


def channel(identity: Mapping[str, Any]) -> str:
    """How the principal's call reached Lambda, written as an allowlist condition: through an AWS service
    (``invokedBy``, written by AWS, never by the caller), through a web identity provider, or directly."""
    invoked_by = _text(identity.get("invokedBy"))
    if invoked_by:
        return f"invokedBy={invoked_by}"
    context = identity.get("sessionContext")
    federation = context.get("webIdFederationData") if isinstance(context, Mapping) else None
    provider = _text(federation.get("federatedProvider")) if isinstance(federation, Mapping) else None
    if provider:
        return f"webIdentityProvider={provider}"
    return DIRECT


def file_error(source: str, message: str) -> dict[str, Any]:
    return {"source": source, "error": message}


def record_error(source: str, index: int, message: str) -> dict[str, Any]:
    return {"source": source, "record": index, "error": message}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


# Worker processes: each builds its judge once, then judges whole files by path. ------------------------------

_worker_judge: Judge | None = None


def start_worker(config: JudgeConfig) -> None:
    global _worker_judge
    _worker_judge = Judge(config)


def judge_path(path: str) -> Judgement:
    """Judge one local log file in a worker started with ``start_worker``."""
    if _worker_judge is None:
        raise RuntimeError("start_worker was not called in this process")
    return judge_local_file(_worker_judge, Path(path))


def judge_local_file(judge: Judge, path: Path) -> Judgement:
    try:
        data = path.read_bytes()
    except OSError as error:
        return Judgement(errors=[file_error(str(path), f"unreadable: {_describe(error)}")])
    return judge.log_file(data, str(path))
