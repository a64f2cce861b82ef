"""An ASFF validator of our own: Security Hub enforces these limits, but neither boto3 nor moto checks them.

Every finding the tests produce goes through ``assert_valid_finding``. A finding that breaks one of these is
rejected by Security Hub in production, silently unless the publisher checks ``FailedFindings``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

REQUIRED = (
    "SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "CreatedAt", "UpdatedAt", "Title",
    "Description", "Resources",
)
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
TYPE = re.compile(
    r"(Software and Configuration Checks|TTPs|Effects|Unusual Behaviors|Sensitive Data Identifications)"
    r"(/[^/]+){0,2}"
)
PRODUCT_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):securityhub:[a-z0-9-]+:(\d{12}):product/(\d{12})/default")
SEVERITY_LABELS = {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
PARTITIONS = {"aws", "aws-cn", "aws-us-gov"}
CONTROL = re.compile("[\x00-\x1f\x7f]")
MAX_FINDING_BYTES = 240 * 1024
MAX_BATCH_FINDINGS = 100
MAX_BATCH_BYTES = 6 * 1024 * 1024


def finding_errors(finding: Mapping[str, Any]) -> list[str]:
    """Every way ``finding`` breaks a Security Hub rule; empty when it would be accepted."""
    errors: list[str] = []

    def limit(path: str, value: Any, maximum: int) -> None:
        if not isinstance(value, str) or not value:
            errors.append(f"{path} must be a non-empty string, got {value!r:.80}")
        elif len(value) > maximum:
            errors.append(f"{path} is {len(value)} characters, over {maximum}")

    for key in REQUIRED:
        if key not in finding:
            errors.append(f"{key} is required")
    if finding.get("SchemaVersion") != "2018-10-08":
        errors.append(f"SchemaVersion must be 2018-10-08, got {finding.get('SchemaVersion')!r}")
    limit("Id", finding.get("Id"), 512)
    limit("GeneratorId", finding.get("GeneratorId"), 512)
    limit("Title", finding.get("Title"), 256)
    limit("Description", finding.get("Description"), 1024)

    product = PRODUCT_ARN.fullmatch(str(finding.get("ProductArn")))
    if not product:
        errors.append(f"ProductArn is not a default product ARN: {finding.get('ProductArn')!r}")
    elif not (product.group(2) == product.group(3) == finding.get("AwsAccountId")):
        errors.append("AwsAccountId must be the account of the default ProductArn (the caller's account)")

    for key in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
        if key in finding and not TIMESTAMP.fullmatch(str(finding[key])):
            errors.append(f"{key} is not an ASFF timestamp: {finding[key]!r}")
    if str(finding.get("UpdatedAt")) < str(finding.get("CreatedAt")):
        errors.append("UpdatedAt is earlier than CreatedAt")

    provider = finding.get("FindingProviderFields") or {}
    severity = provider.get("Severity") or finding.get("Severity") or {}
    if severity.get("Label") not in SEVERITY_LABELS:
        errors.append(f"severity label must be one of {sorted(SEVERITY_LABELS)}, got {severity.get('Label')!r}")
    if "Original" in severity:
        limit("Severity.Original", severity["Original"], 64)
    for where in (provider, finding):
        types = where.get("Types")
        if types is None:
            continue
        if not isinstance(types, list) or not 1 <= len(types) <= 50:
            errors.append(f"Types must hold 1 to 50 entries, got {types!r:.80}")
            continue
        errors += [f"Type {entry!r} is not Namespace[/Category[/Classifier]]" for entry in types
                   if not isinstance(entry, str) or not TYPE.fullmatch(entry)]
    if not provider.get("Types") and not finding.get("Types"):
        errors.append("Types are required (FindingProviderFields.Types)")

    recommendation = (finding.get("Remediation") or {}).get("Recommendation") or {}
    if "Text" in recommendation:
        limit("Remediation.Recommendation.Text", recommendation["Text"], 512)

    fields = finding.get("ProductFields") or {}
    if len(fields) > 50:
        errors.append(f"ProductFields holds {len(fields)} pairs, over 50")
    for key, value in fields.items():
        limit(f"ProductFields key {key[:40]!r}", key, 128)
        limit(f"ProductFields[{key[:40]!r}]", value, 2048)
        if isinstance(key, str) and key.startswith("aws/"):
            errors.append(f"ProductFields key {key!r} uses the reserved aws/ prefix")

    resources = finding.get("Resources")
    if not isinstance(resources, list) or not 1 <= len(resources) <= 32:
        errors.append(f"Resources must hold 1 to 32 entries, got {resources!r:.80}")
        resources = []
    for index, resource in enumerate(resources):
        limit(f"Resources[{index}].Type", resource.get("Type"), 256)
        limit(f"Resources[{index}].Id", resource.get("Id"), 512)
        if "Region" in resource:
            limit(f"Resources[{index}].Region", resource["Region"], 16)
        if "Partition" in resource and resource["Partition"] not in PARTITIONS:
            errors.append(f"Resources[{index}].Partition {resource['Partition']!r} is not one of {sorted(PARTITIONS)}")

    call = ((finding.get("Action") or {}).get("AwsApiCallAction")) or {}
    for key in ("Api", "ServiceName"):
        if key in call:
            limit(f"AwsApiCallAction.{key}", call[key], 128)
    for key in ("FirstSeen", "LastSeen"):
        if key in call and not TIMESTAMP.fullmatch(str(call[key])):
            errors.append(f"AwsApiCallAction.{key} is not an ASFF timestamp: {call[key]!r}")
    if "CallerType" in call:
        if call["CallerType"] not in ("remoteip", "domain"):
            errors.append(f"CallerType must be remoteip or domain, got {call['CallerType']!r}")
        if call["CallerType"] == "remoteip":
            address = (call.get("RemoteIpDetails") or {}).get("IpAddressV4")
            try:
                ipaddress.IPv4Address(address)
            except (ValueError, TypeError):
                errors.append(f"CallerType remoteip needs RemoteIpDetails.IpAddressV4, got {address!r}")

    for path, text in _strings(finding):
        if CONTROL.search(text):
            errors.append(f"{path} holds a control character")
    try:
        size = len(json.dumps(finding, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError as error:
        errors.append(f"finding is not valid UTF-8: {error}")
    else:
        if size > MAX_FINDING_BYTES:
            errors.append(f"finding is {size} bytes, over {MAX_FINDING_BYTES}")
    return errors


def assert_valid_finding(finding: Mapping[str, Any]) -> None:
    errors = finding_errors(finding)
    assert not errors, "invalid ASFF finding:\n- " + "\n- ".join(errors)


def assert_valid_batch(findings: Iterable[Mapping[str, Any]]) -> None:
    batch = list(findings)
    assert 1 <= len(batch) <= MAX_BATCH_FINDINGS, f"a BatchImportFindings call takes 1 to 100 findings, got {len(batch)}"
    assert len(json.dumps(batch).encode("utf-8")) <= MAX_BATCH_BYTES
    for finding in batch:
        assert_valid_finding(finding)


def _strings(value: Any, path: str = "finding") -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
