"""Build the ASFF finding for one CloudTrail record: the one place that shapes and bounds a finding.

Finding Id scheme (docs/finding-ids.md): ``AWS.LAMBDA.CRUD/<recipientAccountId>/<awsRegion>/<eventID>/<digest>``,
where ``<digest>`` is the first 32 hex digits of the SHA-256 of the record's canonical content (``CONTENT_FIELDS``
as sorted-key JSON). When any of the three parts is missing or not plain ASCII (anonymised or hostile records), the
Id is instead ``AWS.LAMBDA.CRUD/sha256/<hex digest of the canonical content>``. The same record always gets the
same Id and ``CreatedAt == UpdatedAt == eventTime``, so Security Hub treats every retry or replay of it as an update
that is not newer than what it holds: exactly one finding per event, with no state of our own. A record that
differs in any of those fields (a forgery reusing a real eventID) gets an Id of its own, so it can never replace
the finding of the real record.

Every string that reaches the finding is cleaned (control characters and unpaired surrogates replaced) and
clipped in UTF-8 bytes, which is never more than the character limits Security Hub enforces. A rejected finding
is a detection switched off, so no record, however odd, may produce one that breaks a limit.

The builder does no I/O and copies nothing from a function's environment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cloudtrail import CloudTrailEvent
from grading import BEHAVIOURS, Behaviour
from rule import RULE_ID, Verdict, value_at

if TYPE_CHECKING:
    from flood import Fold

SCHEMA_VERSION = "2018-10-08"
SEVERITY_LABEL = "HIGH"
"""The severity of a verdict that carries none (the seed's)."""
FINDING_TYPE = "TTPs/Persistence/T1525-Implant Internal Image"
RULE_DESCRIPTION = "Unauthorized lambda Create, Read, Update, or Delete event occurred."
RUNBOOK_URL = "https://docs.aws.amazon.com/lambda/latest/dg/logging-using-cloudtrail.html"
# Within Security Hub's 512-character limit for Recommendation.Text (every test finding is checked against it).
RECOMMENDATION = (
    "Confirm with the principal's owner that this change to the Lambda function was intended. If it was not, "
    "revert the function's code, configuration, permissions or aliases, rotate the principal's credentials, "
    "and review what else the principal did. If it was, run such changes through the deployment role."
)
MAX_RECOMMENDATION = 512
# What changed, in ProductFields: at most this many labelled details (ProductFields holds 50 pairs in all), each
# under "change.<label>".
MAX_CHANGE_FIELDS = 20
MAX_CHANGE_SENTENCE = 600

# Limits Security Hub enforces on BatchImportFindings (boto3 checks none of them).
MAX_ID = 512
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_PRODUCT_FIELD_VALUE = 2048
MAX_API_NAME = 128
MAX_RESOURCE_ID = 512
MAX_RESOURCE_REGION = 16
TRUNCATION_MARKER = "…[truncated]"
MAX_LAYERS = 5
"""Lambda allows at most five layers on a function."""

ASFF_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
_CONSOLE_HOSTS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "{region}.console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_ID_PART = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ARN = re.compile(r"arn:(?:aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):[^\s]+")
# "Lambda was unable to configure your environment variables because the environment variables you have provided
# exceeded the 4KB limit. String measured: {"DB_PASSWORD":"..."}": everything after the marker is the environment.
_QUOTED_ENVIRONMENT = re.compile(r"(string measured:).*", re.IGNORECASE | re.DOTALL)
# Characters that change how the text around them reads rather than being read: controls, format characters
# (bidirectional overrides and isolates, zero-width characters, the byte order mark, tag characters), line and
# paragraph separators, and surrogates, which cannot be encoded.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NONCHARACTERS = frozenset("\ufffe\uffff")
# Bounds on the walk that collects ARNs, so a huge or deeply nested requestParameters costs little.
_MAX_NODES_WALKED = 5000
_MAX_ARNS = 50
# Keys whose values are never read: a function's environment holds its secrets. CloudTrail spells them in
# camelCase; the capitalised forms are those of the Lambda API's responses.
_NEVER_READ_KEYS = frozenset({"environment", "Environment", "variables", "Variables"})


@dataclass(frozen=True)
class DetectorAccount:
    """The account whose default product receives a finding, in the detector's partition and Region.

    That is the account the detector runs in, or, when findings go to the account where the change happened,
    that account (see ``findings_account``).
    """

    account_id: str
    partition: str
    region: str

    @classmethod
    def from_function_arn(cls, function_arn: str, region: str) -> DetectorAccount:
        """Read partition and account from the detector's own ARN (``context.invoked_function_arn``)."""
        parts = function_arn.split(":")
        if len(parts) < 7 or parts[0] != "arn" or not parts[1] or not parts[4]:
            raise ValueError(f"not a Lambda function ARN: {function_arn!r}")
        return cls(account_id=parts[4], partition=parts[1], region=region)

    @property
    def product_arn(self) -> str:
        account = self.account_id
        return f"arn:{self.partition}:securityhub:{self.region}:{account}:product/{account}/default"


CONTENT_FIELDS = (
    "eventID",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "recipientAccountId",
    "userIdentity",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "errorCode",
    "errorMessage",
)
"""What a call was: who, what, on what, from where, when, and how it ended. A forgery that reuses a real eventID
must change one of these to say anything else, and so gets an Id of its own. Fields CloudTrail adds about delivery
(``responseElements``, ``additionalEventData``, ``tlsDetails``, ...) are left out: they say nothing of the call,
and a record is read both from EventBridge and from S3 (backtest), which must give the same Id."""
CONTENT_DIGEST_CHARS = 32


def content_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record's ``CONTENT_FIELDS`` as sorted-key, ASCII-only JSON; a missing field reads as null.

    JSON makes the hash input unambiguous: no value can pass for a separator or for another field.
    """
    content = {field: record.get(field) for field in CONTENT_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def finding_id(record: Mapping[str, Any]) -> str:
    """The finding Id of a record (see the module docstring for the scheme)."""
    parts = [_str(record.get(key)) or "" for key in ("recipientAccountId", "awsRegion", "eventID")]
    digest = content_digest(record)
    if all(_ID_PART.fullmatch(part) for part in parts):
        return "/".join([RULE_ID, *parts, digest[:CONTENT_DIGEST_CHARS]])
    return f"{RULE_ID}/sha256/{digest}"


def build_finding(
    event: CloudTrailEvent, verdict: Verdict, detector: DetectorAccount, *, account_reason: str | None = None
) -> dict[str, Any]:
    """The ASFF finding for a record the rule judged a finding, owned by ``detector``'s account and product.

    ``account_reason`` says why the finding is not in the account where the change happened, when it should be.
    """
    record = event.record
    raw_identity = record.get("userIdentity")
    identity: Mapping[str, Any] = raw_identity if isinstance(raw_identity, Mapping) else {}
    event_name = _str(record.get("eventName")) or "unknown"
    action = verdict.action or event_name
    account = _str(record.get("recipientAccountId")) or _str(identity.get("accountId")) or "unknown-account"
    region = _str(record.get("awsRegion")) or "unknown-region"
    partition = _partition_of(region)
    caller_arn = _str(identity.get("arn"))
    principal = verdict.principal_arn or caller_arn or _str(identity.get("invokedBy"))
    source = _str(record.get("sourceIPAddress"))
    error_code = _str(record.get("errorCode"))
    error_message = _error_message(record)
    timestamp = asff_timestamp(event.event_time)
    function_arn = _function_arn(record, account, region, partition)

    behaviour = BEHAVIOURS.get(verdict.behaviour or "")
    severity = verdict.severity or SEVERITY_LABEL
    caller = caller_arn or principal or "an unidentified principal"
    happened = "attempted" if error_code else "performed"
    target = " (the detector itself)" if verdict.changes_detector else ""
    title = (
        f"{behaviour.title if behaviour else 'Lambda change'}{' attempted, and failed,' if error_code else ''} "
        f"on {_clip(_short_name(function_arn) or _other_target(record), 80)}{target} by {_clip(caller, 120)} "
        f"[{_clip(action, 48)} in {_clip(account, 24)} {_clip(region, 24)}]"
    )
    description = (
        f"{RULE_DESCRIPTION} {_clip(principal or 'An unidentified principal', 300)} {happened} "
        f"{_clip(event_name, 80)} on {_clip(function_arn or _other_target(record), 300)} "
        f"in account {_clip(account, 24)}, Region {_clip(region, 24)}, "
        f"from {_clip(source or 'an unknown source', 100)}."
    )
    if verdict.grade is not None and verdict.grade.details:
        changed = "; ".join(f"{label} {value}" for label, value in verdict.grade.details)
        description += f" What changed: {_clip(changed, MAX_CHANGE_SENTENCE)}."
    if error_code:
        description += f" The call failed: {_clip(error_code, 60)}" + (
            f": {_clip(error_message, 200)}" if error_message else ""
        )
    if verdict.unmet_channel:
        # An allowlisted principal used outside its pipeline: the first thing an analyst needs to know.
        description += f" The allowlist trusts this principal only with {_clip(verdict.unmet_channel, 300)}."
    finding_types = [behaviour.finding_type] if behaviour else [FINDING_TYPE]
    severity_field = {"Label": severity, "Original": severity.capitalize()}

    finding: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(record),
        "ProductArn": detector.product_arn,
        "GeneratorId": RULE_ID,
        "AwsAccountId": detector.account_id,
        "CreatedAt": timestamp,
        "UpdatedAt": timestamp,
        "FirstObservedAt": timestamp,
        "LastObservedAt": timestamp,
        "Severity": dict(severity_field),
        "Types": list(finding_types),
        "FindingProviderFields": {"Severity": dict(severity_field), "Types": list(finding_types)},
        "Title": _clip(title, MAX_TITLE),
        "Description": _clip(description, MAX_DESCRIPTION),
        "Remediation": {"Recommendation": {"Text": _recommendation(behaviour), "Url": RUNBOOK_URL}},
        "Resources": _resources(record, function_arn, principal, account, region, partition),
        "Action": _action(event_name, _str(record.get("eventSource")) or "unknown", source, timestamp),
        "ProductFields": _product_fields(
            record, identity, verdict, principal, function_arn, error_message, account_reason
        ),
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
    }
    source_url = _console_url(_str(record.get("eventID")) or "", region, partition)
    if source_url:
        finding["SourceUrl"] = source_url
    return finding


IMPLAUSIBLE_TIME_TYPE = "TTPs/Defense Evasion/T1562-Impair Defenses"


def implausible_time_finding(
    event: CloudTrailEvent, verdict: Verdict, detector: DetectorAccount, processed_at: datetime, problem: str
) -> dict[str, Any]:
    """A tamper finding for a record whose eventTime CloudTrail cannot have written (``problem`` says why).

    Such a record reached the detector by a direct invocation. It is stamped with the time it was processed, never
    with its own eventTime, and its Id is its own (``.../implausible-event-time/<content digest>``), so that it can
    neither pass for nor replace the finding of a real record.
    """
    finding = build_finding(event, verdict, detector)
    timestamp = asff_timestamp(processed_at)
    finding.update(
        Id=f"{RULE_ID}/implausible-event-time/{content_digest(event.record)}",
        CreatedAt=timestamp,
        UpdatedAt=timestamp,
        FirstObservedAt=timestamp,
        LastObservedAt=timestamp,
        Types=[IMPLAUSIBLE_TIME_TYPE],
        Title=_clip(f"Forged CloudTrail record sent to the detector: {problem}", MAX_TITLE),
        Description=_clip(
            f"The detector was invoked with a record whose eventTime CloudTrail cannot have written ({problem}). "
            "Someone allowed to invoke the detector directly sent it; the record was not judged. What it claims: "
            + finding["Description"],
            MAX_DESCRIPTION,
        ),
    )
    finding["FindingProviderFields"]["Types"] = [IMPLAUSIBLE_TIME_TYPE]
    finding["ProductFields"]["tamper"] = "ImplausibleEventTime"
    finding["ProductFields"]["eventTimeProblem"] = _clip(problem, MAX_PRODUCT_FIELD_VALUE)
    return finding


def fold_id(fold: Fold) -> str:
    """``AWS.LAMBDA.CRUD/fold/<digest>``: one per principal, action, behaviour, window and execution environment."""
    key = [
        fold.key.principal,
        fold.key.action,
        fold.key.behaviour,
        asff_timestamp(fold.key.window_start),
        fold.environment,
    ]
    digest = hashlib.sha256(json.dumps(key, ensure_ascii=True).encode("ascii")).hexdigest()
    return f"{RULE_ID}/fold/{digest[:CONTENT_DIGEST_CHARS]}"


def fold_finding(fold: Fold, detector: DetectorAccount, updated_at: datetime) -> dict[str, Any]:
    """The finding of a fold: its first call, as ``build_finding`` describes it, and how many more there were.

    The count is exact for this execution environment when imported; other environments fold their own calls of
    the same principal and action into findings of their own, so the window's total is "at least" this one.
    """
    finding = build_finding(fold.first, fold.verdict, detector)
    first_seen = asff_timestamp(fold.earliest_event_time or fold.first.event_time)
    last_seen = asff_timestamp(fold.last_event_time or fold.first.event_time)
    window = f"{asff_timestamp(fold.key.window_start)} to {asff_timestamp(fold.window_end)}"
    principal, action, count = fold.key.principal, fold.key.action, fold.count
    listed = ", ".join(fold.event_ids)
    targets = ", ".join(fold.targets) + (" and others" if fold.more_targets else "")
    finding.update(
        Id=fold_id(fold),
        CreatedAt=first_seen,
        FirstObservedAt=first_seen,
        LastObservedAt=last_seen,
        UpdatedAt=asff_timestamp(updated_at),
        Title=_clip(
            f"[{_clip(principal, 120)}] failed Lambda [{_clip(action, 48)}] at least {count} more times", MAX_TITLE
        ),
        Description=_clip(
            f"A flood of failed calls, folded: at least {count} more failed {action} calls ({fold.key.behaviour}) by "
            f"{principal} between {window}, on {targets}, after the first ones, which have findings of their own. "
            "The first folded call: " + finding["Description"],
            MAX_DESCRIPTION,
        ),
    )
    finding["Action"]["AwsApiCallAction"].update(FirstSeen=first_seen, LastSeen=last_seen)
    finding["ProductFields"].update(
        {
            "folded.count": str(count),
            "folded.countIs": "at least: exact for one execution environment when imported",
            "folded.eventIDs": _clip(listed, MAX_PRODUCT_FIELD_VALUE),
            "folded.eventIDsListed": f"{len(fold.event_ids)} of {count}",
            "folded.targets": _clip(targets, MAX_PRODUCT_FIELD_VALUE),
            "folded.window": window,
            "folded.environment": _clip(fold.environment or "unknown", MAX_PRODUCT_FIELD_VALUE),
        }
    )
    return finding


def asff_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffZ``, the form Security Hub documents (``moment`` is UTC)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean(text: str) -> str:
    """Replace every character that is not read but changes how the text reads (``UNSAFE_CATEGORIES``): control
    and format characters, such as the bidirectional overrides that make one name display as another, line and
    paragraph separators, and unpaired surrogates, which would break encoding."""
    if text.isprintable():  # printable text holds none of them
        return text
    return "".join("\ufffd" if is_unsafe(char) else char for char in text)


def is_unsafe(char: str) -> bool:
    """Whether ``char`` is one that ``clean`` replaces."""
    return not char.isprintable() and (unicodedata.category(char) in UNSAFE_CATEGORIES or char in _NONCHARACTERS)


def _clip(text: str, limit: int) -> str:
    """``text`` cleaned and cut to at most ``limit`` UTF-8 bytes, with a visible marker when cut."""
    # Printable text (no control character or surrogate) needs no cleaning; most values are that, and short.
    if not text.isprintable():
        text = clean(text)
    elif len(text) * 4 <= limit:
        return text
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    keep = limit - len(TRUNCATION_MARKER.encode("utf-8"))
    return encoded[:keep].decode("utf-8", "ignore") + TRUNCATION_MARKER


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _error_message(record: Mapping[str, Any]) -> str | None:
    """The call's error message, without the environment Lambda quotes when it refuses one as too large."""
    message = _str(record.get("errorMessage"))
    if message is None:
        return None
    return _QUOTED_ENVIRONMENT.sub(r"\1 [redacted]", message)


def _partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _parameters(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


def _function_arn(record: Mapping[str, Any], account: str, region: str, partition: str) -> str | None:
    """The unqualified ARN of the function a call touched, from whichever form the record names it in."""
    request = _parameters(record, "requestParameters")
    name = _str(request.get("functionName")) or _str(_parameters(record, "responseElements").get("functionArn"))
    if name is None:
        # A resource policy or tag names the function by its ARN.
        name = next(
            (a for a in (_str(request.get(k)) for k in ("resourceArn", "resource")) if a and ":function:" in a), None
        )
    if name is None:
        return None
    parts = name.split(":")
    if parts[0] == "arn" and len(parts) >= 7:  # arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        return ":".join(parts[:7])
    if len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME[:QUALIFIER]
        return f"arn:{partition}:lambda:{region}:{parts[0]}:function:{parts[2]}"
    return f"arn:{partition}:lambda:{region}:{account}:function:{parts[0]}"  # NAME[:QUALIFIER]


def _other_target(record: Mapping[str, Any]) -> str:
    """What a call touched when it names no function: an event source mapping, or just the call itself."""
    uuid = _str(_parameters(record, "requestParameters").get("uUID")) or _str(
        _parameters(record, "requestParameters").get("uuid")
    )
    if uuid:
        return f"event-source-mapping:{uuid}"
    return f"lambda:{_str(record.get('eventName')) or 'unknown'}:{_str(record.get('eventID')) or 'unknown'}"


def _resources(
    record: Mapping[str, Any],
    function_arn: str | None,
    principal: str | None,
    account: str,
    region: str,
    partition: str,
) -> list[dict[str, Any]]:
    placement: dict[str, str] = {}
    if partition in ASFF_PARTITIONS:
        placement["Partition"] = partition
    if _REGION.fullmatch(region) and len(region) <= MAX_RESOURCE_REGION:
        placement["Region"] = region
    if function_arn:
        touched: dict[str, Any] = {"Type": "AwsLambdaFunction", "Id": _clip(function_arn, MAX_RESOURCE_ID), **placement}
        details = _function_details(record)
        if details:
            touched["Details"] = {"AwsLambdaFunction": details}
    else:
        target = _other_target(record)
        if target.startswith("event-source-mapping:"):
            target = f"arn:{partition}:lambda:{region}:{account}:{target}"
        touched = {"Type": "Other", "Id": _clip(target, MAX_RESOURCE_ID), **placement}
    resources = [touched]
    if principal:
        kind = "AwsIamRole" if ":role/" in principal else "AwsIamUser" if ":user/" in principal else "Other"
        resources.append({"Type": kind, "Id": _clip(principal, MAX_RESOURCE_ID)})
    return resources


def _recommendation(behaviour: Behaviour | None) -> str:
    return _clip(behaviour.runbook if behaviour else RECOMMENDATION, MAX_RECOMMENDATION)


def _short_name(function_arn: str | None) -> str | None:
    """The function's name, from its unqualified ARN: what a person recognises in a title."""
    return function_arn.split(":", 6)[6] if function_arn and function_arn.count(":") >= 6 else function_arn


# ASFF's AwsLambdaFunctionDetails fields this builder fills, from the record's request and response (the response is
# the function's configuration after the change, where Lambda returns one). Never the Environment.
_DETAIL_STRINGS = {
    "CodeSha256": "codeSha256",
    "FunctionName": "functionName",
    "Handler": "handler",
    "KmsKeyArn": "kMSKeyArn",
    "PackageType": "packageType",
    "Role": "role",
    "Runtime": "runtime",
    "Version": "version",
    "RevisionId": "revisionId",
}


def _function_details(record: Mapping[str, Any]) -> dict[str, Any]:
    request, response = _parameters(record, "requestParameters"), _parameters(record, "responseElements")
    details: dict[str, Any] = {}
    for asff_key, key in _DETAIL_STRINGS.items():
        value = _str(response.get(key)) or (_str(request.get(key)) if key != "functionName" else None)
        if asff_key == "KmsKeyArn":
            value = value or _str(response.get("kmsKeyArn")) or _str(request.get("kmsKeyArn"))
        if value is not None:
            details[asff_key] = _clip(value, MAX_PRODUCT_FIELD_VALUE)
    layers = response.get("layers") if isinstance(response.get("layers"), list) else request.get("layers")
    if isinstance(layers, list):
        shown = []
        for layer in layers[:MAX_LAYERS]:
            arn = layer if isinstance(layer, str) else _str(layer.get("arn")) if isinstance(layer, Mapping) else None
            if arn is None:
                continue
            entry: dict[str, Any] = {"Arn": _clip(arn, MAX_PRODUCT_FIELD_VALUE)}
            size = layer.get("codeSize") if isinstance(layer, Mapping) else None
            if type(size) is int and 0 <= size < 2**31:
                entry["CodeSize"] = size
            shown.append(entry)
        details["Layers"] = shown
    return details


def _action(api: str, service: str, source: str | None, timestamp: str) -> dict[str, Any]:
    call: dict[str, Any] = {
        "Api": _clip(api, MAX_API_NAME),
        "ServiceName": _clip(service, MAX_API_NAME),
        "FirstSeen": timestamp,
        "LastSeen": timestamp,
    }
    if source is not None:
        if _is_ipv4(source):
            call["CallerType"] = "remoteip"
            call["RemoteIpDetails"] = {"IpAddressV4": source}
        else:
            # A service (cloudformation.amazonaws.com) or an IPv6 address, which RemoteIpDetails cannot hold.
            call["CallerType"] = "domain"
            call["DomainDetails"] = {"Domain": _clip(source, MAX_API_NAME)}
    return {"ActionType": "AWS_API_CALL", "AwsApiCallAction": call}


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _product_fields(
    record: Mapping[str, Any],
    identity: Mapping[str, Any],
    verdict: Verdict,
    principal: str | None,
    function_arn: str | None,
    error_message: str | None,
    account_reason: str | None = None,
) -> dict[str, str]:
    fields: dict[str, Any] = {
        "RuleId": RULE_ID,
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventSource": record.get("eventSource"),
        "recipientAccountId": record.get("recipientAccountId"),
        "awsRegion": record.get("awsRegion"),
        "principalArn": principal,
        "userIdentity.arn": identity.get("arn"),
        "userIdentity.type": identity.get("type"),
        "userIdentity.accountId": identity.get("accountId"),
        "sourceIPAddress": record.get("sourceIPAddress"),
        "userAgent": record.get("userAgent"),
        # The channel the allowlist's conditions look at (rule.CONDITION_FIELDS), shown when present.
        "userIdentity.invokedBy": identity.get("invokedBy"),
        "sessionContext.sourceIdentity": value_at(identity, "sessionContext", "sourceIdentity"),
        "webIdFederationData.federatedProvider": value_at(
            identity, "sessionContext", "webIdFederationData", "federatedProvider"
        ),
        "errorCode": record.get("errorCode"),
        "errorMessage": error_message,
        "functionArn": function_arn,
        "verdictReason": verdict.reason,
        "behaviour": verdict.behaviour,
        "behaviours": ", ".join(verdict.grade.behaviours) if verdict.grade else None,
        "severityAsGraded": verdict.grade.severity if verdict.grade else None,
        "callerKind": verdict.caller_kind,
        "knownAction": ("true" if verdict.grade.known_action else "false") if verdict.grade else None,
        "p_any_aws_arns": ", ".join(sorted(_arns_in(record))),
        "findingsAccountReason": account_reason,
    }
    if verdict.grade is not None:
        for label, value in verdict.grade.details[:MAX_CHANGE_FIELDS]:
            fields.setdefault(f"change.{_clip(label, 100)}", value)
    return {key: _clip(value, MAX_PRODUCT_FIELD_VALUE) for key, value in fields.items() if _str(value)}


def _arns_in(record: Mapping[str, Any]) -> set[str]:
    """Every ARN in the record (as the original rule's ``p_any_aws_arns``), outside any environment.

    One flat loop over the parsed JSON, testing strings where they are found, as this runs on every finding.
    """
    found: set[str] = set()
    containers: list[Any] = [record]
    walked = 0
    while containers and walked < _MAX_NODES_WALKED and len(found) < _MAX_ARNS:
        container = containers.pop()
        if type(container) is dict:
            values = [value for key, value in container.items() if key not in _NEVER_READ_KEYS]
        else:
            values = container
        walked += 1 + len(values)
        for value in values:
            kind = type(value)
            if kind is str:
                if value.startswith("arn:") and _ARN.fullmatch(value):
                    found.add(value)
            elif kind is dict or kind is list:
                containers.append(value)
    return found


def _console_url(event_id: str, region: str, partition: str) -> str | None:
    # Only a plain event id and a real Region make a link worth following.
    if not _ID_PART.fullmatch(event_id) or not _REGION.fullmatch(region) or partition not in _CONSOLE_HOSTS:
        return None
    host = _CONSOLE_HOSTS[partition].format(region=region)
    return f"https://{host}/cloudtrailv2/home?region={region}#/events/{quote(event_id, safe='')}"
