"""AWS.LAMBDA.CRUD: a Lambda function was changed by someone other than the deployment role.

The rule is pure: it reads one CloudTrail record (the ``detail`` of an EventBridge event) and returns a
verdict. It does no I/O and knows nothing about Security Hub.

It differs from the rule it started from in two ways, both because of how real CloudTrail records look:

* CloudTrail names Lambda actions with an API-version suffix (``UpdateFunctionCode20150331v2``), so an
  action matches when its name is one of the actions below, alone or followed by ``<8 digits>[v<digits>]``.
* The allowlist is matched against the principal's identity, never against a name the caller chose. For an
  assumed role that is the role, not ``assumed-role/ROLE/SESSION``: the session name is picked by whoever
  calls ``sts:AssumeRole``, so matching it would let anyone hide behind a session called ``xDeployRole``.

An allowlist entry may also name the channel the principal must come through
(``PRINCIPAL_PATTERN;invokedBy=cloudformation.amazonaws.com``): a deployment role is then trusted only when its
pipeline uses it, not when a person holding its credentials does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


class SettingsError(ValueError):
    """A setting the rule cannot read. Raised at start-up, so a typo stops the detector instead of silently
    allowlisting nobody (or everybody)."""


# The channel conditions an allowlist entry may set, and the record field each one reads. Every field is written
# by AWS, not by the caller, except sourceIdentity, which the first AssumeRole of a chain may set (see README).
CONDITION_FIELDS: dict[str, tuple[str, ...]] = {
    "invokedBy": ("userIdentity", "invokedBy"),
    "webIdentityProvider": ("userIdentity", "sessionContext", "webIdFederationData", "federatedProvider"),
    "sourceIdentity": ("userIdentity", "sessionContext", "sourceIdentity"),
    "sourceIp": ("sourceIPAddress",),
}
CIDR_KEYS = frozenset({"sourceIp"})
"""Condition keys whose value is an IP network (``ipaddress``), not a glob."""


@dataclass(frozen=True)
class Condition:
    """``key=glob``: the record's field for ``key`` must be present and match ``glob`` (a CIDR for sourceIp)."""

    key: str
    glob: str

    def value_in(self, record: Mapping[str, Any]) -> str | None:
        """The record's field for this condition, when it is text; anything else counts as missing."""
        return _text(value_at(record, *CONDITION_FIELDS[self.key]))

    def holds(self, record: Mapping[str, Any]) -> bool:
        value = self.value_in(record)
        if value is None:
            return False  # a missing field never satisfies a condition
        if self.key in CIDR_KEYS:
            return _address_in(value, self.glob)
        return matches_pattern(value, self.glob)

    def unmet_in(self, record: Mapping[str, Any]) -> str:
        """The condition, and what the record holds instead."""
        value = self.value_in(record)
        found = "none" if value is None else repr(value)
        return f"{self.key}={self.glob} (the record has {found})"


def _check_arn_glob(glob: str, entry: str) -> None:
    # An ARN-shaped glob is matched field by field; with fewer than six fields it could never match anything.
    if glob.startswith("arn:") and len(glob.split(":", 5)) != 6:
        raise SettingsError(f"allowlist entry {entry!r}: {glob!r} starts with arn: but does not have six fields")


def _check_cidr(cidr: str, entry: str) -> None:
    try:
        ipaddress.ip_network(cidr)
    except ValueError as error:
        raise SettingsError(f"allowlist entry {entry!r}: {cidr!r} is not an IP network: {error}") from None


@dataclass(frozen=True)
class AllowlistEntry:
    """``PRINCIPAL_PATTERN[;key=glob]...``: the principal, and the channel conditions that must all hold."""

    text: str
    principal_pattern: str
    conditions: tuple[Condition, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowlistEntry:
        """Read one entry; raise SettingsError, naming the entry, for anything that is not well formed."""
        principal_pattern, *condition_texts = (part.strip() for part in text.split(";"))
        if not principal_pattern:
            raise SettingsError(f"allowlist entry {text!r}: the principal pattern is empty")
        _check_arn_glob(principal_pattern, text)
        conditions: list[Condition] = []
        for condition_text in condition_texts:
            key, separator, glob = (part.strip() for part in condition_text.partition("="))
            if not separator:
                raise SettingsError(f"allowlist entry {text!r}: {condition_text!r} is not key=glob")
            if key not in CONDITION_FIELDS:
                known = ", ".join(CONDITION_FIELDS)
                raise SettingsError(f"allowlist entry {text!r}: unknown condition key {key!r} (known keys: {known})")
            if not glob:
                raise SettingsError(f"allowlist entry {text!r}: the condition {key} has an empty value")
            if any(condition.key == key for condition in conditions):
                # Both would have to hold; for alternatives, write one entry per alternative.
                raise SettingsError(f"allowlist entry {text!r}: the condition {key} is given twice")
            if key in CIDR_KEYS:
                _check_cidr(glob, text)
            else:
                _check_arn_glob(glob, text)
            conditions.append(Condition(key, glob))
        return cls(text.strip(), principal_pattern, tuple(conditions))

    def unmet_conditions(self, record: Mapping[str, Any]) -> list[Condition]:
        return [condition for condition in self.conditions if not condition.holds(record)]

    def as_logged(self) -> dict[str, str]:
        """The entry as understood: its principal pattern and each condition, for the start-up log."""
        return {"principal": self.principal_pattern, **{condition.key: condition.glob for condition in self.conditions}}


@dataclass(frozen=True)
class Verdict:
    """What the rule decided about one record, and why."""

    kind: VerdictKind
    reason: str
    action: str | None = None
    """The action without its API-version suffix, when the record is in scope."""
    principal_arn: str | None = None
    """The identity the allowlist was matched against; None when the record names none we can trust."""
    unmet_channel: str | None = None
    """For a finding whose principal an allowlist entry names: the channel conditions the record did not meet."""


@dataclass(frozen=True)
class RuleSettings:
    """What a deployment may configure: which actions count, and who may perform them."""

    allowlist_patterns: tuple[str, ...] = DEFAULT_ALLOWLIST_PATTERNS
    """The allowlist entries as written; parsed (and refused when malformed) into ``allowlist``."""
    actions: frozenset[str] = CRUD_ACTIONS
    allowlist: tuple[AllowlistEntry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = tuple(AllowlistEntry.parse(text) for text in self.allowlist_patterns)
        object.__setattr__(self, "allowlist", entries)

    @classmethod
    def from_config(cls, allowlist: str | None, extra_actions: str | None) -> RuleSettings:
        """Read the comma-separated ``ALLOWLIST_PATTERNS`` and ``EXTRA_ACTIONS`` settings.

        An unset allowlist means the default; an empty one means nobody is allowlisted. Extra actions may be
        given with or without their API-version suffix. Raises SettingsError for a malformed entry or name.
        """
        patterns = DEFAULT_ALLOWLIST_PATTERNS if allowlist is None else _split(allowlist)
        extra = set()
        for name in _split(extra_actions or ""):
            action = action_of(name)
            if action is None:
                raise SettingsError(f"extra action {name!r} is not an action name (letters, optionally + API version)")
            extra.add(action)
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
    unmet_channels = []
    for entry in settings.allowlist:
        if not matches_pattern(principal, entry.principal_pattern):
            continue
        unmet = entry.unmet_conditions(record)
        if not unmet:
            return Verdict("allowlisted", f"{action} by {principal}, allowlisted by {entry.text!r}", action, principal)
        unmet_channels.append(" and ".join(condition.unmet_in(record) for condition in unmet))
    outcome = "attempted" if record.get("errorCode") else "performed"
    if unmet_channels:
        # The principal is a trusted one used through another channel: say so first, it is what matters most.
        channel = " or ".join(unmet_channels)
        reason = f"{principal} used without {channel}: {action} {outcome}, not allowlisted"
        return Verdict("finding", reason, action, principal, channel)
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


def _address_in(address: str, cidr: str) -> bool:
    # sourceIPAddress may be a service name ("cloudformation.amazonaws.com") or "AWS Internal": not an address.
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def value_at(record: Mapping[str, Any], *path: str) -> Any:
    """The value at ``path`` of nested mappings; None where the path is missing or not a mapping."""
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


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
