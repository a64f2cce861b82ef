"""Lambda entry point: EventBridge event in, at most one Security Hub finding out.

Thin wiring only. What counts as a finding is in ``rule``, what a finding looks like is in ``finding``, and how
it reaches Security Hub is in ``publisher``. Clients and settings live at module level so a warm container
reuses them.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cloudtrail import CloudTrailEvent, InvalidEventError, implausible_event_time, unwrap
from finding import DetectorAccount, build_finding, fold_finding, fold_id, implausible_time_finding
from findings_account import FindingsAccountSettings, FindingsDestination, findings_destination
from flood import FloodFolder
from publisher import (
    AssumedRolePublishers,
    FindingPublisher,
    FindingsRoleError,
    client_config,
    endpoint_variables,
    interception_variables,
    runs_locally,
    security_hub_client,
)
from rule import DetectorIdentity, FunctionRef, RuleSettings, SettingsError, Verdict, evaluate

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "lambda-crud-detector")
# ASCII-only JSON: a record may carry an unpaired surrogate, which a UTF-8 stdout cannot write; escaped, the
# verdict line is never lost.
logger = Logger(service=SERVICE_NAME, json_serializer=partial(json.dumps, separators=(",", ":"), default=str))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LambdaCrudDetector"), service=SERVICE_NAME)


def _load_settings() -> RuleSettings:
    """The rule's settings, logged as understood. A malformed setting stops the cold start: Lambda reports an init
    error (the Errors alarm), and the events are retried, then kept in the failure queue, instead of being judged
    by an allowlist that means something other than what was written."""
    try:
        loaded = RuleSettings.from_environment(os.environ)
    except SettingsError as error:
        logger.error(f"Refusing to start: {error}")
        raise
    logger.info("Rule settings", **loaded.as_logged())
    return loaded


def _member_publishers(local: bool) -> AssumedRolePublishers | None:
    """FINDINGS_ACCOUNT=source: a finding about another account's change is imported there, through a role in it."""
    if findings_settings.mode != "source":
        return None
    return AssumedRolePublishers(
        boto3.client("sts", config=client_config(local)).assume_role,
        partial(boto3.client, "securityhub", config=client_config(local)),
    )


settings = _load_settings()
# Empty when the deployment has no canary: then no record is a heartbeat. Settings, so a change may rewrite them,
# but a change to this function is itself always a finding, and a heartbeat can only ever stand for a description.
CANARY_FUNCTION_NAME = os.environ.get("CANARY_FUNCTION_NAME") or None
CANARY_ROLE_ARN = os.environ.get("CANARY_ROLE_ARN") or None
findings_settings = FindingsAccountSettings.from_config(
    os.environ.get("FINDINGS_ACCOUNT"), os.environ.get("FINDINGS_ROLE_NAME")
)
# Deaf to every configured endpoint; only the first invocation can tell a local run, which may use one (see below).
publisher = FindingPublisher(security_hub_client(local=False))
# Folded findings (flood.py) are imported after an invocation's own work, with one retry: a throttled fold waits for
# a later invocation rather than hold this one, so that no finding, tamper finding or heartbeat queues behind a flood.
FOLD_IMPORT_ATTEMPTS = 2
fold_publisher = FindingPublisher(security_hub_client(local=False, max_attempts=FOLD_IMPORT_ATTEMPTS))
folder = FloodFolder()
member_publishers = _member_publishers(local=False)
_cold_start = True
# Set on the first invocation of a deployed function whose configuration would let its traffic be intercepted.
_interception: list[str] = []

_METRIC_BY_VERDICT = {
    "finding": "Findings",
    "allowlisted": "Allowlisted",
    "ignored": "Ignored",
    "heartbeat": "CanaryHeartbeat",
}


# Powertools in its documented order: logger outermost, then metrics. There is no Tracer: the X-Ray SDK it is
# built on would add 200-300 ms to every cold start and is near its end of support. Lambda's own active
# tracing (the EnableTracing parameter) records each invocation without it.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Judge one CloudTrail record and, when it is a finding, store it in Security Hub."""
    if _cold_start:
        folder.environment = context.log_stream_name  # one per execution environment: its folds are its own
        _choose_security_hub_endpoint(context)
    if _interception:
        # Every event fails loudly (Errors alarm, retries, then the failure queue) rather than be sent where it
        # could be read and dropped.
        message = f"Refusing to judge events: {', '.join(_interception)} set on a deployed detector"
        logger.error(message, interceptionVariables=_interception)
        raise ConfigurationTamperedError(message)
    try:
        cloudtrail_event = unwrap(event)
    except InvalidEventError as error:
        # Raising sends the event to the failure destination, where it can be inspected and replayed.
        logger.error(f"Invalid event: {error}")
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise

    record = cloudtrail_event.record
    detector = DetectorAccount.from_function_arn(context.invoked_function_arn, os.environ["AWS_REGION"])
    now = clock()
    if problem := implausible_event_time(cloudtrail_event, now):
        return _report_implausible_time(cloudtrail_event, problem, detector, now)
    verdict = evaluate(record, settings, _detector_identity(detector))
    logger.info(
        f"Verdict: {verdict.kind}",
        verdict=verdict.kind,
        eventID=record.get("eventID"),
        eventName=record.get("eventName"),
        action=verdict.action,
        behaviour=verdict.behaviour,
        severity=verdict.severity,
        callerKind=verdict.caller_kind,
        principal=verdict.principal_arn,
        reason=verdict.reason,
    )
    fold = folder.admit(cloudtrail_event, verdict)
    if fold is not None:
        finding_id: str | None = fold_id(fold)
        logger.info("Failed call folded", eventID=record.get("eventID"), findingId=finding_id, folded=fold.count)
        metrics.add_metric(name="FailedCallsFolded", unit=MetricUnit.Count, value=1)
    else:
        finding_id = _store_finding(cloudtrail_event, verdict, detector) if verdict.kind == "finding" else None
    metrics.add_metric(name=_METRIC_BY_VERDICT[verdict.kind], unit=MetricUnit.Count, value=1)
    _import_folds(detector, now)
    return {
        "verdict": verdict.kind,
        "findingId": finding_id,
        "behaviour": verdict.behaviour,
        "severity": verdict.severity,
        "reason": verdict.reason,
    }


def clock() -> datetime:
    """The detector's clock (a module attribute, so that the flood benchmark can run on simulated time)."""
    return datetime.now(timezone.utc)


def _report_implausible_time(
    cloudtrail_event: CloudTrailEvent, problem: str, detector: DetectorAccount, now: datetime
) -> dict[str, Any]:
    """Report, never judge, a record CloudTrail cannot have written: a tamper finding stamped ``now``."""
    record = cloudtrail_event.record
    logger.error(f"Refusing a record CloudTrail cannot have written: {problem}", eventID=record.get("eventID"))
    metrics.add_metric(name="ImplausibleEventTime", unit=MetricUnit.Count, value=1)
    claimed = evaluate(record, settings, _detector_identity(detector))
    verdict = replace(claimed, kind="finding", reason=f"{problem}; the record claims: {claimed.reason}")
    finding = implausible_time_finding(cloudtrail_event, verdict, detector, now, problem)
    publisher.publish([finding])  # a failure raises: retried, then kept by the failure destination
    return {"verdict": "implausible", "findingId": finding["Id"], "reason": problem}


def _import_folds(detector: DetectorAccount, now: datetime) -> None:
    """Import the folded findings that are due, into the detector's own account; a failure is retried later."""
    due = folder.due(now)
    for start in range(0, len(due), 100):  # BatchImportFindings takes at most 100 findings
        batch = [(fold, fold.next_updated_at(), fold.count) for fold in due[start : start + 100]]
        try:
            fold_publisher.publish([fold_finding(fold, detector, updated_at) for fold, updated_at, _ in batch])
        except Exception:
            logger.exception("Could not import folded findings; a later invocation retries", folds=len(batch))
            metrics.add_metric(name="FoldImportFailures", unit=MetricUnit.Count, value=1)
            return
        for fold, updated_at, count in batch:
            fold.imported(now, updated_at, count)


class ConfigurationTamperedError(RuntimeError):
    """The deployed function's configuration would let its findings be intercepted; it judges nothing."""


def _detector_identity(detector: DetectorAccount) -> DetectorIdentity:
    """Who this function is, from what the Lambda runtime says (its ARN, and AWS_LAMBDA_FUNCTION_NAME and AWS_REGION,
    which are reserved), never from a setting that a change to the function could rewrite."""
    function = FunctionRef(detector.account_id, detector.region, os.environ["AWS_LAMBDA_FUNCTION_NAME"])
    return DetectorIdentity(function, CANARY_FUNCTION_NAME, CANARY_ROLE_ARN)


def _choose_security_hub_endpoint(context: LambdaContext) -> None:
    """On the first invocation: honour a configured endpoint if, and only if, the function runs locally."""
    global publisher, fold_publisher, member_publishers, _cold_start, _interception
    _cold_start = False
    if runs_locally(context.invoked_function_arn, os.environ):
        publisher = FindingPublisher(security_hub_client(local=True))
        fold_publisher = FindingPublisher(security_hub_client(local=True, max_attempts=FOLD_IMPORT_ATTEMPTS))
        member_publishers = _member_publishers(local=True)
        return
    if ignored := endpoint_variables(os.environ):
        logger.warning(
            "Security Hub endpoint variables ignored: a deployed detector sends findings to the real endpoint only",
            ignoredVariables=ignored,
        )
    _interception = interception_variables(os.environ)


def _store_finding(cloudtrail_event: CloudTrailEvent, verdict: Verdict, detector: DetectorAccount) -> str:
    destination = findings_destination(cloudtrail_event.record, detector, findings_settings)
    finding = build_finding(cloudtrail_event, verdict, destination.account, account_reason=destination.reason)
    if destination.reason:
        logger.warning(f"Finding kept in the detector's account: {destination.reason}", findingId=finding["Id"])
    try:
        _publisher_for(destination).publish([finding])
    except FindingsRoleError as error:
        logger.exception(
            "Could not assume the findings role; the event will be retried",
            findingId=finding["Id"],
            findingsAccount=destination.account.account_id,
            roleArn=error.role_arn,
        )
        metrics.add_metric(name="FindingsRoleFailures", unit=MetricUnit.Count, value=1)
        raise
    except Exception:
        logger.exception("Could not store finding; the event will be retried", findingId=finding["Id"])
        metrics.add_metric(name="PublishFailures", unit=MetricUnit.Count, value=1)
        raise
    return finding["Id"]


def _publisher_for(destination: FindingsDestination) -> FindingPublisher:
    if destination.role_arn is None:
        return publisher
    # Only source mode names a role, and source mode creates member_publishers.
    assert member_publishers is not None
    return member_publishers.publisher_for(destination.role_arn)
