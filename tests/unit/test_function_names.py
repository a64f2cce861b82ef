"""Every spelling of the detector's name that Lambda's grammar admits is the detector, in any field that names it.

The spellings are checked against the patterns of botocore's own Lambda model, so that a form the model admits and
the rule does not know cannot exist unnoticed.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session
import pytest

from rule import DetectorIdentity, FunctionRef, RuleSettings, evaluate, functions_named
from tests.unit.test_tamper import (
    CANARY_NAME,
    DEPLOY_ROLE,
    DETECTOR,
    DETECTOR_ACCOUNT,
    DETECTOR_NAME,
    MEMBER_ACCOUNT,
    REGION,
    change_record,
)

# The deployment role is allowlisted: on main, every odd spelling below was judged "allowlisted".
ALLOW_DEPLOY_ROLE = RuleSettings(allowlist_patterns=(DEPLOY_ROLE,))
MODEL_SHAPES = ("FunctionName", "NamespacedFunctionName", "FunctionArn", "TaggableResource", "PolicyResourceArn")


@cache
def model_pattern(shape: str) -> re.Pattern[str]:
    model = botocore.session.get_session().get_service_model("lambda")
    return re.compile(model.shape_for(shape).metadata["pattern"])


def spellings(name: str, account: str = DETECTOR_ACCOUNT, region: str = REGION) -> list[str]:
    """Every combination of the optional parts before a name, with and without a qualifier."""
    forms = []
    for arn in ("", "arn:aws:lambda:", "arn::lambda:", "arn:aws-us-gov:lambda:"):
        for in_region in ("", f"{region}:"):
            for in_account in ("", f"{account}:"):
                for function in ("", "function:"):
                    for qualifier in ("", ":$LATEST", ":7", ":live", ":$LATEST.PUBLISHED"):
                        forms.append(f"{arn}{in_region}{in_account}{function}{name}{qualifier}")
    return forms


def admitted(reference: str) -> bool:
    return any(model_pattern(shape).fullmatch(reference) for shape in MODEL_SHAPES)


DETECTOR_SPELLINGS = [form for form in spellings(DETECTOR_NAME) if admitted(form)]


def test_the_model_admits_the_forms_that_were_missed() -> None:
    # The forms a red-team review used against the three forms the rule knew, each admitted by the model.
    for form in ("function:NAME", "ACCOUNT:NAME", "REGION:ACCOUNT:function:NAME", "REGION:NAME", "arn:aws:lambda:NAME"):
        spelled = form.replace("ACCOUNT", DETECTOR_ACCOUNT).replace("REGION", REGION).replace("NAME", DETECTOR_NAME)
        assert spelled in DETECTOR_SPELLINGS
    assert len(DETECTOR_SPELLINGS) > 100


@pytest.mark.parametrize("field", ["functionName", "resource", "resourceArn"])
@pytest.mark.parametrize("event_name", ["AddPermission20150331v2", "DeleteFunction20150331", "TagResource20170331v2"])
def test_every_spelling_the_model_admits_is_the_detector_in_every_field(field: str, event_name: str) -> None:
    settings = ALLOW_DEPLOY_ROLE
    missed = []
    for spelling in DETECTOR_SPELLINGS:
        record = change_record(None, event_name, requestParameters={field: spelling})
        verdict = evaluate(record, settings, DETECTOR)
        if (verdict.kind, verdict.changes_detector) != ("finding", True):
            missed.append(spelling)
    assert missed == []


def test_the_detector_in_a_concurrency_change_is_reported_under_any_spelling() -> None:
    settings = ALLOW_DEPLOY_ROLE
    for spelling in (f"function:{DETECTOR_NAME}", f"{DETECTOR_ACCOUNT}:{DETECTOR_NAME}", f"{REGION}:{DETECTOR_NAME}"):
        record = change_record(spelling, "PutFunctionConcurrency20171031")
        assert evaluate(record, settings, DETECTOR).changes_detector, spelling


@pytest.mark.parametrize("name", [CANARY_NAME, f"{DETECTOR_NAME}-canary", f"{DETECTOR_NAME}2", f"x{DETECTOR_NAME}"])
def test_no_spelling_of_another_name_is_the_detector(name: str) -> None:
    for spelling in spellings(name):
        record = change_record(spelling)
        verdict = evaluate(record, ALLOW_DEPLOY_ROLE, DETECTOR)
        assert (verdict.kind, verdict.changes_detector) == ("allowlisted", False), spelling


def test_a_spelling_in_another_account_or_region_is_not_the_detector() -> None:
    for spelling in spellings(DETECTOR_NAME, account=MEMBER_ACCOUNT) + spellings(DETECTOR_NAME, region="eu-west-1"):
        if MEMBER_ACCOUNT not in spelling and "eu-west-1" not in spelling:
            continue  # a form without the account or Region names the record's own
        verdict = evaluate(change_record(spelling), ALLOW_DEPLOY_ROLE, DETECTOR)
        assert not verdict.changes_detector, spelling


def test_each_reading_of_an_ambiguous_spelling_is_kept() -> None:
    # "ACCOUNT:NAME" is also the function ACCOUNT with qualifier NAME; both readings are kept.
    named = functions_named(change_record(f"{DETECTOR_ACCOUNT}:{DETECTOR_NAME}"))
    assert FunctionRef(DETECTOR_ACCOUNT, REGION, DETECTOR_NAME) in named
    assert FunctionRef(DETECTOR_ACCOUNT, REGION, DETECTOR_ACCOUNT) in named


def test_a_reference_the_grammar_refuses_still_errs_towards_the_detector() -> None:
    record: dict[str, Any] = change_record(f"arn:aws:lambda:{REGION}:123:function:{DETECTOR_NAME}")
    assert not admitted(record["requestParameters"]["functionName"])
    assert evaluate(record, ALLOW_DEPLOY_ROLE, DETECTOR).changes_detector


def test_the_canary_under_its_full_arn_is_still_only_the_canary() -> None:
    detector = DetectorIdentity(FunctionRef(DETECTOR_ACCOUNT, REGION, DETECTOR_NAME), CANARY_NAME, None)
    record = change_record(f"arn:aws:lambda:{REGION}:{DETECTOR_ACCOUNT}:function:{CANARY_NAME}")
    assert not evaluate(record, ALLOW_DEPLOY_ROLE, detector).changes_detector
