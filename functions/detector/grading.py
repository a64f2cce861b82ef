"""What a Lambda write does, and how much it matters: the behaviour and severity of one CloudTrail record.

Pure, like the rule that calls it: one record in, a ``Grade`` out. Every write operation of botocore's Lambda model is
classified in ``OPERATIONS`` (a test fails when the model gains one that is not); a name that is not there is a write
the rule does not know, and is still reported (fail closed), at the lowest severity.

Sources, per classification, are in docs/detections.md; the short form is beside each entry below.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
SEVERITIES: tuple[Severity, ...] = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
CallerKind = Literal["person", "automation", "unknown"]


@dataclass(frozen=True)
class Behaviour:
    """One thing a change can do, with its severity, its ATT&CK technique and its short runbook."""

    name: str
    title: str
    """Names the behaviour in a finding's Title: "<title> on <function> by <caller>"."""
    severity: Severity
    tactic: str
    technique: str
    """``T####[.###]-Name``, as the ASFF Types classifier writes it."""
    runbook: str
    """Verify, revert, revoke: the Remediation text (at most 512 characters, checked by a test)."""

    @property
    def finding_type(self) -> str:
        return f"TTPs/{self.tactic}/{self.technique}"


_REVOKE = "If not intended, revoke the caller's credentials and review what else it did."
BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour(
            "detector-changed",
            "Detector changed",
            "CRITICAL",
            "Defense Evasion",
            "T1562.001-Impair Defenses: Disable or Modify Tools",
            "Verify: was this a planned deployment of the detector stack? Revert: redeploy the stack (sam deploy) to "
            "restore its code, configuration and allowlist. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "public-function-url",
            "Function URL with no authentication",
            "CRITICAL",
            "Persistence",
            "T1133-External Remote Services",
            "Verify: should this function be reachable from the internet without AWS credentials? Revert: set the URL's "
            "AuthType to AWS_IAM or delete the URL (DeleteFunctionUrlConfig). Revoke: " + _REVOKE,
        ),
        Behaviour(
            "public-permission",
            "Public permission",
            "CRITICAL",
            "Persistence",
            "T1546-Event Triggered Execution",
            "Verify: who needs to invoke or read this, and from where? Revert: remove the statement (RemovePermission, "
            "RemoveLayerVersionPermission, or PutResourcePolicy without it). Revoke: " + _REVOKE,
        ),
        Behaviour(
            "cross-account-access",
            "Access from another account",
            "HIGH",
            "Persistence",
            "T1098-Account Manipulation",
            "Verify: is the account or organisation granted a known partner of yours, and does a service grant carry a "
            "SourceArn or SourceAccount? Revert: remove the statement. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "external-destination",
            "Destination or source in another account",
            "HIGH",
            "Exfiltration",
            "T1020-Automated Exfiltration",
            "Verify: is the destination or event source account one of yours? Revert: point the invoke config or the "
            "event source mapping back at your own resource, or delete it. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "foreign-code",
            "Code from another account",
            "HIGH",
            "Persistence",
            "T1574-Hijack Execution Flow",
            "Verify: is the layer's or image's account a publisher you trust? Revert: redeploy the function without "
            "it. Then add trusted publishers to TRUSTED_LAYER_ACCOUNTS. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "code-signing-weakened",
            "Code signing removed or weakened",
            "HIGH",
            "Defense Evasion",
            "T1553-Subvert Trust Controls",
            "Verify: who approved deploying unsigned code? Revert: attach the code signing configuration again, with "
            "UntrustedArtifactOnDeployment Enforce. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "new-code",
            "New code",
            "HIGH",
            "Persistence",
            "T1525-Implant Internal Image",
            "Verify: does the new CodeSha256 match a build of your pipeline? Revert: publish the last known good "
            "version and point the aliases at it. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "execution-path-changed",
            "Execution path changed",
            "HIGH",
            "Defense Evasion",
            "T1578.005-Modify Cloud Compute Infrastructure: Modify Cloud Compute Configurations",
            "Verify: were the role, handler, runtime, layers or environment changed by your pipeline? Revert: redeploy "
            "the function's configuration from source. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "function-deleted",
            "Function deleted",
            "HIGH",
            "Impact",
            "T1485-Data Destruction",
            "Verify: was the function retired on purpose? Revert: redeploy it from source; its versions, aliases and "
            "triggers are gone with it. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "deployment-changed",
            "Deployment changed",
            "HIGH",
            "Execution",
            "T1648-Serverless Execution",
            "Verify: which version do the aliases now serve, and who may trigger the function? Revert: restore the "
            "alias, version, permission or event source mapping from source. Revoke: " + _REVOKE,
        ),
        Behaviour(
            "other-write",
            "Lambda setting changed",
            "MEDIUM",
            "Defense Evasion",
            "T1578-Modify Cloud Compute Infrastructure",
            "Verify: was the change planned (concurrency, tags, URL, runtime management, layers, code signing "
            "configurations)? Revert: restore the setting from source. Revoke: " + _REVOKE,
        ),
    )
}
DETECTOR_CHANGED = "detector-changed"
PUBLIC_BEHAVIOURS = frozenset({"public-function-url", "public-permission"})
# When one record does several things, the finding is named after the first of them in this order.
_PRIORITY = tuple(BEHAVIOURS)

# The original rule's 13 actions: whatever else they do, never below HIGH (the seed's severity).
SEED_ACTIONS: frozenset[str] = frozenset(
    {
        "AddPermission",
        "CreateAlias",
        "CreateEventSourceMapping",
        "CreateFunction",
        "DeleteAlias",
        "DeleteEventSourceMapping",
        "DeleteFunction",
        "PublishVersion",
        "RemovePermission",
        "UpdateAlias",
        "UpdateEventSourceMapping",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
    }
)

# Lambda operations that never make a finding, with why. A write is every operation of botocore's Lambda model whose
# HTTP method is not GET (Lambda's REST API reads with GET and changes with POST, PUT and DELETE).
NOT_MANAGEMENT_WRITES: dict[str, str] = {
    # CloudTrail records invocations as data events (eventCategory Data), which the event pattern never delivers;
    # Lambda developer guide, "Logging AWS Lambda API calls using AWS CloudTrail" (data events: Invoke).
    "Invoke": "an invocation: a CloudTrail data event, not a change",
    "InvokeAsync": "an invocation: a CloudTrail data event, not a change",
    "InvokeWithResponseStream": "an invocation: a CloudTrail data event, not a change",
    # Called by the durable functions SDK inside a running function at every step; Lambda API reference,
    # CheckpointDurableExecution ("used by the Lambda durable functions SDK to checkpoint completed steps ... you
    # typically don't need to call this API directly") and the SendDurableExecutionCallback* pages (completing a
    # callback the function waits on); Lambda developer guide, "Security and permissions for Lambda durable
    # functions" (the execution role holds lambda:CheckpointDurableExecution). Reporting them would be a flood.
    "CheckpointDurableExecution": "a durable function's runtime checkpoint, not a change to the function",
    "SendDurableExecutionCallbackSuccess": "a durable function's callback result, not a change to the function",
    "SendDurableExecutionCallbackFailure": "a durable function's callback result, not a change to the function",
    "SendDurableExecutionCallbackHeartbeat": "a durable function's callback heartbeat, not a change to the function",
}

# Every Lambda write operation, with the behaviour it has when nothing in the request makes it worse. The classifier
# functions below look at the request for the operations whose meaning depends on it.
OPERATIONS: dict[str, str] = {
    # The seed's 13 (Panther AWS.LAMBDA.CRUD), graded by what they do; never below HIGH.
    "AddPermission": "deployment-changed",
    "RemovePermission": "deployment-changed",
    "CreateAlias": "deployment-changed",
    "UpdateAlias": "deployment-changed",
    "DeleteAlias": "deployment-changed",
    "PublishVersion": "deployment-changed",
    "CreateEventSourceMapping": "deployment-changed",
    "UpdateEventSourceMapping": "deployment-changed",
    "DeleteEventSourceMapping": "deployment-changed",
    "CreateFunction": "new-code",
    "UpdateFunctionCode": "new-code",
    "UpdateFunctionConfiguration": "deployment-changed",
    "DeleteFunction": "function-deleted",
    # Reach: public or cross-account depending on the principal (Elastic "AWS Lambda Layer Shared Externally",
    # Sigma's function URL rule, Panther "Public Lambda").
    "AddLayerVersionPermission": "other-write",
    "RemoveLayerVersionPermission": "other-write",
    "PutResourcePolicy": "other-write",
    "DeleteResourcePolicy": "other-write",
    "CreateFunctionUrlConfig": "other-write",
    "UpdateFunctionUrlConfig": "other-write",
    "DeleteFunctionUrlConfig": "other-write",
    "PutFunctionEventInvokeConfig": "other-write",
    "UpdateFunctionEventInvokeConfig": "other-write",
    "DeleteFunctionEventInvokeConfig": "other-write",
    # Code signing: removing it lets unsigned code deploy (Lambda developer guide, "Code signing").
    "PutFunctionCodeSigningConfig": "other-write",
    "DeleteFunctionCodeSigningConfig": "code-signing-weakened",
    "CreateCodeSigningConfig": "other-write",
    "UpdateCodeSigningConfig": "other-write",
    "DeleteCodeSigningConfig": "code-signing-weakened",
    # Availability and cost; a concurrency of 0 throttles every invocation.
    "PutFunctionConcurrency": "other-write",
    "DeleteFunctionConcurrency": "other-write",
    "PutProvisionedConcurrencyConfig": "other-write",
    "DeleteProvisionedConcurrencyConfig": "other-write",
    "PutFunctionScalingConfig": "other-write",
    "PutRuntimeManagementConfig": "other-write",
    "PutFunctionRecursionConfig": "other-write",
    "CreateCapacityProvider": "other-write",
    "UpdateCapacityProvider": "other-write",
    "DeleteCapacityProvider": "other-write",
    "PublishLayerVersion": "other-write",
    "DeleteLayerVersion": "other-write",
    "StopDurableExecution": "other-write",
    "TagResource": "other-write",
    "UntagResource": "other-write",
}
# Writes that change nothing a function runs or who reaches it: the lowest severity, with unknown actions.
LOW_OPERATIONS = frozenset({"TagResource", "UntagResource"})
LOWEST: Severity = "LOW"

# AWS's own layer publishers, trusted by default. Powertools for AWS Lambda (Python) 017000801446 and (TypeScript)
# 094274105915, from their documentation's layer ARNs; CloudWatch Lambda Insights 580247275435 in most Regions and
# 012438385374 (af-south-1), 519774774795 (ap-east-1), 194566237122 (ap-northeast-3), 891564319516 (ap-south-2),
# 439286490199 (ap-southeast-3), from CloudWatch's "Available versions of the Lambda Insights extension" (as copied
# in awslabs/serverless-plugin-lambda-insights layerVersions.json).
DEFAULT_TRUSTED_LAYER_ACCOUNTS: tuple[str, ...] = (
    "017000801446",
    "094274105915",
    "580247275435",
    "012438385374",
    "519774774795",
    "194566237122",
    "891564319516",
    "439286490199",
)

# Conditions that tie a grant to one source or organisation (Lambda developer guide, "Working with resource-based
# IAM policies in Lambda": SourceArn, SourceAccount, PrincipalOrgID).
_SOURCE_CONDITION_KEYS = frozenset({"aws:sourcearn", "aws:sourceaccount", "aws:sourceowner"})
_ORG_CONDITION_KEYS = frozenset({"aws:principalorgid"})
_SSO_ROLE_MARKERS = ("/aws-reserved/sso.amazonaws.com/", ":role/AWSReservedSSO_")


@dataclass(frozen=True)
class Grade:
    """What one write does: every behaviour it shows (the first names the finding), its severity and the details."""

    behaviours: tuple[str, ...]
    severity: Severity
    known_action: bool
    details: tuple[tuple[str, str], ...]
    """Labelled facts from requestParameters and responseElements, never an environment variable's value."""

    @property
    def behaviour(self) -> str:
        return self.behaviours[0]

    @property
    def public(self) -> bool:
        return any(name in PUBLIC_BEHAVIOURS for name in self.behaviours)


def is_write_operation(http_method: str) -> bool:
    """The rule the classification follows for botocore's model: a write is an operation not read with GET."""
    return http_method.upper() != "GET"


def grade(
    record: Mapping[str, Any],
    action: str,
    trusted_layer_accounts: frozenset[str] = frozenset(DEFAULT_TRUSTED_LAYER_ACCOUNTS),
    *,
    detector: bool = False,
) -> Grade:
    """The behaviours, severity and details of a Lambda write named ``action`` (its name without API version)."""
    request = _mapping(record.get("requestParameters"))
    response = _mapping(record.get("responseElements"))
    own_account = _text(record.get("recipientAccountId"))
    known = action in OPERATIONS
    details: list[tuple[str, str]] = []
    found = [OPERATIONS.get(action, "other-write")]
    classify = _CLASSIFIERS.get(action)
    if classify is not None:
        found += classify(request, response, own_account, trusted_layer_accounts, details)
    if detector:
        found.append(DETECTOR_CHANGED)
    behaviours = tuple(sorted(set(found), key=_PRIORITY.index))
    # other-write only stands when nothing more telling was seen.
    if len(behaviours) > 1 and "other-write" in behaviours:
        behaviours = tuple(name for name in behaviours if name != "other-write")
    severity = max((BEHAVIOURS[name].severity for name in behaviours), key=SEVERITIES.index)
    if not known or action in LOW_OPERATIONS:
        severity = LOWEST if behaviours == ("other-write",) else severity
    if record.get("errorCode") and severity == "CRITICAL" and not detector:
        severity = "HIGH"  # an attempt that failed made nothing public, but someone tried
    if action in SEED_ACTIONS and SEVERITIES.index(severity) < SEVERITIES.index("HIGH"):
        severity = "HIGH"
    return Grade(behaviours, severity, known, tuple(details))


def caller_kind(user_identity: Any, record: Mapping[str, Any]) -> CallerKind:
    """Person, automation or unknown, from fields AWS writes (never the session name or user agent, which the
    caller picks). See docs/findings.md for the reasoning."""
    if not isinstance(user_identity, Mapping):
        return "unknown"
    if _text(user_identity.get("invokedBy")) or user_identity.get("type") == "AWSService":
        return "automation"
    if str(record.get("sessionCredentialFromConsole")).lower() == "true":
        return "person"
    if user_identity.get("type") == "Root":
        return "person"
    context = _mapping(user_identity.get("sessionContext"))
    if _text(_mapping(context.get("webIdFederationData")).get("federatedProvider")):
        return "automation"
    issuer = _text(_mapping(context.get("sessionIssuer")).get("arn")) or ""
    if any(marker in issuer for marker in _SSO_ROLE_MARKERS):
        return "person"
    return "unknown"


# Classifiers: each returns the behaviours the request adds, and appends the details it read. -----------------------


def _permission(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    principal = _text(request.get("principal"))
    source_arn, source_account = _text(request.get("sourceArn")), _text(request.get("sourceAccount"))
    org = _text(request.get("principalOrgID")) or _text(request.get("organizationId"))
    _add(
        details,
        ("principal", principal),
        ("sourceArn", source_arn),
        ("sourceAccount", source_account),
        ("principalOrgID", org),
        ("functionUrlAuthType", _text(request.get("functionUrlAuthType"))),
        ("action", _text(request.get("action"))),
        ("statementId", _text(request.get("statementId"))),
        ("statement", _text(response.get("statement"))),
    )
    if principal is None:
        return []
    return [_reach(principal, own, bool(source_arn or source_account), org is not None)]


def _reach(principal: str, own: str | None, has_source: bool, has_org: bool) -> str:
    """The behaviour of granting ``principal``: public, another account (or a confused deputy), or nothing more."""
    if principal == "*" or principal == "arn:aws:iam::*:root":
        if has_org:
            return "cross-account-access"
        return "cross-account-access" if has_source else "public-permission"
    if principal.endswith(".amazonaws.com") or principal.endswith(".amazonaws.com.cn"):
        # A service with no SourceArn or SourceAccount can be pointed at the function from any account.
        return "other-write" if has_source else "cross-account-access"
    account = _account_of_principal(principal)
    if account is not None and account != own:
        return "cross-account-access"
    return "other-write"


def _resource_policy(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    policy = request.get("policy")
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            policy = None
    statements = _mapping(policy).get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else statements
    found = []
    for index, statement in enumerate(statements if isinstance(statements, list) else []):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        keys = {key.lower() for key in _condition_keys(statement.get("Condition"))}
        for principal in _principals(statement.get("Principal")):
            found.append(_reach(principal, own, bool(keys & _SOURCE_CONDITION_KEYS), bool(keys & _ORG_CONDITION_KEYS)))
            _add(details, (f"statement[{index}].principal", principal))
        if keys:
            _add(details, (f"statement[{index}].conditions", ", ".join(sorted(keys))))
    _add(details, ("resourceArn", _text(request.get("resourceArn"))))
    return found


def _function_url(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    auth_type = _text(response.get("authType")) or _text(request.get("authType"))
    cors = _mapping(request.get("cors")) or _mapping(response.get("cors"))
    origins = cors.get("allowOrigins")
    _add(
        details,
        ("authType", auth_type),
        ("corsAllowOrigins", ", ".join(str(o) for o in origins) if isinstance(origins, list) else None),
        ("functionUrl", _text(response.get("functionUrl"))),
    )
    return ["public-function-url"] if auth_type == "NONE" else []


def _destinations(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    found = []
    arns = [("eventSourceArn", _text(request.get("eventSourceArn")))]
    destination_config = _mapping(request.get("destinationConfig"))
    for outcome in ("onSuccess", "onFailure"):
        arns.append((f"{outcome}.destination", _text(_mapping(destination_config.get(outcome)).get("destination"))))
    arns.append(("deadLetterConfig.targetArn", _text(_mapping(request.get("deadLetterConfig")).get("targetArn"))))
    for label, arn in arns:
        if arn is None:
            continue
        account = _arn_account(arn)
        foreign = account is not None and own is not None and account != own
        _add(details, (label, f"{arn} (account {account or 'not in the ARN'}{', another account' if foreign else ''})"))
        if foreign:
            found.append("external-destination")
    _add(details, ("uuid", _text(request.get("uUID")) or _text(response.get("uUID"))))
    return found


def _code(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    code = _mapping(request.get("code"))
    image = _text(request.get("imageUri")) or _text(code.get("imageUri"))
    bucket = _text(request.get("s3Bucket")) or _text(code.get("s3Bucket"))
    registry_account = image.split(".", 1)[0] if image and image.split(".", 1)[0].isdigit() else None
    foreign_image = registry_account is not None and own is not None and registry_account != own
    _add(
        details,
        ("codeSha256", _text(response.get("codeSha256"))),
        ("packageType", _text(response.get("packageType")) or _text(request.get("packageType"))),
        ("imageUri", f"{image} ({'another account' if foreign_image else 'this account'})" if image else None),
        ("s3Bucket", f"{bucket} (a bucket name does not say its account)" if bucket else None),
        ("version", _text(response.get("version"))),
    )
    found = ["foreign-code"] if foreign_image else []
    return found + _configuration(request, response, own, trusted, details)


# Configuration fields that change what runs or with what rights.
_EXECUTION_FIELDS = ("role", "handler", "runtime", "kMSKeyArn", "kmsKeyArn")


def _configuration(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    found = []
    for key in _EXECUTION_FIELDS:
        value = _text(request.get(key))
        if value is not None:
            _add(details, (key, value))
            found.append("execution-path-changed")
    if "environment" in request:
        # CloudTrail omits the variables' values; say only that the environment was set.
        details.append(("environment", "changed (CloudTrail does not record the values)"))
        found.append("execution-path-changed")
    layers = request.get("layers")
    if isinstance(layers, list):
        found.append("execution-path-changed")
        shown = []
        for layer in layers:
            arn = layer if isinstance(layer, str) else _text(_mapping(layer).get("arn"))
            if arn is None:
                continue
            account = _arn_account(arn)
            is_trusted = account is not None and (account == own or account in trusted)
            shown.append(f"{arn} (account {account or 'unknown'}, {'trusted' if is_trusted else 'NOT trusted'})")
            if not is_trusted:
                found.append("foreign-code")
        details.append(("layers", "; ".join(shown) if shown else "none (all layers removed)"))
    signing = _text(request.get("codeSigningConfigArn"))
    _add(details, ("codeSigningConfigArn", signing))
    found += _destinations(request, response, own, trusted, details)
    return found


def _code_signing(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    policies = _mapping(request.get("codeSigningPolicies"))
    on_untrusted = _text(policies.get("untrustedArtifactOnDeployment"))
    _add(
        details,
        ("codeSigningConfigArn", _text(request.get("codeSigningConfigArn"))),
        ("untrustedArtifactOnDeployment", on_untrusted),
    )
    return ["code-signing-weakened"] if on_untrusted == "Warn" else []


def _alias(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    weights = _mapping(_mapping(request.get("routingConfig")).get("additionalVersionWeights"))
    _add(
        details,
        ("alias", _text(request.get("name"))),
        ("functionVersion", _text(request.get("functionVersion"))),
        ("routingWeights", ", ".join(f"{k}={v}" for k, v in weights.items()) if weights else None),
        ("version", _text(response.get("version"))),
        ("codeSha256", _text(response.get("codeSha256"))),
    )
    return []


def _concurrency(
    request: Mapping[str, Any], response: Mapping[str, Any], own: str | None, trusted: frozenset[str], details: Any
) -> list[str]:
    value = request.get("reservedConcurrentExecutions")
    _add(details, ("reservedConcurrentExecutions", str(value) if isinstance(value, int) else None))
    return []


_CLASSIFIERS = {
    "AddPermission": _permission,
    "AddLayerVersionPermission": _permission,
    "PutResourcePolicy": _resource_policy,
    "CreateFunctionUrlConfig": _function_url,
    "UpdateFunctionUrlConfig": _function_url,
    "PutFunctionEventInvokeConfig": _destinations,
    "UpdateFunctionEventInvokeConfig": _destinations,
    "CreateEventSourceMapping": _destinations,
    "UpdateEventSourceMapping": _destinations,
    "CreateFunction": _code,
    "UpdateFunctionCode": _code,
    "UpdateFunctionConfiguration": _configuration,
    "CreateCodeSigningConfig": _code_signing,
    "UpdateCodeSigningConfig": _code_signing,
    "CreateAlias": _alias,
    "UpdateAlias": _alias,
    "PublishVersion": _alias,
    "PutFunctionConcurrency": _concurrency,
}


# Helpers -----------------------------------------------------------------------------------------------------------


def _add(details: list[tuple[str, str]], *pairs: tuple[str, str | None]) -> None:
    details.extend((label, value) for label, value in pairs if value)


def _principals(principal: Any) -> Iterable[str]:
    if isinstance(principal, str):
        yield principal
    elif isinstance(principal, Mapping):
        for value in principal.values():
            yield from ([value] if isinstance(value, str) else [v for v in value if isinstance(v, str)])


def _condition_keys(condition: Any) -> Iterable[str]:
    for operator in _mapping(condition).values():
        yield from (key for key in _mapping(operator) if isinstance(key, str))


def _account_of_principal(principal: str) -> str | None:
    if len(principal) == 12 and principal.isdigit():
        return principal
    return _arn_account(principal)


def _arn_account(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and len(parts[4]) == 12 and parts[4].isdigit():
        return parts[4]
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
