"""``make demo``: every sample event through the built detector, on this machine, into a local Security Hub.

Starts moto as Security Hub and the function built by ``sam build`` under the Lambda Runtime Interface Emulator
(see ``tests.support.local_runtime``), invokes the function once per event in events/, reads the findings back with
GetFindings, and prints one row per event and the finding of the most telling event in full.

Exits non-zero when an event does not get its expected verdict, severity and behaviour
(events/expected-verdicts.csv), or when Security
Hub does not hold exactly the findings the function reported for the events that should produce one. Needs no
AWS account: every process gets dummy credentials, and everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambda_crud_detector.findings import fetch_findings
from lambda_crud_detector.terminal import printable_json
from tests.support.cases import INVALID, Case, load_cases, sample_settings
from tests.support.local_runtime import (
    BUILD_DIR,
    Invocation,
    LocalFunction,
    LocalRuntimeError,
    detector_function,
    local_security_hub,
)

FEATURED_EVENT = "spoofed-deployrole-session-name.json"
"""The event whose finding is shown in full: a session name chosen to look like the deployment role's."""
INVALID_EVENT_ERROR = "InvalidEventError"
"""The error type the handler raises for an event that is not an EventBridge-delivered CloudTrail record."""
OK, MISMATCH = "ok", "MISMATCH"
PRINCIPAL_WIDTH = 60
_ARN_PREFIX = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:(?=[0-9]{12}:)")


@dataclass(frozen=True)
class Outcome:
    """What the function made of one sample event."""

    case: Case
    invocation: Invocation

    @property
    def actual_verdict(self) -> str:
        error = self.invocation.error
        if error is None:
            return str(self.invocation.payload.get("verdict")) if isinstance(self.invocation.payload, dict) else "?"
        return INVALID if error.error_type == INVALID_EVENT_ERROR else f"error ({error.error_type})"

    @property
    def actual_grade(self) -> tuple[str, str]:
        """The severity and behaviour the function reported, empty where it reported none."""
        payload = self.invocation.payload
        if self.invocation.error is not None or not isinstance(payload, dict):
            return "", ""
        return str(payload.get("severity") or ""), str(payload.get("behaviour") or "")

    @property
    def as_expected(self) -> bool:
        if self.actual_verdict != self.case.expected_verdict:
            return False
        if self.case.expected_verdict != "finding":
            return True
        return self.actual_grade == (self.case.expected_severity, self.case.expected_behaviour)

    @property
    def finding_id(self) -> str | None:
        payload = self.invocation.payload
        return payload.get("findingId") if isinstance(payload, dict) and self.invocation.error is None else None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _argument_parser().parse_args(argv)
    # A SIGTERM (from `timeout`, CI) unwinds like Ctrl-C, so that the local services are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        passed = run_demo(arguments.build_dir, arguments.logs)
    except LocalRuntimeError as error:
        print(f"\nThe demo could not run: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"\nThe local Security Hub did not answer as expected: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; the local services are stopped.", file=sys.stderr)
        return 130
    print(f"\n==> {'Passed' if passed else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if passed else 1


def run_demo(build_dir: Path, show_all_logs: bool) -> bool:
    """Run every case; print the table, the featured finding and what went wrong. True if all is as expected."""
    cases = load_cases()
    progress("Starting a local Security Hub (moto)")
    with local_security_hub() as security_hub:
        progress(f"Security Hub at {security_hub.endpoint_url}, account {security_hub.account_id}")
        progress(f"Starting the built DetectorFunction ({build_dir}) under the Lambda Runtime Interface Emulator")
        # The allowlist the expected verdicts hold under, as `sam local invoke --env-vars env/local.json` sets it.
        with detector_function(security_hub.endpoint_url, build_dir, sample_settings()) as function:
            progress(f"Function at {function.invocations_url}")
            outcomes = invoke_all(function, cases)
        progress("Reading the findings back from Security Hub (GetFindings)")
        stored = {finding["Id"]: finding for finding in fetch_findings(security_hub.client(), {})}

    print()
    print(format_outcomes(outcomes, stored, show_all_logs))
    featured = featured_finding(outcomes, stored)
    if featured is not None:
        print(
            f"\n==> The finding for {featured[0]}, in full:\n{printable_json(json.dumps(featured[1], indent=2, ensure_ascii=False))}"
        )
    print_grade_counts(outcomes)
    verdicts_ok = all(outcome.as_expected for outcome in outcomes)
    findings_ok = print_finding_check(expected_finding_ids(outcomes), set(stored))
    print(f"\n{sum(outcome.as_expected for outcome in outcomes)} of {len(outcomes)} events got their expected verdict.")
    return verdicts_ok and findings_ok


def invoke_all(function: LocalFunction, cases: Sequence[Case]) -> list[Outcome]:
    progress(f"Invoking the function with {len(cases)} events from events/")
    outcomes = []
    for case in cases:
        outcome = Outcome(case, function.invoke(case.event))
        progress(f"  {case.file}: {outcome.actual_verdict}", prefix="   ")
        outcomes.append(outcome)
    return outcomes


def expected_finding_ids(outcomes: Sequence[Outcome]) -> set[str]:
    """The finding Ids the function reported for the events that should produce a finding."""
    return {
        outcome.finding_id
        for outcome in outcomes
        if outcome.case.expected_verdict == "finding" and outcome.finding_id is not None
    }


def print_grade_counts(outcomes: Sequence[Outcome]) -> None:
    """Findings by severity and by behaviour: what the graded rule raised over the samples."""
    graded = [outcome.actual_grade for outcome in outcomes if outcome.actual_verdict == "finding"]
    by_severity = Counter(severity for severity, _ in graded)
    by_behaviour = Counter(behaviour for _, behaviour in graded)
    print("\nFindings by severity: " + ", ".join(f"{level} {count}" for level, count in by_severity.most_common()))
    print("Findings by behaviour: " + ", ".join(f"{name} {count}" for name, count in by_behaviour.most_common()))


def print_finding_check(expected: set[str], stored: set[str]) -> bool:
    """Compare the findings Security Hub holds with the expected ones; print the difference. True if equal."""
    if expected == stored:
        print(f"\nSecurity Hub holds {len(stored)} findings: exactly the {len(expected)} expected.")
        return True
    print(f"\nSecurity Hub holds {len(stored)} findings, {len(expected)} were expected.")
    for finding_id in sorted(expected - stored):
        print(f"  missing:    {finding_id}")
    for finding_id in sorted(stored - expected):
        print(f"  unexpected: {finding_id}")
    return False


def featured_finding(outcomes: Sequence[Outcome], stored: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The stored finding of FEATURED_EVENT, or else of the first event that has one."""
    with_findings = [outcome for outcome in outcomes if outcome.finding_id in stored]
    with_findings.sort(key=lambda outcome: outcome.case.file != FEATURED_EVENT)
    if not with_findings:
        return None
    featured = with_findings[0]
    return (featured.case.file, stored[featured.finding_id]) if featured.finding_id is not None else None


# Table -------------------------------------------------------------------------------------------------------

HEADER = ("EVENT", "ACTION", "PRINCIPAL", "EXPECTED", "ACTUAL", "SEVERITY", "BEHAVIOUR", "")


def format_outcomes(outcomes: Sequence[Outcome], stored: Mapping[str, Any], show_all_logs: bool) -> str:
    """One row per event, and under it what came of it: the finding (severity, title, resource), the error, or
    the reason given. The logs follow for an event that went wrong, or for every event with ``show_all_logs``."""
    rows = [HEADER] + [_row(outcome) for outcome in outcomes]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    lines = [_join(HEADER, widths)]
    for outcome, row in zip(outcomes, rows[1:]):
        lines.append(_join(row, widths))
        lines += [f"    {detail}" for detail in _details(outcome, stored)]
        if show_all_logs or not outcome.as_expected:
            lines += [f"      | {line}" for line in outcome.invocation.logs]
    return "\n".join(lines)


def _row(outcome: Outcome) -> tuple[str, ...]:
    record = _record(outcome.case.event)
    return (
        outcome.case.file,
        str(record.get("eventName") or "-"),
        _principal(record),
        outcome.case.expected_verdict,
        outcome.actual_verdict,
        outcome.actual_grade[0] or "-",
        outcome.actual_grade[1] or "-",
        OK if outcome.as_expected else MISMATCH,
    )


def _details(outcome: Outcome, stored: Mapping[str, Any]) -> list[str]:
    error = outcome.invocation.error
    if error is not None:
        return [str(error)]
    payload = outcome.invocation.payload
    if not isinstance(payload, dict):
        return [f"unexpected response: {payload!r:.200}"]
    finding_id = outcome.finding_id
    if finding_id is None:
        return [f"reason: {payload.get('reason')}"]
    finding = stored.get(finding_id)
    if finding is None:
        return [f"finding {finding_id} is NOT in Security Hub"]
    resource = (finding.get("Resources") or [{}])[0]
    expected = f"{outcome.case.expected_severity} {outcome.case.expected_behaviour}"
    return [
        f"{finding.get('Severity', {}).get('Label')}  {finding.get('Title')}",
        *([] if outcome.as_expected else [f"expected: {expected}"]),
        f"resource: {resource.get('Type')} {resource.get('Id')}",
        f"reason: {payload.get('reason')}",
    ]


def _record(event: Any) -> Mapping[str, Any]:
    """The CloudTrail record of an event: its detail, or the event itself when it came without an envelope."""
    if not isinstance(event, Mapping):
        return {}
    detail = event.get("detail")
    return detail if isinstance(detail, Mapping) else event


def _principal(record: Mapping[str, Any]) -> str:
    """The caller as recorded, shortened to fit (ACCOUNT:RESOURCE, then cut in the middle): the lines under the row
    name it in full."""
    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping):
        return "-"
    caller = _ARN_PREFIX.sub("", str(identity.get("arn") or identity.get("invokedBy") or identity.get("type") or "-"))
    if len(caller) <= PRINCIPAL_WIDTH:
        return caller
    half = (PRINCIPAL_WIDTH - 1) // 2
    return f"{caller[:half]}…{caller[-half:]}"


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()


# Plumbing ----------------------------------------------------------------------------------------------------


def progress(message: str, prefix: str = "==>") -> None:
    print(f"{prefix} {message}", flush=True)


def _interrupt(signal_number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.demo",
        description="Run every sample event through the built detector, on this machine, into a local Security Hub.",
    )
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR, help=f"sam build's output (default: {BUILD_DIR})")
    parser.add_argument("--logs", action="store_true", help="show the logs of every invocation, not only of wrong ones")
    return parser


if __name__ == "__main__":
    sys.exit(main())
