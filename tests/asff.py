"""The tests' judge of a finding: what the local Security Hub (tests/support/strict_securityhub.py) refuses, plus what the
detector promises beyond Security Hub's rules: no control characters in any value, and a ``remoteip`` caller
always carries an IPv4 address."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from tests.support import strict_securityhub

CONTROL = re.compile("[\x00-\x1f\x7f]")


def finding_errors(finding: Mapping[str, Any], caller_account: str | None = None) -> list[str]:
    """Every way ``finding`` breaks a Security Hub rule or the detector's promises; empty when it keeps them all."""
    errors = strict_securityhub.finding_errors(finding, caller_account)
    errors += [f"{path} holds a control character" for path, text in _strings(finding) if CONTROL.search(text)]
    call = (finding.get("Action") or {}).get("AwsApiCallAction") or {}
    if call.get("CallerType") == "remoteip":
        address = (call.get("RemoteIpDetails") or {}).get("IpAddressV4")
        try:
            ipaddress.IPv4Address(address)
        except (ValueError, TypeError):
            errors.append(f"CallerType remoteip needs RemoteIpDetails.IpAddressV4, got {address!r}")
    return errors


def assert_valid_finding(finding: Mapping[str, Any], caller_account: str | None = None) -> None:
    errors = finding_errors(finding, caller_account)
    assert not errors, "invalid ASFF finding:\n- " + "\n- ".join(errors)


def _strings(value: Any, path: str = "finding") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key, f"{path} key")
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
