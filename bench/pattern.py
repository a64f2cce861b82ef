"""Synthetic Lambda write events, and what an event pattern delivers of them against what the rule holds in scope,
for ``bench.run``.

The events are EventBridge events of CloudTrail-recorded Lambda write calls in the proportions of a busy account
deployed by CI/CD; the pattern is evaluated with moto's EventBridge matcher, as EventBridge would evaluate it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Lambda write calls per 1,000, as EventBridge receives them from CloudTrail (it gets no read-only Get*/List*
# calls unless the rule opts in to them, and no Invoke, a data event). A busy account deployed by CI/CD: mostly
# code and configuration updates with versions and aliases, a tenth of the calls tags, some layers, concurrency
# and function URLs. Each action with the API version CloudTrail appends to it.
LAMBDA_WRITE_MIX: tuple[tuple[str, str, int], ...] = (
    # The 13 actions the rule watches: 600 per 1,000.
    ("UpdateFunctionCode", "20150331v2", 180),
    ("UpdateFunctionConfiguration", "20150331v2", 100),
    ("PublishVersion", "20150331", 80),
    ("UpdateAlias", "20150331", 60),
    ("AddPermission", "20150331v2", 40),
    ("CreateFunction", "20150331", 30),
    ("CreateEventSourceMapping", "20150331", 25),
    ("UpdateEventSourceMapping", "20150331", 25),
    ("CreateAlias", "20150331", 20),
    ("RemovePermission", "20150331v2", 15),
    ("DeleteFunction", "20150331", 15),
    ("DeleteAlias", "20150331", 5),
    ("DeleteEventSourceMapping", "20150331", 5),
    # Other Lambda writes: 400 per 1,000, several named like a watched action.
    ("TagResource", "20170331v2", 100),
    ("PublishLayerVersion", "20181031", 60),
    ("PutFunctionConcurrency", "20171031", 40),
    ("PutFunctionEventInvokeConfig", "20190925", 30),
    ("PutProvisionedConcurrencyConfig", "20190930", 25),
    ("UntagResource", "20170331v2", 20),
    ("DeleteLayerVersion", "20181031", 20),
    ("DeleteFunctionConcurrency", "20171031", 15),
    ("CreateFunctionUrlConfig", "20211031", 15),
    ("AddLayerVersionPermission", "20181031", 10),
    ("DeleteProvisionedConcurrencyConfig", "20190930", 10),
    ("UpdateFunctionUrlConfig", "20211031", 10),
    ("PutFunctionCodeSigningConfig", "20200630", 10),
    ("RemoveLayerVersionPermission", "20181031", 5),
    ("UpdateFunctionEventInvokeConfig", "20190925", 5),
    ("DeleteFunctionEventInvokeConfig", "20190925", 5),
    ("DeleteFunctionUrlConfig", "20211031", 5),
    ("DeleteFunctionCodeSigningConfig", "20200630", 5),
    ("PutRuntimeManagementConfig", "20210720", 5),
    ("PutFunctionRecursionConfig", "20240831", 5),
)
UNVERSIONED_SHARE = 0.10
"""Share of records naming the action without its API version (as some records and the seed events do)."""
FAILED_SHARE = 0.03
"""Share of calls that were denied; they are recorded, and delivered, all the same."""
DATA_EVENT_SHARE = 0.20
"""Share of events that are invocations (Invoke, a data event), as EventBridge receives them from a trail that logs
Lambda data events: none is a change, and the pattern should deliver none."""


def _assumed_role(role: str, session: str) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
        "accountId": "111122223333",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::111122223333:role/{role}", "userName": role}
        },
    }


# Who makes the calls, per 1,000: mostly the deployment role.
CALLER_MIX: tuple[tuple[dict[str, Any], int], ...] = (
    (_assumed_role("DeployRole", "codebuild-payments-api"), 700),
    ({"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"}, 100),
    (_assumed_role("AWSReservedSSO_AdministratorAccess_0123456789abcdef", "bob@example.com"), 80),
    ({"type": "AWSService", "invokedBy": "cloudformation.amazonaws.com"}, 70),
    (_assumed_role("DevSandboxRole", "xDeployRole"), 40),
    ({"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}, 10),
)


def synthetic_lambda_events(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` EventBridge events of Lambda write calls in the proportions above, the same for a given seed."""
    chooser = random.Random(seed)
    actions = chooser.choices(LAMBDA_WRITE_MIX, weights=[weight for *_, weight in LAMBDA_WRITE_MIX], k=count)
    callers = chooser.choices(CALLER_MIX, weights=[weight for _, weight in CALLER_MIX], k=count)
    events = []
    for index, ((action, version, _), (identity, _)) in enumerate(zip(actions, callers, strict=True)):
        event_name = action if chooser.random() < UNVERSIONED_SHARE else action + version
        data_event = chooser.random() < DATA_EVENT_SHARE
        if data_event:
            event_name = "Invoke"
        record: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": "2026-11-20T09:15:31Z",
            "eventSource": "lambda.amazonaws.com",
            "eventName": event_name,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "198.51.100.23",
            "requestParameters": {"functionName": f"function-{index % 40}"},
            "eventID": f"00000000-0000-4000-8000-{index:012d}",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": not data_event,
            "recipientAccountId": "111122223333",
            "eventCategory": "Data" if data_event else "Management",
        }
        if chooser.random() < FAILED_SHARE:
            record["errorCode"] = "AccessDenied"
        events.append(
            {
                "version": "0",
                "id": f"5b8a3c1e-0000-4000-8000-{index:012d}",
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.lambda",
                "account": "111122223333",
                "time": "2026-11-20T09:15:31Z",
                "region": "eu-west-1",
                "resources": [],
                "detail": record,
            }
        )
    return events


@dataclass(frozen=True)
class PatternCost:
    events: int
    matched: int
    in_scope: int
    wasted: int
    """Matched, but out of scope for the rule: invocations that only say 'ignored'."""
    missed: int
    """In scope for the rule, but not matched: changes the detector never sees."""
    allowlisted: int
    """In scope and matched, but allowlisted: necessary invocations that produce no finding."""

    def per_thousand(self, count: int) -> float:
        return 1000 * count / self.events

    @property
    def ratio(self) -> float:
        return self.matched / self.in_scope if self.in_scope else float("inf") if self.matched else 1.0


def measure_pattern_cost(
    pattern: Mapping[str, Any], events: Sequence[Mapping[str, Any]], judge: Callable[[Mapping[str, Any]], str]
) -> PatternCost:
    """Count what the pattern delivers against what ``judge`` (the rule's verdict kind) holds in scope."""
    from moto.events.models import EventPattern

    matcher = EventPattern.load(json.dumps(pattern))
    matched = in_scope = wasted = missed = allowlisted = 0
    for event in events:
        delivered = matcher.matches_event(event)  # type: ignore[arg-type]  # moto types events as a TypedDict
        kind = judge(event["detail"])
        wanted = kind != "ignored"
        matched += delivered
        in_scope += wanted
        wasted += delivered and not wanted
        missed += wanted and not delivered
        allowlisted += delivered and kind == "allowlisted"
    return PatternCost(len(events), matched, in_scope, wasted, missed, allowlisted)


def details(cost: PatternCost, seed: int) -> list[str]:
    watched = sum(weight for *_, weight in LAMBDA_WRITE_MIX[:13])
    return [
        f"Pattern: {cost.events:,} synthetic Lambda write events (seed {seed}; {watched} per 1,000 of the 13"
        f" watched actions, {UNVERSIONED_SHARE:.0%} without API version, {FAILED_SHARE:.0%} denied), pattern"
        " from template.yaml with default parameters, matched by moto's EventBridge matcher.",
        f"  matched {cost.matched}, in scope {cost.in_scope}, of which allowlisted {cost.allowlisted}"
        " (invocations that produce no finding: the allowlist depends on the caller's identity, which the rule"
        " works out in code).",
    ]
