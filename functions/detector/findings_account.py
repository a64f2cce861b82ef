"""Which account's Security Hub receives a finding: the detector's own, or the account where the change happened.

``FINDINGS_ACCOUNT=detector`` (the default) imports every finding into the detector's own account. On its default
product Security Hub accepts only findings whose ``AwsAccountId`` is the caller's account, so a finding about
another account's change is recorded under the detector's account.

``FINDINGS_ACCOUNT=source`` imports each finding into the account where the change happened (the record's
``recipientAccountId``), with that account's ``AwsAccountId`` and default product, through the role named
``FINDINGS_ROLE_NAME`` there. Always in the detector's partition and Region: that is where the detector's role may
import, and where the administrator's Security Hub aggregates from. The detector's own events are imported
directly, without a role.

Pure: no I/O. Deciding here keeps the finding builder and the publisher unaware of CloudTrail's fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from finding import DetectorAccount

FindingsMode = Literal["detector", "source"]
FINDINGS_MODES: tuple[FindingsMode, ...] = ("detector", "source")

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# IAM role names: up to 64 of these characters (the role's path is not part of the name).
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)


@dataclass(frozen=True)
class FindingsAccountSettings:
    """Where findings go (``FINDINGS_ACCOUNT``) and, in ``source`` mode, the role to assume there."""

    mode: FindingsMode = "detector"
    role_name: str | None = None

    @classmethod
    def from_config(cls, mode: str | None, role_name: str | None) -> FindingsAccountSettings:
        """Read ``FINDINGS_ACCOUNT`` (unset or empty: ``detector``) and ``FINDINGS_ROLE_NAME``.

        Raises ValueError on anything else: a detector that cannot tell where its findings go must not start.
        """
        chosen = (mode or "").strip() or "detector"
        if chosen == "detector":
            return cls()
        if chosen != "source":
            raise ValueError(f"FINDINGS_ACCOUNT must be one of {', '.join(FINDINGS_MODES)}, not {chosen[:40]!r}")
        role = (role_name or "").strip()
        if not _ROLE_NAME.fullmatch(role):
            raise ValueError(
                f"FINDINGS_ACCOUNT=source needs FINDINGS_ROLE_NAME, the name of the role that imports findings in "
                f"each account (1 to 64 letters, digits or +=,.@_-), not {role[:80]!r}"
            )
        return cls(mode="source", role_name=role)


@dataclass(frozen=True)
class FindingsDestination:
    """The account whose default product receives one finding, and how to reach it."""

    account: DetectorAccount
    role_arn: str | None = None
    """The role to assume in that account; None means the detector's own credentials."""
    reason: str | None = None
    """Why a ``source``-mode finding stays in the detector's account although the change happened elsewhere."""


def findings_destination(
    record: Mapping[str, Any], detector: DetectorAccount, settings: FindingsAccountSettings
) -> FindingsDestination:
    """Where the finding about ``record`` is imported."""
    if settings.mode == "detector":
        return FindingsDestination(detector)
    recipient = record.get("recipientAccountId")
    if recipient == detector.account_id:
        return FindingsDestination(detector)
    if not isinstance(recipient, str) or not _ACCOUNT_ID.fullmatch(recipient):
        # CloudTrail always names the account; a record without a usable one cannot be routed anywhere else, and
        # refusing it would lose the finding (a replay would fail the same way). It stays with the security team.
        shown = "missing" if recipient is None else repr(recipient)[:40]
        return FindingsDestination(
            detector, reason=f"recipientAccountId {shown} is not a 12-digit account ID; kept in the detector's account"
        )
    member = DetectorAccount(account_id=recipient, partition=detector.partition, region=detector.region)
    role_arn = f"arn:{detector.partition}:iam::{recipient}:role/{settings.role_name}"
    return FindingsDestination(member, role_arn=role_arn)
