"""A local Security Hub as strict as the real one: moto's, with the checks ``BatchImportFindings`` makes in AWS.

moto stores whatever it is given and overwrites any finding imported again with the same Id. ``install()`` wraps
its Security Hub backend so that an import is judged as AWS judges it:

* every finding against botocore's service model (required members, types, enums, lengths and patterns, such as
  the non-whitespace ``.*\\S.*`` of required strings) and the limits the ASFF documentation adds (Title at most
  256 characters, at most 32 resources, ...); a finding that breaks one is refused in ``FailedFindings`` with
  ``InvalidInput`` and the service's "Finding does not adhere to Amazon Finding Format" message, and so is a
  finding over 240 KB;
* the default-product rule: a finding whose ``ProductArn`` is not the caller's own default product, or whose
  ``AwsAccountId`` is not the caller's account, fails the whole call with ``AccessDeniedException``, as it does
  in AWS. The caller's account is the one moto serves the request for (its credentials), never a constant;
* at most 100 findings and 6 MB per call, or the whole call fails with ``InvalidInputException``;
* an import whose ``UpdatedAt`` is not newer than the stored finding's is ignored (it still counts as a
  success, as in AWS), and a newer one replaces it;
* under ``rate_limited(clock)``, the documented rate of ``BatchImportFindings``: 10 calls per second with a burst of
  30, per account and Region (Security Hub CSPM Partner Guide, "Guidelines for using the BatchImportFindings
  API"), as a token bucket on the clock given, so that tests and benchmarks can run on simulated time. A call
  over the rate fails with ``LimitExceededException`` (HTTP 429 in the service model), which botocore retries as
  throttling. Without it (the default) the rate is not enforced, as in moto.

The same backend serves ``mock_aws`` in-process and the moto server in a child process: call ``install()`` in the
process that runs moto. ``finding_errors`` is the same judgement for a finding on its own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import botocore.session
from botocore.model import Shape
from moto.core.exceptions import ServiceException
from moto.securityhub.models import Finding, SecurityHubBackend

MAX_FINDINGS_PER_CALL = 100
MAX_CALL_BYTES = 6 * 1024 * 1024
MAX_FINDING_BYTES = 240 * 1024
FORMAT_ERROR = "Finding does not adhere to Amazon Finding Format."

# Limits the ASFF documentation states and the service model does not, by path ("[]" stands for any list item).
MAX_LENGTHS = {
    "Id": 512,
    "GeneratorId": 512,
    "Title": 256,
    "Description": 1024,
    "Remediation.Recommendation.Text": 512,
    "Severity.Original": 64,
    "FindingProviderFields.Severity.Original": 64,
    "Resources[].Type": 256,
    "Resources[].Id": 512,
    "Resources[].Region": 16,
    "Action.AwsApiCallAction.Api": 128,
    "Action.AwsApiCallAction.ServiceName": 128,
}
MAX_ITEMS = {"Resources": 32, "Types": 50, "FindingProviderFields.Types": 50, "ProductFields": 50}
MIN_ITEMS = {"Resources": 1}
PATTERNS = {
    "SchemaVersion": re.compile(r"2018-10-08"),
    "ProductArn": re.compile(r"arn:aws(-cn|-us-gov)?:securityhub:[a-z0-9-]+:\d{12}:product/[^/]+/[^/]+"),
    "Types[]": re.compile(
        r"(Software and Configuration Checks|TTPs|Effects|Unusual Behaviors|Sensitive Data Identifications)"
        r"(/[^/]+){0,2}"
    ),
    "Action.AwsApiCallAction.CallerType": re.compile(r"remoteip|domain"),
}
PATTERNS["FindingProviderFields.Types[]"] = PATTERNS["Types[]"]
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
TIMESTAMP_FIELDS = {"CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt", "FirstSeen", "LastSeen"}
PRODUCT_FIELD_KEY_MAX, PRODUCT_FIELD_VALUE_MAX = 128, 2048
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "structure": (dict,),
    "list": (list,),
    "map": (dict,),
}


class AccessDeniedException(ServiceException):
    code = "AccessDeniedException"


class InvalidInputException(ServiceException):
    code = "InvalidInputException"


class LimitExceededException(ServiceException):
    code = "LimitExceededException"


IMPORT_RATE_PER_SECOND = 10.0
IMPORT_BURST = 30


@dataclass
class ImportRate:
    """A token bucket of ``BatchImportFindings`` calls per account and Region, on ``clock`` (seconds)."""

    clock: Callable[[], float]
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Calls made, by (account, Region), throttled ones included."""
    throttled: Counter[tuple[str, str]] = field(default_factory=Counter)
    _buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    """(tokens, when they were counted) per (account, Region)."""

    def take(self, account: str, region: str) -> bool:
        where, now = (account, region), self.clock()
        self.calls[where] += 1
        tokens, then = self._buckets.get(where, (float(IMPORT_BURST), now))
        tokens = min(float(IMPORT_BURST), tokens + (now - then) * IMPORT_RATE_PER_SECOND)
        if tokens < 1:
            self._buckets[where] = (tokens, now)
            self.throttled[where] += 1
            return False
        self._buckets[where] = (tokens - 1, now)
        return True


_import_rate: ImportRate | None = None


@contextmanager
def rate_limited(clock: Callable[[], float]) -> Iterator[ImportRate]:
    """Enforce the documented import rate on ``clock`` while inside; the ImportRate counts the calls."""
    global _import_rate
    previous, _import_rate = _import_rate, ImportRate(clock)
    try:
        yield _import_rate
    finally:
        _import_rate = previous


@cache
def finding_shape() -> Shape:
    """``AwsSecurityFinding`` from the Security Hub model of the installed botocore."""
    model = botocore.session.get_session().get_service_model("securityhub")
    request: Any = model.operation_model("BatchImportFindings").input_shape
    finding: Shape = request.members["Findings"].member
    return finding


def finding_errors(finding: Mapping[str, Any], caller_account: str | None = None) -> list[str]:
    """Every reason Security Hub would refuse ``finding``, in its own words; empty when it would be stored.

    ``caller_account`` is the account importing it; None takes the account of the finding's ProductArn, so that
    only the agreement between ProductArn and AwsAccountId is checked.
    """
    errors = [f"data{path} {problem}" for path, problem in _model_errors(finding, finding_shape(), "")]
    errors += [f"data.{problem}" for problem in _documented_limit_errors(finding)]
    errors += _account_errors(finding, caller_account)
    size = _size(finding)
    if size > MAX_FINDING_BYTES:
        errors.append(f"Finding is {size} bytes, over the maximum of {MAX_FINDING_BYTES} (240 KB)")
    return errors


def _model_errors(value: Any, shape: Any, path: str) -> Iterator[tuple[str, str]]:
    """``shape`` is the botocore Shape subclass its ``type_name`` names: StructureShape, ListShape, MapShape, ..."""
    if not _has_type(value, shape.type_name):
        yield path, f"should be {shape.type_name}"
        return
    metadata = shape.metadata
    if isinstance(value, (str, list, dict)):
        if "min" in metadata and len(value) < metadata["min"]:
            yield path, f"should NOT be shorter than {metadata['min']} characters"
        if "max" in metadata and len(value) > metadata["max"]:
            yield path, f"should NOT be longer than {metadata['max']} characters"
    if isinstance(value, str):
        if "pattern" in metadata and not re.fullmatch(metadata["pattern"], value, re.DOTALL):
            yield path, f'should match pattern "{metadata["pattern"]}"'
        if getattr(shape, "enum", None) and value not in shape.enum:
            yield path, "should be equal to one of the allowed values"
    elif shape.type_name == "structure":
        members: Mapping[str, Shape] = shape.members
        for name in shape.required_members:
            if name not in value:
                yield path, f"should have required property '{name}'"
        for name, item in value.items():
            if name not in members:
                yield path, f"should NOT have additional properties ('{name}')"
            else:
                yield from _model_errors(item, members[name], f"{path}.{name}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            yield from _model_errors(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            yield from _model_errors(key, shape.key, f"{path}['{key}'] key")
            yield from _model_errors(item, shape.value, f"{path}['{key}']")


def _has_type(value: Any, type_name: str) -> bool:
    expected = _JSON_TYPES.get(type_name, (object,))
    # JSON's true and false are not numbers, though Python's bool is an int.
    return isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)


def _documented_limit_errors(finding: Mapping[str, Any]) -> Iterator[str]:
    for path, value in _leaves_and_containers(finding, ""):
        general = re.sub(r"\[\d+\]", "[]", path)
        name = general.rsplit(".", 1)[-1]
        if isinstance(value, str):
            if general in MAX_LENGTHS and len(value) > MAX_LENGTHS[general]:
                yield f"{path} should NOT be longer than {MAX_LENGTHS[general]} characters"
            if general in PATTERNS and not PATTERNS[general].fullmatch(value):
                yield f'{path} should match pattern "{PATTERNS[general].pattern}"'
            if name in TIMESTAMP_FIELDS and not TIMESTAMP.fullmatch(value):
                yield f'{path} should match format "date-time"'
        elif isinstance(value, (list, dict)):
            if general in MAX_ITEMS and len(value) > MAX_ITEMS[general]:
                yield f"{path} should NOT have more than {MAX_ITEMS[general]} items"
            if general in MIN_ITEMS and len(value) < MIN_ITEMS[general]:
                yield f"{path} should NOT have fewer than {MIN_ITEMS[general]} items"
    # Severity and Types are required, either from the provider (FindingProviderFields) or at the top level.
    raw_provider = finding.get("FindingProviderFields")
    provider: Mapping[str, Any] = raw_provider if isinstance(raw_provider, Mapping) else {}
    if not any(
        isinstance(where.get("Severity"), Mapping) and "Label" in where["Severity"] for where in (provider, finding)
    ):
        yield "FindingProviderFields should have required property 'Severity.Label', data should match some schema in anyOf"
    if not any(where.get("Types") for where in (provider, finding)):
        yield "FindingProviderFields should have required property 'Types', data should match some schema in anyOf"
    fields = finding.get("ProductFields")
    for key, value in fields.items() if isinstance(fields, Mapping) else ():
        if isinstance(key, str) and (len(key) > PRODUCT_FIELD_KEY_MAX or key.startswith("aws/")):
            yield f"ProductFields key '{key[:40]}' is longer than {PRODUCT_FIELD_KEY_MAX} or uses the reserved aws/"
        if isinstance(value, str) and len(value) > PRODUCT_FIELD_VALUE_MAX:
            yield f"ProductFields['{key[:40]}'] should NOT be longer than {PRODUCT_FIELD_VALUE_MAX} characters"


def _leaves_and_containers(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if path:
        yield path.lstrip("."), value
    if isinstance(value, Mapping):
        for key, item in value.items():
            if path.lstrip(".") != "ProductFields":  # its keys are the provider's, not ASFF's
                yield from _leaves_and_containers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves_and_containers(item, f"{path}[{index}]")


def _account_errors(finding: Mapping[str, Any], caller_account: str | None) -> list[str]:
    product = re.fullmatch(
        r"arn:[^:]+:securityhub:[^:]+:(\d{12}):product/(\d{12})/default", str(finding.get("ProductArn"))
    )
    if product is None:
        return [f"ProductArn {finding.get('ProductArn')!r} is not a default product ARN"]
    caller = caller_account or product.group(1)
    if not product.group(1) == product.group(2) == caller:
        return [f"ProductArn {finding.get('ProductArn')} is not the default product of the caller's account {caller}"]
    if finding.get("AwsAccountId") != caller:
        return [f"AwsAccountId {finding.get('AwsAccountId')!r} is not the caller's account {caller}"]
    return []


def _instant(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def strict_batch_import_findings(
    self: SecurityHubBackend, findings: list[dict[str, Any]]
) -> tuple[int, int, list[dict[str, Any]]]:
    """``BatchImportFindings`` as AWS answers it, for the account and Region of this backend (the caller's)."""
    if _import_rate is not None and not _import_rate.take(self.account_id, self.region_name):
        raise LimitExceededException("Rate exceeded: BatchImportFindings allows 10 calls per second, burst 30")
    if not 1 <= len(findings) <= MAX_FINDINGS_PER_CALL:
        raise InvalidInputException(f"Findings must hold 1 to {MAX_FINDINGS_PER_CALL} findings, got {len(findings)}")
    if _size(findings) > MAX_CALL_BYTES:
        raise InvalidInputException(f"the request is over {MAX_CALL_BYTES} bytes (6 MB)")
    for finding in findings:
        if account_errors := _account_errors(finding, self.account_id):
            raise AccessDeniedException(
                f"not authorized to perform: securityhub:BatchImportFindings on resource: {finding.get('ProductArn')}"
                f" ({account_errors[0]})"
            )
    failed: list[dict[str, Any]] = []
    for finding in findings:
        if errors := finding_errors(finding, self.account_id):
            message = f"{FORMAT_ERROR} {', '.join(errors)}."
            failed.append(
                {"Id": str(finding.get("Id") or "(no Id)"), "ErrorCode": "InvalidInput", "ErrorMessage": message}
            )
            continue
        stored = next((item for item in self.findings if item.id == finding["Id"]), None)
        if stored is None:
            self.findings.append(Finding(finding["Id"], finding))
        elif _instant(finding["UpdatedAt"]) > _instant(stored.data["UpdatedAt"]):
            stored.data = finding
        # Otherwise Security Hub keeps what it holds and reports the import as a success.
    return len(failed), len(findings) - len(failed), failed


def install() -> None:
    """Make moto's Security Hub strict in this process (idempotent)."""
    SecurityHubBackend.batch_import_findings = strict_batch_import_findings  # type: ignore[method-assign]
