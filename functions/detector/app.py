"""Lambda entry point: EventBridge event in, at most one Security Hub finding out.

Thin wiring only. What counts as a finding is in ``rule``, what a finding looks like is in ``finding``, and how
it reaches Security Hub is in ``publisher``. One ``Detector``, built at import, holds the settings and the flood
folds, so that a warm container reuses them. It creates its AWS clients when a finding first needs one: most events
are allowlisted or ignored and never need Security Hub, and importing boto3 and creating a client would cost more
than the whole rest of a cold start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property, partial
from typing import Any

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
    aws_client,
    endpoint_variables,
    interception_variables,
    runs_locally,
    security_hub_client,
)
from rule import DetectorIdentity, FunctionRef, RuleSettings, SettingsError, Verdict, evaluate

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME", "lambda-crud-detector")
# ASCII-only JSON: a record may carry an unpaired surrogate, which a UTF-8 stdout cannot write; escaped, the
# verdict line is never lost.
logger = Logger(service=SERVICE_NAME, json_serializer=partial(json.dumps, separators=(",", ":"), default=str))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "LambdaCrudDetector"), service=SERVICE_NAME)

# Folded findings (flood.py) are imported after an invocation's own work, with one retry: a throttled fold waits for
# a later invocation rather than hold this one, so that no finding, tamper finding or heartbeat queues behind a flood.
FOLD_IMPORT_ATTEMPTS = 2

_METRIC_BY_VERDICT = {
    "finding": "Findings",
    "allowlisted": "Allowlisted",
    "ignored": "Ignored",
    "heartbeat": "CanaryHeartbeat",
}


class ConfigurationTamperedError(RuntimeError):
    """The deployed function's configuration would let its findings be intercepted; it judges nothing."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Deployment:
    """Where the function runs, local or deployed, and its ways to Security Hub there, each created on first need."""

    def __init__(self, local: bool, interception: list[str]) -> None:
        self.local = local
        self.interception = interception
        """The variables that would let a deployed function's traffic be intercepted; it then judges nothing."""

    @classmethod
    def of(cls, context: LambdaContext, environ: Mapping[str, str]) -> Deployment:
        """Where the invoked function runs (``publisher.runs_locally``): only a local run honours a configured
        endpoint, and only a deployed one can be intercepted."""
        if runs_locally(context.invoked_function_arn, environ):
            return cls(local=True, interception=[])
        if ignored := endpoint_variables(environ):
            logger.warning(
                "Security Hub endpoint variables ignored: a deployed detector sends findings to the real endpoint only",
                ignoredVariables=ignored,
            )
        return cls(local=False, interception=interception_variables(environ))

    @cached_property
    def publisher(self) -> FindingPublisher:
        """Imports into the detector's own account."""
        return FindingPublisher(security_hub_client(self.local))

    @cached_property
    def fold_publisher(self) -> FindingPublisher:
        """Imports folded findings, with ``FOLD_IMPORT_ATTEMPTS`` attempts per call."""
        return FindingPublisher(security_hub_client(self.local, FOLD_IMPORT_ATTEMPTS))

    @cached_property
    def member_publishers(self) -> AssumedRolePublishers:
        """Imports into other accounts, through a role in each: created only when a finding names a role, which
        only FINDINGS_ACCOUNT=source does."""
        return AssumedRolePublishers(
            aws_client("sts", self.local).assume_role, partial(security_hub_client, self.local)
        )

    def publisher_for(self, destination: FindingsDestination) -> FindingPublisher:
        if destination.role_arn is None:
            return self.publisher
        return self.member_publishers.publisher_for(destination.role_arn)


class Detector:
    """The detector of one execution environment: its settings, read once when it is built, and where it runs,
    decided once, on its first invocation (only the invoked function's ARN can tell a local run from a deployed one).

    ``lambda_handler`` is its entry point. ``clock`` is its time, replaceable so that the flood benchmark can run on
    simulated time.
    """

    def __init__(self, environ: Mapping[str, str], clock: Callable[[], datetime] = utc_now) -> None:
        self._environ = environ
        self.settings = _load_settings(environ)
        self.findings_settings = FindingsAccountSettings.from_config(
            environ.get("FINDINGS_ACCOUNT"), environ.get("FINDINGS_ROLE_NAME")
        )
        # Empty when the deployment has no canary: then no record is a heartbeat. Settings, so a change may rewrite
        # them, but a change to this function is itself always a finding, and a heartbeat can only ever stand for a
        # description.
        self.canary_function_name = environ.get("CANARY_FUNCTION_NAME") or None
        self.canary_role_arn = environ.get("CANARY_ROLE_ARN") or None
        self.folder = FloodFolder()
        self.clock = clock
        self._deployment: Deployment | None = None
        self.lambda_handler = lambda_handler_for(self)

    def deployment(self, context: LambdaContext) -> Deployment:
        """Where the function runs, decided on the first invocation and kept for the environment's life."""
        if self._deployment is None:
            self.folder.environment = context.log_stream_name  # one per execution environment: its folds are its own
            self._deployment = Deployment.of(context, self._environ)
        return self._deployment

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Judge one CloudTrail record and, when it is a finding, store it in Security Hub."""
        deployment = self.deployment(context)
        if deployment.interception:
            # Every event fails loudly (Errors alarm, retries, then the failure queue) rather than be sent where it
            # could be read and dropped.
            message = f"Refusing to judge events: {', '.join(deployment.interception)} set on a deployed detector"
            logger.error(message, interceptionVariables=deployment.interception)
            raise ConfigurationTamperedError(message)
        try:
            cloudtrail_event = unwrap(event)
        except InvalidEventError as error:
            # Raising sends the event to the failure destination, where it can be inspected and replayed.
            logger.error(f"Invalid event: {error}")
            metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
            raise

        record = cloudtrail_event.record
        account = DetectorAccount.from_function_arn(context.invoked_function_arn, self._environ["AWS_REGION"])
        now = self.clock()
        if problem := implausible_event_time(cloudtrail_event, now):
            return self._report_implausible_time(cloudtrail_event, problem, account, deployment, now)
        verdict = evaluate(record, self.settings, self.identity(account))
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
        fold = self.folder.admit(cloudtrail_event, verdict)
        if fold is not None:
            finding_id: str | None = fold_id(fold)
            logger.info("Failed call folded", eventID=record.get("eventID"), findingId=finding_id, folded=fold.count)
            metrics.add_metric(name="FailedCallsFolded", unit=MetricUnit.Count, value=1)
        elif verdict.kind == "finding":
            finding_id = self._store_finding(cloudtrail_event, verdict, account, deployment)
        else:
            finding_id = None
        metrics.add_metric(name=_METRIC_BY_VERDICT[verdict.kind], unit=MetricUnit.Count, value=1)
        self.import_folds(account, deployment, now)
        return {
            "verdict": verdict.kind,
            "findingId": finding_id,
            "behaviour": verdict.behaviour,
            "severity": verdict.severity,
            "reason": verdict.reason,
        }

    def identity(self, account: DetectorAccount) -> DetectorIdentity:
        """Who this function is, from what the Lambda runtime says (its ARN, and AWS_LAMBDA_FUNCTION_NAME and
        AWS_REGION, which are reserved), never from a setting that a change to the function could rewrite."""
        function = FunctionRef(account.account_id, account.region, self._environ["AWS_LAMBDA_FUNCTION_NAME"])
        return DetectorIdentity(function, self.canary_function_name, self.canary_role_arn)

    def import_folds(self, account: DetectorAccount, deployment: Deployment, now: datetime) -> None:
        """Import the folded findings that are due, into the detector's own account; a failure is retried later."""
        due = self.folder.due(now)
        for start in range(0, len(due), 100):  # BatchImportFindings takes at most 100 findings
            batch = [(fold, fold.next_updated_at(), fold.count) for fold in due[start : start + 100]]
            try:
                deployment.fold_publisher.publish([fold_finding(fold, account, at) for fold, at, _ in batch])
            except Exception:
                logger.exception("Could not import folded findings; a later invocation retries", folds=len(batch))
                metrics.add_metric(name="FoldImportFailures", unit=MetricUnit.Count, value=1)
                return
            for fold, updated_at, count in batch:
                fold.imported(now, updated_at, count)

    def _report_implausible_time(
        self,
        cloudtrail_event: CloudTrailEvent,
        problem: str,
        account: DetectorAccount,
        deployment: Deployment,
        now: datetime,
    ) -> dict[str, Any]:
        """Report, never judge, a record CloudTrail cannot have written: a tamper finding stamped ``now``."""
        record = cloudtrail_event.record
        logger.error(f"Refusing a record CloudTrail cannot have written: {problem}", eventID=record.get("eventID"))
        metrics.add_metric(name="ImplausibleEventTime", unit=MetricUnit.Count, value=1)
        claimed = evaluate(record, self.settings, self.identity(account))
        verdict = replace(claimed, kind="finding", reason=f"{problem}; the record claims: {claimed.reason}")
        finding = implausible_time_finding(cloudtrail_event, verdict, account, now, problem)
        deployment.publisher.publish([finding])  # a failure raises: retried, then kept by the failure destination
        return {"verdict": "implausible", "findingId": finding["Id"], "reason": problem}

    def _store_finding(
        self, cloudtrail_event: CloudTrailEvent, verdict: Verdict, account: DetectorAccount, deployment: Deployment
    ) -> str:
        destination = findings_destination(cloudtrail_event.record, account, self.findings_settings)
        finding = build_finding(cloudtrail_event, verdict, destination.account, account_reason=destination.reason)
        if destination.reason:
            logger.warning(f"Finding kept in the detector's account: {destination.reason}", findingId=finding["Id"])
        try:
            deployment.publisher_for(destination).publish([finding])
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


def _load_settings(environ: Mapping[str, str]) -> RuleSettings:
    """The rule's settings, logged as understood. A malformed setting stops the cold start: Lambda reports an init
    error (the Errors alarm), and the events are retried, then kept in the failure queue, instead of being judged
    by an allowlist that means something other than what was written."""
    try:
        loaded = RuleSettings.from_environment(environ)
    except SettingsError as error:
        logger.error(f"Refusing to start: {error}")
        raise
    logger.info("Rule settings", **loaded.as_logged())
    return loaded


def lambda_handler_for(detector: Detector) -> LambdaHandler:
    """``detector`` as a Lambda handler."""

    # Powertools in its documented order: logger outermost, then metrics. There is no Tracer: the X-Ray SDK it is
    # built on would add 200-300 ms to every cold start and is near its end of support. Lambda's own active
    # tracing (the EnableTracing parameter) records each invocation without it.
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return detector.handle(event, context)

    return lambda_handler


detector = Detector(os.environ)
lambda_handler = detector.lambda_handler
