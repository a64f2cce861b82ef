"""The EventBridge pattern as written in template.yaml, evaluated with moto's implementation of EventBridge matching.

The pattern decides which events ever reach the detector, so it must let through every call of the 13 watched
actions, in the plain and the API-versioned form CloudTrail records, and nothing else: no other Lambda action
(however much its name looks like a watched one) and no event that merely claims to be a Lambda API call.

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

from rule import CRUD_ACTIONS, RuleSettings, action_of, evaluate
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


def lambda_api_call(event_name: str, **envelope: str) -> dict[str, Any]:
    """An EventBridge event carrying a CloudTrail record of a Lambda call named ``event_name``."""
    detail_fields = {"eventSource": envelope.pop("event_source", "lambda.amazonaws.com")}
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


def watched_event_names() -> list[str]:
    return [action + suffix for action in sorted(CRUD_ACTIONS) for suffix in ("", *API_VERSION_SUFFIXES)]


def other_lambda_event_names() -> list[str]:
    """Every other operation of the Lambda API (from botocore's model), plain and versioned, plus real names."""
    operations = botocore.session.get_session().get_service_model("lambda").operation_names
    others = [name for name in operations if name not in CRUD_ACTIONS]
    assert len(others) >= 60, "botocore's Lambda model lists fewer operations than expected"
    generated = [name + suffix for name in others for suffix in ("", *API_VERSION_SUFFIXES)]
    return sorted(set(generated) | set(OTHER_LAMBDA_EVENT_NAMES))


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
    extra = {"ExtraActions": "PutFunctionConcurrency20171031"}
    assert forwarder_pattern() == rule_pattern()
    assert forwarder_pattern(extra) == rule_pattern(extra)


def test_sam_passes_the_pattern_to_the_rule_unchanged() -> None:
    written = written_pattern()
    rule = translate(load_template(TEMPLATE_PATH))["Resources"][RULE_ID]
    assert rule["Type"] == "AWS::Events::Rule"
    assert rule["Properties"]["EventPattern"] == written


@pytest.mark.parametrize("extra_actions", ["", "PutFunctionConcurrency20171031,DeleteFunctionConcurrency20171031"])
def test_pattern_fits_eventbridge_size_limit(extra_actions: str) -> None:
    # PutRule refuses event patterns longer than 4096 characters.
    assert len(to_json(rule_pattern({"ExtraActions": extra_actions}))) <= 4096


def test_pattern_fits_eventbridge_size_limit_with_ten_long_extra_actions() -> None:
    longest = "PutProvisionedConcurrencyConfig20190930"  # among the longest Lambda action names, suffixed
    assert len(to_json(rule_pattern({"ExtraActions": ",".join([longest] * 10)}))) <= 4096


# What reaches the detector ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: case.file)
def test_sample_events_reach_the_detector_only_when_in_scope(case: Any) -> None:
    in_scope = case.expected_verdict in ("finding", "allowlisted")
    assert matches(rule_pattern(), case.event) is in_scope, case.why


def test_every_watched_action_matches_plain_and_versioned() -> None:
    pattern = rule_pattern()
    missed = [name for name in watched_event_names() if not matches(pattern, lambda_api_call(name))]
    assert missed == []


def test_no_other_lambda_action_matches() -> None:
    pattern = rule_pattern()
    leaked = [name for name in other_lambda_event_names() if matches(pattern, lambda_api_call(name))]
    assert leaked == []


def test_events_not_from_lambda_cloudtrail_do_not_match() -> None:
    pattern = rule_pattern()
    leaked = [(event["source"], event["detail-type"]) for event in spoofed_events() if matches(pattern, event)]
    assert leaked == []


def test_pattern_agrees_with_the_rule_on_every_event_name() -> None:
    # The rule (rule.py) decides what is in scope once an event arrives; the pattern decides what arrives.
    pattern = rule_pattern()
    disagreements = [
        name
        for name in watched_event_names() + other_lambda_event_names()
        if matches(pattern, lambda_api_call(name)) != (action_of(name) in CRUD_ACTIONS)
    ]
    assert disagreements == []


EXTRA_ACTIONS = "CreateFunctionUrlConfig,PutFunctionConcurrency20171031"
TEN_EXTRA_ACTIONS = (
    "CreateFunctionUrlConfig,UpdateFunctionUrlConfig20211031,PublishLayerVersion20181031,AddLayerVersionPermission,"
    "PutFunctionConcurrency20171031,PutFunctionEventInvokeConfig,PutFunctionCodeSigningConfig20200630,"
    "PutRuntimeManagementConfig,TagResource20170331v2,PutProvisionedConcurrencyConfig"
)


def both_patterns(extra_actions: str) -> dict[str, dict[str, Any]]:
    """The detector's and the forwarder's patterns, as CloudFormation creates them for ``extra_actions``."""
    parameters = {"ExtraActions": extra_actions}
    return {"detector": rule_pattern(parameters), "forwarder": forwarder_pattern(parameters)}


@pytest.mark.parametrize("where", ["detector", "forwarder"])
def test_extra_actions_are_delivered_in_every_form_however_given(where: str) -> None:
    pattern = both_patterns(EXTRA_ACTIONS)[where]
    settings = RuleSettings.from_config(None, EXTRA_ACTIONS)
    for name in ("CreateFunctionUrlConfig20211031", "CreateFunctionUrlConfig", "PutFunctionConcurrency20171031"):
        assert matches(pattern, lambda_api_call(name)), name
        # ... to a function that reports them
        assert evaluate(lambda_api_call(name)["detail"], settings).kind == "finding", name
    # A suffixed name given in the setting stands for its action, in every form.
    assert matches(pattern, lambda_api_call("PutFunctionConcurrency"))
    assert not matches(pattern, lambda_api_call("DeleteFunctionUrlConfig20211031"))
    assert not matches(pattern, lambda_api_call("GetFunctionUrlConfig20211031"))
    assert not matches(pattern, lambda_api_call("PutFunctionConcurrencyX20171031"))
    # The 13 actions are unaffected.
    assert all(matches(pattern, lambda_api_call(name)) for name in watched_event_names())


@pytest.mark.parametrize("extra_actions", ["", EXTRA_ACTIONS, TEN_EXTRA_ACTIONS])
def test_pattern_and_rule_agree_on_every_event_name_with_extra_actions(extra_actions: str) -> None:
    # Whatever the pattern delivers the rule with the same setting treats as in scope, and nothing it would
    # report is held back: the pattern and the rule read ExtraActions the same way.
    settings = RuleSettings.from_config(None, extra_actions)
    extra_names = [action + suffix for action in settings.actions for suffix in ("", *API_VERSION_SUFFIXES)]
    names = sorted(set(watched_event_names() + other_lambda_event_names() + extra_names))
    for where, pattern in both_patterns(extra_actions).items():
        disagreements = [
            name for name in names if matches(pattern, lambda_api_call(name)) != (action_of(name) in settings.actions)
        ]
        assert disagreements == [], where


def test_empty_extra_actions_add_nothing() -> None:
    with_empty = rule_pattern({"ExtraActions": ""})
    # Every unused slot is the empty name and the prefix "20": no Lambda event name is empty or starts with a digit.
    assert {to_json(item) for item in with_empty["detail"]["$or"][1]["eventName"]} == {'""', '{"prefix":"20"}'}
    leaked = [name for name in other_lambda_event_names() if matches(with_empty, lambda_api_call(name))]
    assert leaked == []
    assert matches(with_empty, lambda_api_call("DeleteFunction20150331"))


def test_ten_extra_actions_fill_every_slot() -> None:
    pattern = rule_pattern({"ExtraActions": TEN_EXTRA_ACTIONS})
    for name in TEN_EXTRA_ACTIONS.split(","):
        action = action_of(name)
        assert matches(pattern, lambda_api_call(f"{action}")), name
        assert matches(pattern, lambda_api_call(f"{action}20991231v9")), name


def test_precision_and_recall() -> None:
    pattern = rule_pattern()
    cases = load_cases()
    sample = score(pattern, [(case.event, case.expected_verdict in ("finding", "allowlisted")) for case in cases])
    generated = score(
        pattern,
        [(lambda_api_call(name), True) for name in watched_event_names()]
        + [(lambda_api_call(name), False) for name in other_lambda_event_names()]
        + [(event, False) for event in spoofed_events()],
    )
    total = Score(*(a + b for a, b in zip(vars(sample).values(), vars(generated).values(), strict=True)))
    print()
    print(sample.line(f"sample events (events/, {len(cases)})"))
    print(generated.line("generated Lambda API calls and spoofs"))
    print(total.line("all"))
    assert (total.precision, total.recall) == (1.0, 1.0), total.line("all")
