"""Text an analyst reads cannot be steered: characters that change how text reads are replaced in every finding
field, and escaped by every command that prints findings."""

from __future__ import annotations

import copy
import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from cloudtrail import read_record
from finding import DetectorAccount, build_finding, clean
from lambda_crud_detector import findings as viewer
from lambda_crud_detector import terminal
from rule import RuleSettings, evaluate
from tests.conftest import DETECTOR_ACCOUNT
from tests.support.cases import load_cases

STEERING = {
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "pop directional formatting": "\u202c",
    "right-to-left isolate": "\u2067",
    "pop directional isolate": "\u2069",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "right-to-left mark": "\u200f",
    "arabic letter mark": "\u061c",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "byte order mark": "\ufeff",
    "tag latin capital a": "\U000e0041",
    "escape": "\x1b",
}
SAMPLE = next(case.event["detail"] for case in load_cases() if case.file == "update-function-code-by-iam-user.json")
DETECTOR = DetectorAccount(DETECTOR_ACCOUNT, "aws", "us-east-1")


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def steered_record(char: str) -> dict[str, Any]:
    record = copy.deepcopy(SAMPLE)
    record["userIdentity"]["arn"] = f"arn:aws:iam::111122223333:user/ev{char}il"
    record["userAgent"] = f"aws-cli{char}/2"
    record["sourceIPAddress"] = f"host{char}.example"
    record["errorCode"] = f"AccessDenied{char}"
    record["errorMessage"] = f"expected{char} no action needed"
    record["requestParameters"]["functionName"] = f"orders{char}-api"
    return record


@pytest.mark.parametrize("char", STEERING.values(), ids=STEERING.keys())
def test_no_finding_field_carries_a_character_that_steers_the_text(char: str) -> None:
    record = steered_record(char)
    finding = build_finding(read_record(record), evaluate(record, RuleSettings()), DETECTOR)
    assert not [text for text in strings_in(finding) if char in text]
    assert any("\ufffd" in text for text in strings_in(finding))


def test_clean_replaces_every_format_and_separator_character_and_keeps_the_rest() -> None:
    text = "".join(STEERING.values()) + "naïve 名前 café\u00a0x 😀"
    cleaned = clean(text)
    assert cleaned == "\ufffd" * len(STEERING) + "naïve 名前 café\u00a0x 😀"
    assert not [char for char in cleaned if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}]


def test_the_printers_escape_what_the_builder_replaces() -> None:
    from finding import UNSAFE_CATEGORIES

    assert terminal.UNSAFE_CATEGORIES == UNSAFE_CATEGORIES


@pytest.mark.parametrize("char", STEERING.values(), ids=STEERING.keys())
def test_the_findings_viewer_escapes_them_in_its_table_and_its_json(char: str) -> None:
    # A finding stored by an older detector, or by another producer, may still hold them.
    principal = f"arn:aws:iam::111122223333:user/ev{char}il"
    finding = {
        "Id": f"AWS.LAMBDA.CRUD/x{char}",
        "CreatedAt": "2026-11-20T09:15:31.000Z",
        "Severity": {"Label": "HIGH"},
        "ProductFields": {"principalArn": principal, "eventName": f"Update{char}", "functionArn": "-"},
        "Resources": [{"Id": f"arn:aws:lambda:us-east-1:111122223333:function:f{char}"}],
    }
    table = viewer.format_table([viewer.finding_row(finding)])
    as_json = viewer.format_json([finding])
    assert char not in table and char not in as_json
    assert json.loads(as_json) == [finding]
    assert char.encode("unicode_escape").decode("ascii") in table


@pytest.mark.parametrize("char", ["\u2028", "\ufeff", "\u200b", "\u2066"])
def test_backtest_and_redrive_print_through_the_same_escaper(char: str) -> None:
    assert char not in terminal.printable(f"a{char}b")
