"""Lambda entry point: EventBridge event in, at most one Security Hub finding out.

Thin wiring only. What counts as a finding is in ``rule``, what a finding looks like is in ``finding``, and how
it reaches Security Hub is in ``publisher``. Clients and settings live at module level so a warm container
reuses them.
"""

from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cloudtrail import CloudTrailEvent, InvalidEventError, unwrap
from finding import DetectorAccount, build_finding
from findings_account import FindingsAccountSettings, FindingsDestination, findings_destination
from publisher import SECURITY_HUB_CLIENT_CONFIG, AssumedRolePublishers, FindingPublisher, FindingsRoleError
from rule import RuleSettings, SettingsError, Verdict, evaluate

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
        loaded = RuleSettings.from_config(os.environ.get("ALLOWLIST_PATTERNS"), os.environ.get("EXTRA_ACTIONS"))
    except SettingsError as error:
        logger.error(f"Refusing to start: {error}")
        raise
    logger.info(
        "Rule settings",
        allowlist=[entry.as_logged() for entry in loaded.allowlist],
        actions=sorted(loaded.actions),
    )
    return loaded


settings = _load_settings()
# AWS_ENDPOINT_URL_SECURITYHUB, when set and not empty, points this client at a local Security Hub.
publisher = FindingPublisher(boto3.client("securityhub", config=SECURITY_HUB_CLIENT_CONFIG))
# FINDINGS_ACCOUNT=source: a finding about another account's change is imported there, through a role in it.
findings_settings = FindingsAccountSettings.from_config(
    os.environ.get("FINDINGS_ACCOUNT"), os.environ.get("FINDINGS_ROLE_NAME")
)
member_publishers = (
    AssumedRolePublishers(
        boto3.client("sts", config=SECURITY_HUB_CLIENT_CONFIG).assume_role,
        partial(boto3.client, "securityhub", config=SECURITY_HUB_CLIENT_CONFIG),
    )
    if findings_settings.mode == "source"
    else None
)

_METRIC_BY_VERDICT = {"finding": "Findings", "allowlisted": "Allowlisted", "ignored": "Ignored"}


# Powertools in its documented order: logger outermost, then metrics. There is no Tracer: the X-Ray SDK it is
# built on would add 200-300 ms to every cold start and is near its end of support. Lambda's own active
# tracing (the EnableTracing parameter) records each invocation without it.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Judge one CloudTrail record and, when it is a finding, store it in Security Hub."""
    try:
        cloudtrail_event = unwrap(event)
    except InvalidEventError as error:
        # Raising sends the event to the failure destination, where it can be inspected and replayed.
        logger.error(f"Invalid event: {error}")
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise

    record = cloudtrail_event.record
    verdict = evaluate(record, settings)
    logger.info(
        f"Verdict: {verdict.kind}",
        verdict=verdict.kind,
        eventID=record.get("eventID"),
        eventName=record.get("eventName"),
        action=verdict.action,
        principal=verdict.principal_arn,
        reason=verdict.reason,
    )
    finding_id = _store_finding(cloudtrail_event, verdict, context) if verdict.kind == "finding" else None
    metrics.add_metric(name=_METRIC_BY_VERDICT[verdict.kind], unit=MetricUnit.Count, value=1)
    return {"verdict": verdict.kind, "findingId": finding_id, "reason": verdict.reason}


def _store_finding(cloudtrail_event: CloudTrailEvent, verdict: Verdict, context: LambdaContext) -> str:
    detector = DetectorAccount.from_function_arn(context.invoked_function_arn, os.environ["AWS_REGION"])
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
