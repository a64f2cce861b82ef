"""AWS.LAMBDA.CRUD: a Lambda function was changed by someone other than the deployment role.

The rule is pure: it reads one CloudTrail record (the ``detail`` of an EventBridge event) and returns a
verdict. It does no I/O and knows nothing about Security Hub.

It differs from the rule it started from in two ways, both because of how real CloudTrail records look:

* CloudTrail names Lambda actions with an API-version suffix (``UpdateFunctionCode20150331v2``), so an
  action matches when its name is one of the actions below, alone or followed by ``<8 digits>[v<digits>]``.
* The allowlist is matched against the principal's identity, never against a name the caller chose. For an
  assumed role that is the role, not ``assumed-role/ROLE/SESSION``: the session name is picked by whoever
  calls ``sts:AssumeRole``, so matching it would let anyone hide behind a session called ``xDeployRole``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

RULE_ID = "AWS.LAMBDA.CRUD"
LAMBDA_EVENT_SOURCE = "lambda.amazonaws.com"
DEFAULT_ALLOWLIST_PATTERNS: tuple[str, ...] = ("*DeployRole",)

# The 13 write actions of the original rule, by their unsuffixed names.
CRUD_ACTIONS: frozenset[str] = frozenset(
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

# `<Action>` or `<Action><8-digit API version>` optionally followed by `v<digits>`. The action part is
# letters only, so `DeleteFunctionConcurrency20171031` parses as `DeleteFunctionConcurrency`, a different
# action, and never as `DeleteFunction`.
_EVENT_NAME = re.compile(r"(?P<action>[A-Za-z]+?)(?P<version>[0-9]{8}(?:v[0-9]+)?)?")

VerdictKind = Literal["finding", "allowlisted", "ignored"]


@dataclass(frozen=True)
class Verdict:
    """What the rule decided about one record, and why."""

    kind: VerdictKind
    reason: str
    action: str | None = None
    """The action without its API-version suffix, when the record is in scope."""
    principal_arn: str | None = None
    """The identity the allowlist was matched against; None when the record names none we can trust."""


@dataclass(frozen=True)
class RuleSettings:
    """What a deployment may configure: which actions count, and who may perform them."""

    allowlist_patterns: tuple[str, ...] = DEFAULT_ALLOWLIST_PATTERNS
    actions: frozenset[str] = CRUD_ACTIONS

    @classmethod
    def from_config(cls, allowlist: str | None, extra_actions: str | None) -> RuleSettings:
        """Read the comma-separated ``ALLOWLIST_PATTERNS`` and ``EXTRA_ACTIONS`` settings.

        An unset allowlist means the default; an empty one means nobody is allowlisted. Extra actions may be
        given with or without their API-version suffix.
        """
        patterns = DEFAULT_ALLOWLIST_PATTERNS if allowlist is None else _split(allowlist)
        extra = {action_of(name) or name for name in _split(extra_actions or "")}
        return cls(allowlist_patterns=patterns, actions=CRUD_ACTIONS | extra)


def action_of(event_name: str) -> str | None:
    """The action an event name stands for, without its API-version suffix; None if it is not a name."""
    match = _EVENT_NAME.fullmatch(event_name)
    return match.group("action") if match else None


def principal_identity(user_identity: Any) -> str | None:
    """The ARN of the principal behind a call, in a form the caller cannot choose.

    * Assumed roles: the session issuer, i.e. the role (``arn:aws:iam::ACCOUNT:role/PATH/ROLE``). If the
      record has no issuer, the role is recovered from ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``
      by dropping the session name.
    * Federated users: the IAM user who issued the federation token; the federated name is the caller's
      choice, so without an issuer there is no trustworthy identity.
    * Everyone else (IAM users, root, ...): ``userIdentity.arn``.

    Returns None when no trustworthy identity is present, so that nothing is ever allowlisted by default.
    """
    if not isinstance(user_identity, Mapping):
        return None
    arn = _text(user_identity.get("arn"))
    issuer_arn = _session_issuer_arn(user_identity)
    sts_resource = _sts_resource(arn) if arn else None
    # Decide by the shape of the ARN as well as by the declared type, so that a record whose type and ARN
    # disagree is never read in the caller's favour.
    if sts_resource is not None and sts_resource.startswith("assumed-role/"):
        session_role = _role_of_assumed_role(arn)  # type: ignore[arg-type]
        # The issuer adds the role's path; an issuer naming another role than the session's is not believed.
        if issuer_arn is not None and session_role is not None and _same_role(issuer_arn, session_role):
            return issuer_arn
        return session_role
    if sts_resource is not None or user_identity.get("type") in ("AssumedRole", "FederatedUser"):
        return issuer_arn
    return arn


def evaluate(record: Mapping[str, Any], settings: RuleSettings = RuleSettings()) -> Verdict:
    """Decide whether one CloudTrail record is a finding, an allowlisted change, or out of scope."""
    event_source = record.get("eventSource")
    if event_source != LAMBDA_EVENT_SOURCE:
        return Verdict("ignored", f"event source {event_source!r} is not {LAMBDA_EVENT_SOURCE}")
    event_name = _text(record.get("eventName")) or ""
    action = action_of(event_name)
    if action is None or action not in settings.actions:
        return Verdict("ignored", f"{event_name!r} is not a watched Lambda write action")
    principal = principal_identity(record.get("userIdentity"))
    if principal is None:
        return Verdict("finding", f"{action} by a principal with no verifiable identity", action, None)
    for pattern in settings.allowlist_patterns:
        if matches_pattern(principal, pattern):
            return Verdict("allowlisted", f"{action} by {principal}, allowlisted by {pattern!r}", action, principal)
    outcome = "attempted" if record.get("errorCode") else "performed"
    return Verdict("finding", f"{action} {outcome} by {principal}, not allowlisted", action, principal)


def matches_pattern(arn: str, pattern: str) -> bool:
    """Case-sensitive glob match; a pattern written as an ARN is matched field by field, like IAM's ArnLike.

    Field by field, ``*`` cannot reach across a ``:``: ``arn:aws:iam::*:role/DeployRole`` never matches
    ``arn:aws:iam::111122223333:user/x:role/DeployRole`` (IAM paths may contain colons).
    """
    if not pattern.startswith("arn:"):
        return fnmatchcase(arn, pattern)
    arn_fields, pattern_fields = arn.split(":", 5), pattern.split(":", 5)
    return len(arn_fields) == len(pattern_fields) == 6 and all(
        fnmatchcase(field, field_pattern) for field, field_pattern in zip(arn_fields, pattern_fields)
    )


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _session_issuer_arn(user_identity: Mapping[str, Any]) -> str | None:
    context = user_identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, Mapping) else None
    arn = _text(issuer.get("arn")) if isinstance(issuer, Mapping) else None
    # An issuer is an IAM role or user; anything else (another STS session) proves nothing.
    return arn if arn is not None and _arn_service(arn) == "iam" else None


def _arn_service(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[2] if len(parts) == 6 and parts[0] == "arn" else None


def _sts_resource(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sts":
        return parts[5]
    return None


def _same_role(issuer_arn: str, role_arn: str) -> bool:
    """Whether ``issuer_arn`` (``arn:P:iam::A:role/PATH/NAME``) is the role ``arn:P:iam::A:role/NAME``."""
    # Split on the first five colons only, as everywhere here: an IAM path may itself contain colons.
    issuer_fields, role_fields = issuer_arn.split(":", 5), role_arn.split(":", 5)
    return (
        len(issuer_fields) == len(role_fields) == 6
        and issuer_fields[:5] == role_fields[:5]
        and issuer_fields[5].startswith("role/")
        and issuer_fields[5].rpartition("/")[2] == role_fields[5].rpartition("/")[2]
    )


def _role_of_assumed_role(arn: str) -> str | None:
    # arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION -> arn:PARTITION:iam::ACCOUNT:role/ROLE
    _, partition, _, _, account, resource = arn.split(":", 5)
    _, _, rest = resource.partition("/")
    role, separator, session = rest.partition("/")
    if not role or not separator or not session:
        return None
    return f"arn:{partition}:iam::{account}:role/{role}"
