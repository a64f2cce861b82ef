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

Every Lambda write is in scope, graded by what it does (``grading``): its behaviour and severity. Reads, data events
(``Invoke``) and a durable function's own checkpoints are not changes, and are ignored; a write the rule does not
know is still a finding, at the lowest severity. A deployment may lower a behaviour or switch it off
(``BEHAVIOUR_SEVERITIES``); changes to the detector can never be switched off, and by default the allowlist never hides
a change that makes a function or layer public (``ALLOWLIST_HIDES_PUBLIC``).

Two records are judged apart, given who the detector is (``DetectorIdentity``). A change to the detector's own
function is a finding whatever the allowlist says. The scheduled change to its canary is a ``heartbeat``: proof
that changes still travel from CloudTrail to the detector, and no finding.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from grading import (
    BEHAVIOURS,
    DEFAULT_TRUSTED_LAYER_ACCOUNTS,
    DETECTOR_CHANGED,
    NOT_MANAGEMENT_WRITES,
    SEED_ACTIONS,
    SEVERITIES,
    CallerKind,
    Grade,
    caller_kind,
    grade,
)

RULE_ID = "AWS.LAMBDA.CRUD"
LAMBDA_EVENT_SOURCE = "lambda.amazonaws.com"
SCHEDULER_SERVICE = "scheduler.amazonaws.com"
CANARY_ACTION = "UpdateFunctionConfiguration"
# What the canary's schedule sends: the function to change, and a new description.
_CANARY_PARAMETERS = frozenset({"functionName", "description"})
DEFAULT_ALLOWLIST_PATTERNS: tuple[str, ...] = ("*DeployRole",)

# The 13 write actions of the original rule, by their unsuffixed names: graded like every write, never below HIGH.
CRUD_ACTIONS: frozenset[str] = SEED_ACTIONS
# Every read of botocore's Lambda model is named Get... or List... (a test checks it against the model).
READ_PREFIXES = ("Get", "List")
OFF = "OFF"
"""A BEHAVIOUR_SEVERITIES level that switches the behaviour off: its records are ignored."""

# `<Action>` or `<Action><8-digit API version>` optionally followed by `v<digits>`. The action part is
# letters only, so `DeleteFunctionConcurrency20171031` parses as `DeleteFunctionConcurrency`, a different
# action, and never as `DeleteFunction`.
_EVENT_NAME = re.compile(r"(?P<action>[A-Za-z]+?)(?P<version>[0-9]{8}(?:v[0-9]+)?)?")

VerdictKind = Literal["finding", "allowlisted", "ignored", "heartbeat"]


class SettingsError(ValueError):
    """A setting the rule cannot read. Raised at start-up, so a typo stops the detector instead of silently
    allowlisting nobody (or everybody)."""


# The channel conditions an allowlist entry may set, and the record field each one reads. Every field is written
# by AWS, not by the caller, except sourceIdentity, which the first AssumeRole of a chain may set (see the
# allowlist's keys in docs/configuration.md).
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
    changes_detector: bool = False
    """The call was made on the detector's own function: a finding whatever the allowlist says."""
    grade: Grade | None = None
    """What the write does (behaviours, severity as graded, details); None for a record that is not a write."""
    severity: str | None = None
    """The finding's severity: the grade's, lowered by BEHAVIOUR_SEVERITIES where a deployment asked."""
    caller_kind: CallerKind = "unknown"
    """person, automation or unknown, from the fields AWS writes about the caller."""

    @property
    def behaviour(self) -> str | None:
        return self.grade.behaviour if self.grade is not None else None


def _read_levels(text: str | None) -> dict[str, str]:
    """``behaviour=LEVEL,...``: the most severe a behaviour may be reported, or OFF. Refuses what it cannot read."""
    levels: dict[str, str] = {}
    for entry in _split(text or ""):
        name, separator, level = (part.strip() for part in entry.partition("="))
        if not separator or name not in BEHAVIOURS:
            known = ", ".join(BEHAVIOURS)
            raise SettingsError(f"behaviour severity {entry!r}: not behaviour=LEVEL with a known behaviour ({known})")
        if level not in (*SEVERITIES, OFF):
            raise SettingsError(f"behaviour severity {entry!r}: {level!r} is not one of {', '.join(SEVERITIES)}, {OFF}")
        if name == DETECTOR_CHANGED:
            raise SettingsError(f"behaviour severity {entry!r}: changes to the detector itself cannot be lowered")
        if SEVERITIES.index(BEHAVIOURS[name].severity) < SEVERITIES.index(level) if level != OFF else False:
            raise SettingsError(f"behaviour severity {entry!r}: a level may lower a behaviour, not raise it")
        if name in levels:
            raise SettingsError(f"behaviour severity {entry!r}: {name} is given twice")
        levels[name] = level
    return levels


def _read_accounts(text: str | None) -> frozenset[str]:
    accounts = DEFAULT_TRUSTED_LAYER_ACCOUNTS if text is None else _split(text)
    for account in accounts:
        if not (len(account) == 12 and account.isdigit()):
            raise SettingsError(f"trusted layer account {account!r} is not a 12-digit AWS account id")
    return frozenset(accounts)


def _read_flag(name: str, text: str | None, default: bool) -> bool:
    if text is None or text.strip() == "":
        return default
    if text.strip().lower() not in ("true", "false"):
        raise SettingsError(f"{name} must be true or false, not {text!r}")
    return text.strip().lower() == "true"


@dataclass(frozen=True)
class RuleSettings:
    """What a deployment may configure: who may change functions, whose layers are trusted, and how loud each
    behaviour is."""

    allowlist_patterns: tuple[str, ...] = DEFAULT_ALLOWLIST_PATTERNS
    """The allowlist entries as written; parsed (and refused when malformed) into ``allowlist``."""
    trusted_layer_accounts: frozenset[str] = frozenset(DEFAULT_TRUSTED_LAYER_ACCOUNTS)
    """Accounts whose layers are not foreign code, besides the function's own account."""
    behaviour_levels: Mapping[str, str] = field(default_factory=dict)
    """behaviour -> the most severe level it is reported at, or OFF."""
    allowlist_hides_public: bool = False
    """Whether an allowlisted principal's change that makes a function or layer public is excused too."""
    allowlist: tuple[AllowlistEntry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = tuple(AllowlistEntry.parse(text) for text in self.allowlist_patterns)
        object.__setattr__(self, "allowlist", entries)

    @classmethod
    def from_config(
        cls,
        allowlist: str | None,
        *,
        trusted_layer_accounts: str | None = None,
        behaviour_severities: str | None = None,
        allowlist_hides_public: str | None = None,
    ) -> RuleSettings:
        """Read ``ALLOWLIST_PATTERNS``, ``TRUSTED_LAYER_ACCOUNTS``, ``BEHAVIOUR_SEVERITIES`` and
        ``ALLOWLIST_HIDES_PUBLIC``.

        An unset allowlist or trusted account list means the default; an empty one means nobody. Raises SettingsError,
        naming the entry, for anything malformed.
        """
        return cls(
            allowlist_patterns=DEFAULT_ALLOWLIST_PATTERNS if allowlist is None else _split(allowlist),
            trusted_layer_accounts=_read_accounts(trusted_layer_accounts),
            behaviour_levels=_read_levels(behaviour_severities),
            allowlist_hides_public=_read_flag("ALLOWLIST_HIDES_PUBLIC", allowlist_hides_public, False),
        )

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> RuleSettings:
        """The settings from the variables the function reads (``SETTING_VARIABLES``)."""
        return cls.from_config(
            environment.get("ALLOWLIST_PATTERNS"),
            trusted_layer_accounts=environment.get("TRUSTED_LAYER_ACCOUNTS"),
            behaviour_severities=environment.get("BEHAVIOUR_SEVERITIES"),
            allowlist_hides_public=environment.get("ALLOWLIST_HIDES_PUBLIC"),
        )

    def as_logged(self) -> dict[str, Any]:
        return {
            "allowlist": [entry.as_logged() for entry in self.allowlist],
            "trustedLayerAccounts": sorted(self.trusted_layer_accounts),
            "behaviourSeverities": dict(self.behaviour_levels),
            "allowlistHidesPublic": self.allowlist_hides_public,
        }


SETTING_VARIABLES = ("ALLOWLIST_PATTERNS", "TRUSTED_LAYER_ACCOUNTS", "BEHAVIOUR_SEVERITIES", "ALLOWLIST_HIDES_PUBLIC")
"""The environment variables the rule's settings come from."""


@dataclass(frozen=True)
class FunctionRef:
    """A Lambda function by account, Region and name; None where the record that named it does not say."""

    account: str | None
    region: str | None
    name: str


@dataclass(frozen=True)
class DetectorIdentity:
    """The detector's own function, as the Lambda runtime names it, and the canary that proves changes reach it.

    The canary is a function of the detector's own account and Region that a schedule changes through the canary
    role; without its name and that role, no record is a heartbeat.
    """

    function: FunctionRef
    canary_function_name: str | None = None
    canary_role_arn: str | None = None


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


def evaluate(
    record: Mapping[str, Any], settings: RuleSettings = RuleSettings(), detector: DetectorIdentity | None = None
) -> Verdict:
    """Decide whether one CloudTrail record is a finding, an allowlisted change, a canary heartbeat or out of scope.

    ``detector`` is the function doing the judging; without it no record is a change to the detector or a heartbeat.
    """
    event_source = record.get("eventSource")
    if event_source != LAMBDA_EVENT_SOURCE:
        return Verdict("ignored", f"event source {event_source!r} is not {LAMBDA_EVENT_SOURCE}")
    event_name = _text(record.get("eventName")) or ""
    # A name that is not <letters>[<API version>] is still a write the rule does not know: judged by its whole name.
    action = action_of(event_name) or event_name
    not_a_change = _not_a_change(record, action)
    if not_a_change is not None:
        return Verdict("ignored", f"{event_name!r} is {not_a_change}", action)
    principal = principal_identity(record.get("userIdentity"))
    kind_of_caller = caller_kind(record.get("userIdentity"), record)
    outcome = "attempted" if record.get("errorCode") else "performed"
    on_detector = detector is not None and any(_could_be(named, detector.function) for named in functions_named(record))
    if detector is not None and not on_detector and _is_canary_heartbeat(record, action, detector):
        reason = f"{action} on the canary by its schedule: changes reach the detector"
        return Verdict("heartbeat", reason, action, principal, caller_kind=kind_of_caller)
    on_canary = detector is not None and _names_canary(record, detector)
    graded = grade(record, action, settings.trusted_layer_accounts, detector=on_detector or on_canary)
    severity: str = graded.severity
    cap = settings.behaviour_levels.get(graded.behaviour)
    if cap == OFF:
        return Verdict("ignored", f"{action}: {graded.behaviour} is switched off by BEHAVIOUR_SEVERITIES", action)
    if cap is not None and SEVERITIES.index(cap) < SEVERITIES.index(graded.severity):
        severity = cap

    def verdict(kind: VerdictKind, reason: str, channel: str | None = None) -> Verdict:
        return Verdict(kind, reason, action, principal, channel, on_detector, graded, severity, kind_of_caller)

    what = f"{action} ({graded.behaviour}, {severity})"
    if on_detector:
        # Never allowlisted: the detector reads its allowlist from its own configuration, so the change that
        # rewrites the allowlist would otherwise be judged, and excused, by the rewritten one.
        who = principal or "a principal with no verifiable identity"
        return verdict("finding", f"{what} {outcome} on the detector itself by {who}: always reported")
    if principal is None:
        return verdict("finding", f"{what} by a principal with no verifiable identity")
    unmet_channels = []
    for entry in settings.allowlist:
        if not matches_pattern(principal, entry.principal_pattern):
            continue
        unmet = entry.unmet_conditions(record)
        if not unmet:
            if graded.public and not settings.allowlist_hides_public:
                # A pipeline's credentials are the ones most worth stealing: going public is never excused by default.
                reason = f"{what} by {principal}, allowlisted by {entry.text!r}, but public access is never allowlisted"
                return verdict("finding", reason)
            return verdict("allowlisted", f"{what} by {principal}, allowlisted by {entry.text!r}")
        unmet_channels.append(" and ".join(condition.unmet_in(record) for condition in unmet))
    if unmet_channels:
        # The principal is a trusted one used through another channel: say so first, it is what matters most.
        channel = " or ".join(unmet_channels)
        return verdict("finding", f"{principal} used without {channel}: {what} {outcome}, not allowlisted", channel)
    return verdict("finding", f"{what} {outcome} by {principal}, not allowlisted")


def _not_a_change(record: Mapping[str, Any], action: str) -> str | None:
    """Why a Lambda record is not a change to report (a read, a data event, a runtime call), or None if it is one.

    Decided by what AWS writes (readOnly, eventCategory); only a record without readOnly (the field is optional in
    CloudTrail's record contents) is judged by the operation's name, as Lambda's model names its reads.
    """
    read_only = record.get("readOnly")
    if read_only is True or (not isinstance(read_only, bool) and action.startswith(READ_PREFIXES)):
        return "a read"
    if record.get("eventCategory") == "Data":
        return "a data event"
    return NOT_MANAGEMENT_WRITES.get(action)


def _names_canary(record: Mapping[str, Any], detector: DetectorIdentity) -> bool:
    if detector.canary_function_name is None:
        return False
    canary = FunctionRef(detector.function.account, detector.function.region, detector.canary_function_name)
    return any(_could_be(named, canary) for named in functions_named(record))


def functions_named(record: Mapping[str, Any]) -> tuple[FunctionRef, ...]:
    """Every function a record may name: each reading of each reference in ``function_references``."""
    return tuple(function for readings in function_references(record) for function in readings)


def function_references(record: Mapping[str, Any]) -> tuple[tuple[FunctionRef, ...], ...]:
    """The readings of each reference to a function in a record, one tuple per field that names one.

    The fields: ``requestParameters.functionName``, ``requestParameters.resource`` (TagResource, UntagResource),
    ``requestParameters.resourceArn`` (PutResourcePolicy, DeleteResourcePolicy) and ``responseElements.functionArn``.
    Each is read with Lambda's own FunctionName grammar (see ``_resolve_function``); what a reference leaves out is
    the record's own account and Region.
    """
    account, region = _text(record.get("recipientAccountId")), _text(record.get("awsRegion"))
    references = []
    for container, key in _FUNCTION_REFERENCE_FIELDS:
        values = record.get(container)
        reference = _text(values.get(key)) if isinstance(values, Mapping) else None
        if reference is not None:
            references.append(_resolve_function(reference, account, region))
    return tuple(references)


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


# Lambda's FunctionName grammar, from botocore's Lambda model (shapes FunctionName, NamespacedFunctionName,
# FunctionArn, TaggableResource, PolicyResourceArn): [arn:PARTITION:lambda:][REGION:][ACCOUNT:][function:]NAME
# [:QUALIFIER], every part before the name optional. Split at the colons, the parts before the name are told apart
# by their shape; only where the name sits is ambiguous ("123456789012:x" is account 123456789012 and function x,
# or function 123456789012 and qualifier x), so every reading is kept. tests/unit/test_function_names.py checks these
# against the model's own patterns.
_PREFIX_PARTS = (
    (re.compile(r"arn"), re.compile(r"(aws[a-zA-Z-]*)?"), re.compile(r"lambda")),
    (re.compile(r"(?P<region>(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})"),),
    (re.compile(r"(?P<account>\d{12})"),),
    (re.compile(r"function"),),
)
_NAME = re.compile(r"[a-zA-Z0-9-_.]+")
_QUALIFIER = re.compile(r"\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+")
_FUNCTION_REFERENCE_FIELDS = (
    ("requestParameters", "functionName"),
    ("requestParameters", "resource"),
    ("requestParameters", "resourceArn"),
    ("responseElements", "functionArn"),
)


def _resolve_function(reference: str, account: str | None, region: str | None) -> tuple[FunctionRef, ...]:
    """Every function ``reference`` can name under Lambda's FunctionName grammar, the record's ``account`` and
    ``region`` standing in for the parts it leaves out.

    A reference the grammar does not admit (Lambda refuses the call) still names each of its parts, in an unknown
    account and Region, so that an odd spelling of the detector's name errs towards the detector.
    """
    parts = reference.split(":")
    readings = []
    # The name is the last part, or the one before a qualifier.
    for name_at in (len(parts) - 1, len(parts) - 2):
        if name_at < 0 or not _NAME.fullmatch(parts[name_at]):
            continue
        if name_at == len(parts) - 2 and not _QUALIFIER.fullmatch(parts[-1]):
            continue
        prefix = _read_prefix(parts[:name_at])
        if prefix is not None:
            named_account, named_region = prefix
            readings.append(FunctionRef(named_account or account, named_region or region, parts[name_at]))
    if readings:
        return tuple(readings)
    return tuple(FunctionRef(None, None, part) for part in parts if part)


def _read_prefix(parts: list[str]) -> tuple[str | None, str | None] | None:
    """The account and Region that the parts before a function's name give, or None if the grammar refuses them."""
    found: dict[str, str] = {}
    position = 0
    for group in _PREFIX_PARTS:
        segment = parts[position : position + len(group)]
        matches = [pattern.fullmatch(part) for pattern, part in zip(group, segment)]
        if len(segment) == len(group) and all(matches):
            for match in matches:
                found.update({key: value for key, value in match.groupdict().items() if value})  # type: ignore[union-attr]
            position += len(group)
    if position != len(parts):
        return None
    return found.get("account"), found.get("region")


def _could_be(named: FunctionRef, function: FunctionRef) -> bool:
    """Whether ``named`` is, or for all the record says could be, ``function``: an unknown account or Region
    never rules it out."""
    return (
        named.name == function.name
        and named.account in (None, function.account)
        and named.region in (None, function.region)
    )


def _is_canary_heartbeat(record: Mapping[str, Any], action: str, detector: DetectorIdentity) -> bool:
    """The scheduled canary call, and nothing that merely looks like it. Who called rests only on what CloudTrail
    writes (the role behind the session, invokedBy, sourceIPAddress), never on what a caller picks (session name,
    user agent); the request is checked only to bound what a heartbeat can stand for."""
    canary_name, canary_role = detector.canary_function_name, detector.canary_role_arn
    if canary_name is None or canary_role is None or action != CANARY_ACTION:
        return False
    # A failed call changed nothing: the canary may be gone or its role stripped, which a person must hear about.
    if "errorCode" in record or "errorMessage" in record:
        return False
    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping) or identity.get("type") != "AssumedRole":
        return False
    if principal_identity(identity) != canary_role:
        return False
    # EventBridge Scheduler calls with the role it assumed. CloudTrail names the AWS service that made a request in
    # userIdentity.invokedBy, and for a request from a service writes the service's DNS name, not an IP address, as
    # sourceIPAddress (CloudTrail User Guide: "CloudTrail userIdentity element", "CloudTrail record contents").
    # Should a real record lack either, the canary is reported as a finding and its heartbeat alarm fires: loud.
    if identity.get("invokedBy") != SCHEDULER_SERVICE or record.get("sourceIPAddress") != SCHEDULER_SERVICE:
        return False
    canary = FunctionRef(detector.function.account, detector.function.region, canary_name)
    if record.get("recipientAccountId") != canary.account or record.get("awsRegion") != canary.region:
        return False
    # The schedule sets the description and nothing else, so a heartbeat can never stand in for a real change.
    parameters = record.get("requestParameters")
    if not isinstance(parameters, Mapping) or not _CANARY_PARAMETERS >= set(parameters) >= {"functionName"}:
        return False
    # "arn:...:function:NAME" also reads as a function called "function" with qualifier NAME: one reading of each
    # reference must be the canary (any reading that is the detector was already reported above).
    references = function_references(record)
    return bool(references) and all(canary in readings for readings in references)
