"""Finding Ids bind the record's content: a replay is idempotent, a variant is a finding of its own, and the Id of a
record is the same whether the detector receives it from EventBridge or backtest reads it from S3."""

from __future__ import annotations

import copy
import gzip
import io
import json
from contextlib import redirect_stdout
from typing import Any

import boto3
import pytest
from moto import mock_aws

from app import Detector
from finding import CONTENT_FIELDS, finding_id
from lambda_crud_detector import backtest
from tests.conftest import FakeLambdaContext, stored_findings
from tests.support.cases import load_cases

RECORD = copy.deepcopy(
    next(case.event for case in load_cases() if case.file == "update-function-code-by-iam-user.json")
)


def record(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(RECORD["detail"]), **changes}


def envelope(detail: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(RECORD), "time": detail["eventTime"], "detail": detail}


def test_the_same_record_gets_the_same_id_whatever_its_key_order() -> None:
    reordered = dict(reversed(list(record().items())))
    assert finding_id(record()) == finding_id(reordered)


@pytest.mark.parametrize("field", CONTENT_FIELDS)
def test_a_record_that_differs_in_any_content_field_gets_another_id(field: str) -> None:
    changed = record(**{field: "something else"})
    assert finding_id(changed) != finding_id(record())


def test_delivery_fields_outside_the_content_leave_the_id_unchanged() -> None:
    assert finding_id(record(responseElements={"functionArn": "x"}, tlsDetails={"tlsVersion": "TLSv1.3"})) == (
        finding_id(record())
    )


def test_parts_that_hold_the_old_separator_no_longer_share_an_id() -> None:
    # Joined with \x1f, ("a\x1fb", "c") and ("a", "b\x1fc") were one hash input, so these two records had one Id.
    first = record(recipientAccountId="a\x1fb", awsRegion="c", eventID="e")
    second = record(recipientAccountId="a", awsRegion="b\x1fc", eventID="e")
    for field in set(CONTENT_FIELDS) - {"recipientAccountId", "awsRegion"}:
        assert first.get(field) == second.get(field)
    assert finding_id(first) != finding_id(second)


def test_a_variant_of_a_stored_finding_is_stored_beside_it_and_never_replaces_it(
    detector: Detector, security_hub: Any
) -> None:
    real = record()
    forged = record(userIdentity={"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/somebody-else"})
    detector.lambda_handler(envelope(real), FakeLambdaContext())
    detector.lambda_handler(envelope(copy.deepcopy(real)), FakeLambdaContext())  # a replay: a no-op
    detector.lambda_handler(envelope(forged), FakeLambdaContext())
    stored = {finding["Id"]: finding for finding in stored_findings(security_hub)}
    assert set(stored) == {finding_id(real), finding_id(forged)}
    assert stored[finding_id(real)]["ProductFields"]["userIdentity.arn"] == real["userIdentity"]["arn"]


def test_backtest_from_s3_gives_the_id_the_handler_stored(detector: Detector, security_hub: Any) -> None:
    detail = record()
    answer = detector.lambda_handler(envelope(detail), FakeLambdaContext())
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="trail")
        day = detail["eventTime"][:10].replace("-", "/")
        key = f"AWSLogs/{detail['recipientAccountId']}/CloudTrail/{detail['awsRegion']}/{day}/log.json.gz"
        # As CloudTrail writes a log file: its own key order and spacing, the record among others.
        body = json.dumps({"Records": [dict(sorted(detail.items()))]}, indent=1).encode()
        session.client("s3").put_object(Bucket="trail", Key=key, Body=gzip.compress(body))
        out = io.StringIO()
        with redirect_stdout(out):
            status = backtest.main(["--s3", "s3://trail", "--json", "--no-progress"], session=session)
    assert status == 0
    assert [finding["id"] for finding in json.loads(out.getvalue())["findings"]] == [answer["findingId"]]
