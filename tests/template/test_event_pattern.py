"""The EventBridge pattern as written in template.yaml, evaluated with moto's implementation of EventBridge matching.

The pattern decides which events ever reach the detector, so it must let through every Lambda management write, in
the plain and the API-versioned form CloudTrail records, and nothing else: no read, no data event (Invoke), and no
event that merely claims to be a Lambda API call. moto's matcher is a check of the pattern as written; the fields it
matches on (eventCategory, readOnly) are those of real records (the Stratus Red Team samples in events/) and of
CloudTrail's record-contents page.

Run with ``-rP`` (or ``-s``) to see the precision and recall figures.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest
from moto.events.models import EventPattern

from grading import NOT_MANAGEMENT_WRITES, OPERATIONS, is_write_operation
from rule import evaluate
from tests.support.cases import load_cases
from tests.support.cloudformation import (
    EVENT_ID,
    FORWARDER_PATH,
    FUNCTION_ID,
    RULE_ID,
    TEMPLATE_PATH,
    Stack,
    load_template,
    to_json,
    translate,
)

# API versions Lambda has used, in the forms CloudTrail appends them to event names.
API_VERSION_SUFFIXES = (
    "20141113",
    "20150331",
    "20150331v2",
    "20150331v3",
    "20160819",
    "20170331",
    "20170331v2",
    "20171031",
    "20181031",
    "20190925",
    "20190930",
    "20200422",
    "20200630",
    "20211031",
    "20241031v3",
)

# Other Lambda management calls in the form CloudTrail records them (action and API version); several start
# with the name of a watched action.
OTHER_LAMBDA_EVENT_NAMES = (
    "GetFunction20150331v2",
    "GetFunctionConfiguration20150331v2",
    "GetPolicy20150331v2",
    "GetAlias20150331",
    "GetEventSourceMapping20150331",
    "GetAccountSettings20160819",
    "ListFunctions20150331",
    "ListAliases20150331",
    "ListVersionsByFunction20150331",
    "ListEventSourceMappings20150331",
    "ListTags20170331",
    "CreateFunctionUrlConfig20211031",
    "UpdateFunctionUrlConfig20211031",
    "DeleteFunctionUrlConfig20211031",
    "GetFunctionUrlConfig20211031",
    "PutFunctionConcurrency20171031",
    "DeleteFunctionConcurrency20171031",
    "GetFunctionConcurrency20190930",
    "PutProvisionedConcurrencyConfig20190930",
    "DeleteProvisionedConcurrencyConfig20190930",
    "PublishLayerVersion20181031",
    "DeleteLayerVersion20181031",
    "AddLayerVersionPermission20181031",
    "RemoveLayerVersionPermission20181031",
    "GetLayerVersion20181031",
    "ListLayers20181031",
    "PutFunctionEventInvokeConfig20190925",
    "UpdateFunctionEventInvokeConfig20190925",
    "DeleteFunctionEventInvokeConfig20190925",
    "CreateCodeSigningConfig20200422",
    "UpdateCodeSigningConfig20200422",
    "DeleteCodeSigningConfig20200422",
    "PutFunctionCodeSigningConfig20200630",
    "DeleteFunctionCodeSigningConfig20200630",
    "TagResource20170331v2",
    "UntagResource20170331v2",
    "PutRuntimeManagementConfig20210720",
    "PutFunctionRecursionConfig20240831",
    "Invoke",
)

ENVELOPE = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.lambda",
    "account": "111122223333",
    "time": "2024-05-01T12:00:00Z",
    "region": "us-east-1",
    "resources": [],
}


def lambda_api_call(
    event_name: str, read_only: bool | None = False, category: str = "Management", **envelope: str
) -> Any:
    """An EventBridge event carrying a CloudTrail record of a Lambda call named ``event_name``; ``read_only`` None
    leaves readOnly out, as the record-contents page allows."""
    detail_fields: dict[str, Any] = {
        "eventSource": envelope.pop("event_source", "lambda.amazonaws.com"),
        "eventCategory": category,
        "managementEvent": category == "Management",
    }
    if read_only is not None:
        detail_fields["readOnly"] = read_only
    return {
        **ENVELOPE,
        **envelope,
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
            "eventTime": "2024-05-01T12:00:00Z",
            "eventName": event_name,
            "awsRegion": "us-east-1",
            "eventID": "0c5f1b9e-1d2a-4a43-9e52-8d2c0f7a5b11",
            "recipientAccountId": "111122223333",
            **detail_fields,
        },
    }


CENTRAL_BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/lambda-crud-detector-organization"


def written_pattern(*, in_forwarder: bool = False) -> Any:
    """The pattern exactly as written, intrinsic functions unresolved."""
    if in_forwarder:
        return load_template(FORWARDER_PATH)["Resources"]["ForwardLambdaApiCallsRule"]["Properties"]["EventPattern"]
    function = load_template(TEMPLATE_PATH)["Resources"][FUNCTION_ID]
    return function["Properties"]["Events"][EVENT_ID]["Properties"]["Pattern"]


def rule_pattern(parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The detector's pattern as CloudFormation would create it for ``parameters``."""
    return Stack(load_template(TEMPLATE_PATH), parameters).resolve(written_pattern())


def forwarder_pattern(parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    stack = Stack(load_template(FORWARDER_PATH), {"CentralEventBusArn": CENTRAL_BUS_ARN, **(parameters or {})})
    return stack.resolve(written_pattern(in_forwarder=True))


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(copy.deepcopy(dict(event)))


def model_operations() -> dict[str, str]:
    """Every operation of botocore's Lambda model, with its HTTP method."""
    model = botocore.session.get_session().get_service_model("lambda")
    operations = {name: model.operation_model(name).http["method"] for name in model.operation_names}
    assert len(operations) >= 60, "botocore's Lambda model lists fewer operations than expected"
    return operations


def write_event_names() -> list[str]:
    """Every management write of the model, plain and versioned, and names the rule does not know."""
    writes = [name for name, method in model_operations().items() if is_write_operation(method)]
    writes = [name for name in writes if name not in NOT_MANAGEMENT_WRITES or name.startswith("Checkpoint")]
    names = [name + suffix for name in writes for suffix in ("", *API_VERSION_SUFFIXES)]
    return sorted(set(names) | {"deletefunction", "CreateFunctionX", "FutureAction20991231"})


def read_event_names() -> list[str]:
    """Every read of the model, plain and versioned, and the reads of OTHER_LAMBDA_EVENT_NAMES."""
    reads = [name for name, method in model_operations().items() if not is_write_operation(method)]
    generated = [name + suffix for name in reads for suffix in ("", *API_VERSION_SUFFIXES)]
    return sorted(set(generated) | {name for name in OTHER_LAMBDA_EVENT_NAMES if name.startswith(("Get", "List"))})


def spoofed_events() -> list[dict[str, Any]]:
    """Events shaped like a watched Lambda call that did not come from CloudTrail's record of Lambda."""
    spoofs = []
    for name in ("UpdateFunctionCode20150331v2", "DeleteFunction", "AddPermission20150331"):
        spoofs += [
            lambda_api_call(name, source="custom.lambda"),
            lambda_api_call(name, source="aws.lambda.spoofed"),
            lambda_api_call(name, source="com.example.aws.lambda"),
            lambda_api_call(name, **{"detail-type": "AWS Service Event via CloudTrail"}),
            lambda_api_call(name, event_source="lambda.example.com"),
        ]
    return spoofs


@dataclass(frozen=True)
class Score:
    true_positives: int
    false_negatives: int
    false_positives: int
    true_negatives: int

    @property
    def precision(self) -> float:
        delivered = self.true_positives + self.false_positives
        return self.true_positives / delivered if delivered else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    def line(self, label: str) -> str:
        return (
            f"{label:<44} positives={self.true_positives + self.false_negatives:<5} "
            f"negatives={self.false_positives + self.true_negatives:<5} TP={self.true_positives} "
            f"FN={self.false_negatives} FP={self.false_positives} TN={self.true_negatives} "
            f"precision={self.precision:.4f} recall={self.recall:.4f}"
        )


def score(pattern: Mapping[str, Any], labelled: Iterable[tuple[dict[str, Any], bool]]) -> Score:
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    for event, wanted in labelled:
        counts[(wanted, matches(pattern, event))] += 1
    return Score(counts[(True, True)], counts[(True, False)], counts[(False, True)], counts[(False, False)])


# The pattern as written -------------------------------------------------------------------------------------


def test_forwarder_pattern_is_the_detectors_pattern() -> None:
    assert written_pattern(in_forwarder=True) == written_pattern()
    assert forwarder_pattern() == rule_pattern()


def test_sam_passes_the_pattern_to_the_rule_unchanged() -> None:
    written = written_pattern()
    rule = translate(load_template(TEMPLATE_PATH))["Resources"][RULE_ID]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["EventPattern"] == written


def test_pattern_fits_eventbridge_size_limit() -> None:
    # PutRule refuses event patterns longer than 4096 characters.
    assert len(to_json(rule_pattern())) <= 4096


# What reaches the detector ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: case.file)
def test_sample_events_reach_the_detector_only_when_in_scope(case: Any) -> None:
    in_scope = case.expected_verdict in ("finding", "allowlisted")
    assert matches(rule_pattern(), case.event) is in_scope, case.why


def test_every_write_matches_plain_and_versioned_with_or_without_read_only() -> None:
    pattern = rule_pattern()
    missed = [name for name in write_event_names() if not matches(pattern, lambda_api_call(name))]
    assert missed == []
    missed = [name for name in write_event_names() if not matches(pattern, lambda_api_call(name, read_only=None))]
    assert missed == []


def test_no_read_and_no_data_event_matches() -> None:
    pattern = rule_pattern()
    leaked = [name for name in read_event_names() if matches(pattern, lambda_api_call(name, read_only=True))]
    assert leaked == []
    # Invocations are data events: never delivered, even when the trail logs Lambda data events.
    for name in ("Invoke", "InvokeAsync", "InvokeWithResponseStream", "Invoke20150331"):
        assert not matches(pattern, lambda_api_call(name, category="Data")), name
        assert not matches(pattern, lambda_api_call(name, read_only=None, category="Data")), name


def test_events_not_from_lambda_cloudtrail_do_not_match() -> None:
    pattern = rule_pattern()
    leaked = [(event["source"], event["detail-type"]) for event in spoofed_events() if matches(pattern, event)]
    assert leaked == []


def test_the_rule_reports_every_write_the_pattern_delivers_and_ignores_the_rest() -> None:
    # The pattern decides what arrives; the rule decides what it means. A delivered read (no readOnly, so judged by
    # name) or a durable function's runtime call is ignored; every other delivered write is a finding.
    pattern = rule_pattern()
    for name in write_event_names():
        event = lambda_api_call(name)
        assert matches(pattern, event), name
        expected = "ignored" if name.startswith(tuple(NOT_MANAGEMENT_WRITES)) else "finding"
        assert evaluate(event["detail"]).kind == expected, name
    for name in read_event_names():
        assert evaluate(lambda_api_call(name, read_only=None)["detail"]).kind == "ignored", name


def test_every_write_operation_of_the_model_is_classified() -> None:
    # Fails when botocore's Lambda model gains a write operation the rule does not classify: classify it in
    # grading.OPERATIONS (or NOT_MANAGEMENT_WRITES), with its source.
    writes = {name for name, method in model_operations().items() if is_write_operation(method)}
    assert writes - set(OPERATIONS) - set(NOT_MANAGEMENT_WRITES) == set()
    assert set(OPERATIONS) | set(NOT_MANAGEMENT_WRITES) <= writes, "classified operations the model does not have"
    reads = {name for name, method in model_operations().items() if not is_write_operation(method)}
    assert all(name.startswith(("Get", "List")) for name in reads), "the rule names reads Get... or List..."
    assert not any(name.startswith(("Get", "List")) for name in writes)


def test_precision_and_recall() -> None:
    pattern = rule_pattern()
    cases = load_cases()
    sample = score(pattern, [(case.event, case.expected_verdict in ("finding", "allowlisted")) for case in cases])
    generated = score(
        pattern,
        [(lambda_api_call(name), True) for name in write_event_names()]
        + [(lambda_api_call(name, read_only=True), False) for name in read_event_names()]
        + [(lambda_api_call("Invoke", category="Data"), False)]
        + [(event, False) for event in spoofed_events()],
    )
    total = Score(*(a + b for a, b in zip(vars(sample).values(), vars(generated).values(), strict=True)))
    print()
    print(sample.line(f"sample events (events/, {len(cases)})"))
    print(generated.line("generated Lambda API calls and spoofs"))
    print(total.line("all"))
    assert (total.precision, total.recall) == (1.0, 1.0), total.line("all")
