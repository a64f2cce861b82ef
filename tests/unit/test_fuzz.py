"""Hostile input: whatever arrives, the handler ends in a valid finding, a verdict without one, or InvalidEventError.

Events start from realistic EventBridge-delivered CloudTrail records and put hostile values in every field: any
Unicode (lone surrogates and control characters included), huge strings, nulls, numbers where strings belong,
wrong types, deep nesting and missing keys; the envelope around the record is attacked the same way. Every value
is one that JSON can carry, since Lambda hands the function a parsed JSON document.

The handler runs whole (``lambda_handler``, with its logging and metrics). Its Security Hub client answers every
BatchImportFindings call with success and keeps the findings as they went over the wire, and each of them must pass
the ASFF validator. Secrets placed in every record's function environment must never reach a finding.

Reproducible: ``HYPOTHESIS_SEED`` (default below) fixes the examples, ``FUZZ_EXAMPLES`` sets how many (default
2000). A failure prints the seed, the falsifying example and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import event as tally_outcome
from hypothesis import strategies as st

from app import Detector, logger
from cloudtrail import InvalidEventError
from rule import CRUD_ACTIONS
from tests.asff import assert_valid_finding
from tests.conftest import FakeLambdaContext, new_detector, stored_findings
from tests.support.cases import load_cases

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ_SEED = int(os.environ.get("HYPOTHESIS_SEED", "20261120"))

ENVIRONMENT_SECRET = "s3cr3t-env-value-7f1c"
ENVIRONMENT_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:env-only-7f1c"
ENVIRONMENT_VARIABLE_NAME = "ENV_ONLY_NAME_7F1C"
MISSING = object()
"""Stands for a key left out of a generated object."""


# --- Hostile values ----------------------------------------------------------------------------------------------

any_character = st.characters(exclude_categories=())  # every code point, lone surrogates included
control_character = st.characters(categories=["Cc"])
odd_text = st.one_of(
    st.text(alphabet=any_character, max_size=40),
    st.text(alphabet=control_character, min_size=1, max_size=6),
    st.sampled_from(
        [
            "",
            " ",
            "\t\r\n",
            "\u200b",
            "\ufeff",
            "\ud800",
            "\udfff\ud800",
            "\u202eevil",
            "\x00",
            "\x7f\x85\x9f",
            "\ufffe\uffff",
            "null",
            "None",
            "undefined",
            "arn:",
            "arn:aws:",
            "arn:aws:iam::",
            ":::::",
            "//////",
            "../../",
            "%s%n%x",
            "${jndi:ldap://x/a}",
            "<script>alert(1)</script>",
            "*",
            "?",
            "[!a]",
            "DeployRole",
        ]
    ),
)
huge_text = st.builds(
    lambda unit, times: unit * times,
    st.text(alphabet=any_character, min_size=1, max_size=4),
    st.integers(min_value=200, max_value=60_000),
)
numbers = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(111122223333),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, odd_text, huge_text)
object_keys = st.one_of(odd_text, st.sampled_from(["arn", "type", "environment", "Variables", "functionName", "id"]))
nested_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(object_keys, inner, max_size=4),
    max_leaves=12,
)


def nest(leaf: Any, depth: int, in_objects: bool) -> Any:
    for level in range(depth):
        leaf = {"a": leaf, "arn": f"arn:aws:iam::111122223333:role/level{level}"} if in_objects else [leaf]
    return leaf


deeply_nested = st.builds(nest, scalars, st.integers(min_value=50, max_value=500), st.booleans())
hostile = st.one_of(scalars, nested_values, deeply_nested)


# --- Realistic events -------------------------------------------------------------------------------------------

accounts = st.sampled_from(["111122223333", "123456789012", "444455556666"])
regions = st.sampled_from(["eu-west-1", "us-east-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "us-isob-east-1"])
names = st.one_of(
    st.sampled_from(["DeployRole", "xDeployRole", "DevSandboxRole", "alice", "Admin", "deployrole", "../DeployRole"]),
    st.text(alphabet="ABCXYZabcxyz0189+=,.@_-", min_size=1, max_size=64),  # characters IAM allows in names
)
role_paths = st.sampled_from(["", "ci/", "service-role/", "a/b/"])
event_sources = st.sampled_from(["lambda.amazonaws.com"] * 5 + ["iam.amazonaws.com"] + ["lambda.amazonaws.com"] * 5)
services = st.sampled_from(["cloudformation.amazonaws.com", "lambda.amazonaws.com", "AWS Internal"])
actions = st.sampled_from(sorted(CRUD_ACTIONS) + ["DeleteFunctionConcurrency", "GetFunction"])
suffixes = st.sampled_from(["20150331", "", "20150331v2", "2015", "20150331x", "20171031", "20150331v10"])
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
event_time_forms = [
    st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1)).map("{:%Y-%m-%dT%H:%M:%SZ}".format),
    st.datetimes(timezones=st.one_of(st.none(), offsets)).map(datetime.isoformat),
    st.sampled_from(["2026-11-20", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "20261120T091531Z"]),
]
event_times = st.integers(min_value=0, max_value=9).flatmap(lambda roll: event_time_forms[min(roll // 4, 2)])
"""CloudTrail's own form most of the time; other ISO 8601 forms, and times UTC cannot hold, now and then."""
source_addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.sampled_from(["cloudformation.amazonaws.com", "AWS Internal", "fe80::1%eth0", "1.2.3.4.5"]),
)
secret_environments = st.sampled_from(
    [
        {"variables": {ENVIRONMENT_VARIABLE_NAME: ENVIRONMENT_SECRET, "DB_ARN": ENVIRONMENT_SECRET_ARN}},
        {"Variables": {ENVIRONMENT_VARIABLE_NAME: [ENVIRONMENT_SECRET, ENVIRONMENT_SECRET_ARN]}},
        {
            "variables": {ENVIRONMENT_VARIABLE_NAME: {"nested": ENVIRONMENT_SECRET_ARN}},
            "error": {"message": ENVIRONMENT_SECRET},
        },
    ]
)


def partition_of(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


@st.composite
def user_identities(draw: st.DrawFn, account: str, partition: str) -> dict[str, Any]:
    """A userIdentity of any of the types CloudTrail writes, each in its usual shape."""
    name, session = draw(names), draw(names)
    role_arn = f"arn:{partition}:iam::{account}:role/{draw(role_paths)}{name}"
    issuer = {"type": "Role", "principalId": "AROAEXAMPLE", "arn": role_arn, "accountId": account, "userName": name}
    user_issuer = dict(issuer, type="IAMUser", arn=f"arn:{partition}:iam::{account}:user/{name}")
    assumed = f"arn:{partition}:sts::{account}:assumed-role/{name}/{session}"
    federated = f"arn:{partition}:sts::{account}:federated-user/{session}"
    kind = draw(
        st.sampled_from(
            [
                "IAMUser",
                "AssumedRole",
                "AssumedRole-no-issuer",
                "FederatedUser",
                "FederatedUser-no-issuer",
                "Root",
                "AWSService",
                "IdentityCenterUser",
            ]
        )
    )
    match kind:
        case "IAMUser":
            user = f"arn:{partition}:iam::{account}:user/{name}"
            return {"type": "IAMUser", "arn": user, "accountId": account, "userName": name}
        case "AssumedRole":
            context = {"sessionIssuer": issuer}
            return {"type": "AssumedRole", "arn": assumed, "accountId": account, "sessionContext": context}
        case "AssumedRole-no-issuer":
            return {"type": "AssumedRole", "arn": assumed, "accountId": account}
        case "FederatedUser":
            context = {"sessionIssuer": user_issuer}
            return {"type": "FederatedUser", "arn": federated, "accountId": account, "sessionContext": context}
        case "FederatedUser-no-issuer":
            return {"type": "FederatedUser", "arn": federated, "accountId": account}
        case "Root":
            return {"type": "Root", "arn": f"arn:{partition}:iam::{account}:root", "accountId": account}
        case "AWSService":
            return {"type": "AWSService", "invokedBy": draw(services)}
        case _:
            return {"type": "IdentityCenterUser", "accountId": account, "onBehalfOf": {"userId": session}}


@st.composite
def function_names(draw: st.DrawFn, account: str, region: str, partition: str) -> str:
    name = draw(names)
    return draw(
        st.sampled_from(
            [
                name,
                f"arn:{partition}:lambda:{region}:{account}:function:{name}",
                f"arn:{partition}:lambda:{region}:{account}:function:{name}:prod",
                f"{account}:function:{name}",
                f"{name}:$LATEST",
            ]
        )
    )


@st.composite
def realistic_events(draw: st.DrawFn) -> dict[str, Any]:
    """An EventBridge event carrying a CloudTrail record of a Lambda management call, as CloudTrail writes it."""
    account, region = draw(accounts), draw(regions)
    partition = partition_of(region)
    function_name = draw(function_names(account, region, partition))
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": draw(user_identities(account, partition)),
        "eventTime": draw(event_times),
        "eventSource": draw(event_sources),
        "eventName": draw(actions) + draw(suffixes),
        "awsRegion": region,
        "sourceIPAddress": draw(source_addresses),
        "userAgent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux",
        "requestParameters": {
            "functionName": function_name,
            "role": f"arn:{partition}:iam::{account}:role/ExecutionRole",
            "environment": draw(secret_environments),
        },
        "responseElements": draw(
            st.sampled_from(
                [None, {"functionArn": function_name, "environment": {"variables": {"DB_ARN": ENVIRONMENT_SECRET_ARN}}}]
            )
        ),
        "requestID": str(draw(st.uuids())),
        "eventID": str(draw(st.uuids())),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if draw(st.booleans()) and draw(st.booleans()):
        record["errorCode"], record["errorMessage"] = "AccessDenied", "User is not authorized to perform this action"
    return {
        "version": "0",
        "id": str(draw(st.uuids())),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": account,
        "time": "2026-11-20T09:15:31Z",
        "region": region,
        "resources": [],
        "detail": record,
    }


# --- Hostile events: a realistic event with hostile values at a few of its fields --------------------------------

NEW_KEY = "<a new key>"
"""In a field path: a key the record does not have, drawn from hostile keys."""
FIELD_PATHS: list[tuple[str, ...]] = [
    *[(key,) for key in ("id", "detail-type", "source", "account", "time", "region", "resources", "detail", NEW_KEY)],
    *[
        ("detail", key)
        for key in (
            "eventVersion",
            "userIdentity",
            "eventTime",
            "eventSource",
            "eventName",
            "eventID",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "errorCode",
            "errorMessage",
            "requestParameters",
            "responseElements",
            "requestID",
            "readOnly",
            "recipientAccountId",
            NEW_KEY,
        )
    ],
    *[
        ("detail", "userIdentity", key)
        for key in ("type", "arn", "accountId", "userName", "invokedBy", "principalId", "sessionContext", NEW_KEY)
    ],
    ("detail", "userIdentity", "sessionContext", "sessionIssuer"),
    ("detail", "userIdentity", "sessionContext", "sessionIssuer", "arn"),
    ("detail", "userIdentity", "sessionContext", "sessionIssuer", "type"),
    *[("detail", "requestParameters", key) for key in ("functionName", "uUID", "uuid", "role", NEW_KEY)],
    ("detail", "requestParameters", "environment", "variables", NEW_KEY),
    ("detail", "responseElements", "functionArn"),
]
patch_values = st.one_of(odd_text, huge_text, hostile, st.just(MISSING))
patches = st.lists(
    st.tuples(st.sampled_from(FIELD_PATHS), patch_values, st.one_of(odd_text, st.sampled_from(["arn", "environment"]))),
    min_size=1,
    max_size=3,
)


def patched(event: dict[str, Any], field_patches: list[tuple[tuple[str, ...], Any, str]]) -> dict[str, Any]:
    """``event`` with each path set to its hostile value (or removed, for MISSING), where the path still exists."""
    for path, value, new_key in field_patches:
        *parents, key = (new_key if part == NEW_KEY else part for part in path)
        target: Any = event
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is MISSING:
            target.pop(key, None)
        else:
            target[key] = value
    return event


UNFLOODED_KEYS = frozenset({"eventSource", "eventName", "eventTime", "eventID", "environment"})
"""Left as they are in a flooded record: what decides the verdict, and the secrets that must stay out of findings."""
fillers = st.builds(
    lambda unit, times: unit * times,
    st.text(alphabet=any_character, min_size=1, max_size=4),
    st.integers(min_value=600, max_value=20_000),
)


def flooded(event: dict[str, Any], filler: str) -> dict[str, Any]:
    """``event`` with every string of its record (but UNFLOODED_KEYS) replaced by one huge ``filler``, and a failed
    call's error: every bounded part of a finding is at its limit at once."""

    def flood(value: Any, key: str | None = None) -> Any:
        if key in UNFLOODED_KEYS:
            return value
        if isinstance(value, str):
            return filler
        if isinstance(value, dict):
            return {item_key: flood(item, item_key) for item_key, item in value.items()}
        if isinstance(value, list):
            return [flood(item) for item in value]
        return value

    event["detail"] = dict(flood(event["detail"]), errorCode=filler, errorMessage=filler)
    return event


@st.composite
def eventbridge_events(draw: st.DrawFn) -> Any:
    """Mostly realistic events with hostile values at a few fields; some untouched, some with every string huge;
    a few not an envelope at all."""
    roll = draw(st.integers(min_value=1, max_value=20))
    if roll == 20:
        return draw(hostile)
    event = draw(realistic_events())
    if roll >= 18:
        return flooded(event, draw(fillers))
    return event if roll <= 5 else patched(event, draw(patches))


# --- The handler, with a Security Hub that accepts everything ----------------------------------------------------


class RecordedImports:
    """Answers every BatchImportFindings call with success and keeps the findings it carried, as sent on the wire."""

    def __init__(self, client: Any) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        client.meta.events.register("before-call.securityhub.BatchImportFindings", self._accept)

    def _accept(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        findings = json.loads(params["body"])["Findings"]
        self.calls.append(findings)
        answer = {"FailedCount": 0, "SuccessCount": len(findings), "FailedFindings": []}
        return AWSResponse(params["url"], 200, {}, None), answer


def refuse_to_send(request: Any, **_: Any) -> None:
    raise AssertionError(f"{request.url}: the handler under fuzzing must not reach any network")


@pytest.fixture(scope="module")
def detector_accepting_everything() -> tuple[Detector, RecordedImports]:
    """The handler module, started as in a new container, on a client that answers imports itself and sends nothing.

    No mock_aws here: a module-wide mock would outlive this test and keep later tests' mocks from starting clean.
    """
    started = new_detector()
    client = started.deployment(FakeLambdaContext()).publisher._client
    client.meta.events.register("before-send", refuse_to_send)
    return started, RecordedImports(client)


def outcome_of(invoke: Callable[[], dict[str, Any]]) -> dict[str, Any] | InvalidEventError:
    try:
        return invoke()
    except InvalidEventError as error:
        return error


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    # Huge strings and deep nesting are the point here.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@seed(FUZZ_SEED)
@given(eventbridge_event=eventbridge_events())
def test_every_event_ends_in_a_valid_finding_a_verdict_or_an_invalid_event_error(
    detector_accepting_everything: tuple[Detector, RecordedImports], eventbridge_event: Any
) -> None:
    detector, imports = detector_accepting_everything
    note(f"reproduce with HYPOTHESIS_SEED={FUZZ_SEED} FUZZ_EXAMPLES={FUZZ_EXAMPLES}")
    calls_before = len(imports.calls)

    outcome = outcome_of(lambda: detector.lambda_handler(eventbridge_event, FakeLambdaContext()))

    calls = imports.calls[calls_before:]
    if isinstance(outcome, InvalidEventError):
        tally_outcome("invalid")
        assert calls == []
        return
    tally_outcome(outcome["verdict"])
    if outcome["verdict"] not in ("finding", "implausible"):  # implausible: a tamper finding (test_event_time.py)
        assert outcome["verdict"] in ("allowlisted", "ignored")
        assert outcome["findingId"] is None and calls == []
        return
    # A failed call past the first few of its principal and action folds: its fold's finding is imported now or
    # later (test_flood.py); any finding sent must be valid all the same.
    folded = "/fold/" in outcome["findingId"]
    sent_findings = [finding for call in calls for finding in call]
    if not folded:  # its own finding first, then any fold that fell due
        [finding] = calls[0]
        assert finding["Id"] == outcome["findingId"]
        assert all("/fold/" in later["Id"] for later in sent_findings[1:])
    for finding in sent_findings:
        assert_valid_finding(finding)
        sent = json.dumps(finding)
        for secret in (ENVIRONMENT_SECRET, ENVIRONMENT_SECRET_ARN, ENVIRONMENT_VARIABLE_NAME):
            assert secret not in sent, f"{secret} from the function's environment is in the finding"


# --- Lone surrogates in the fields the verdict line logs ---------------------------------------------------------

SAMPLE_EVENT = next(case.event for case in load_cases() if case.file == "update-function-code-by-iam-user.json")


@pytest.fixture
def lambda_stdout(detector: Detector) -> Iterator[io.TextIOWrapper]:
    """The handler's log stream as on Lambda: strict UTF-8, which cannot write a lone surrogate."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    handler = logger.registered_handler
    previous = handler.setStream(stream)
    yield stream
    if previous is not None:  # the handler outlives the module: later tests must find stdout again
        handler.setStream(previous)


def as_sampled(event: dict[str, Any]) -> None:
    """No change: shows that the verdict line is read back when nothing is wrong."""


def with_lone_surrogate_in_event_id(event: dict[str, Any]) -> None:
    event["detail"]["eventID"] = "0a6f7c1d-\ud800"


def with_lone_surrogate_in_principal(event: dict[str, Any]) -> None:
    event["detail"]["userIdentity"] = {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/\udc80alice"}


def with_lone_surrogate_in_envelope_id(event: dict[str, Any]) -> None:
    event["id"] = "5b8a3c1e-\udfff"


@pytest.mark.parametrize(
    "spoil",
    [as_sampled, with_lone_surrogate_in_event_id, with_lone_surrogate_in_principal, with_lone_surrogate_in_envelope_id],
)
def test_a_lone_surrogate_in_a_logged_field_does_not_cost_the_verdict_line(
    detector: Detector, security_hub: Any, lambda_stdout: io.TextIOWrapper, spoil: Callable[[dict[str, Any]], None]
) -> None:
    """JSON can carry a lone surrogate (``"\\ud800"``), which the handler reads as such; the verdict line must still
    reach the log."""
    event = copy.deepcopy(SAMPLE_EVENT)
    spoil(event)

    result = detector.lambda_handler(event, FakeLambdaContext())

    assert result["verdict"] == "finding"
    assert [finding["Id"] for finding in stored_findings(security_hub)] == [result["findingId"]]
    lines = [json.loads(line) for line in lambda_stdout.buffer.getvalue().decode("utf-8").splitlines()]
    assert [line["message"] for line in lines] == ["Verdict: finding"]
