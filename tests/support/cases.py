"""The sample events in ``events/`` and the verdict each must get: the one list the tests and the demo share."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = PROJECT_ROOT / "events"
EXPECTATIONS_FILE = EVENTS_DIR / "expected-verdicts.csv"
LOCAL_ENVIRONMENT_FILE = PROJECT_ROOT / "env" / "local.json"
"""`sam local invoke --env-vars`: the settings the expected verdicts hold under (see events/README.md)."""
SAMPLE_SETTING_VARIABLES = (
    "ALLOWLIST_PATTERNS",
    "TRUSTED_LAYER_ACCOUNTS",
    "BEHAVIOUR_SEVERITIES",
    "ALLOWLIST_HIDES_PUBLIC",
)
INVALID = "invalid"
"""The expected verdict of an event the handler must refuse with its invalid-event error."""


@dataclass(frozen=True)
class Case:
    file: str
    expected_verdict: str
    why: str
    event: Any
    expected_severity: str = ""
    """The finding's severity (CRITICAL ... INFORMATIONAL), for an event whose verdict is a finding."""
    expected_behaviour: str = ""
    """The behaviour the finding is named after (docs/detections.md), for an event whose verdict is a finding."""

    @property
    def path(self) -> Path:
        return EVENTS_DIR / self.file


def load_cases(events_dir: Path = EVENTS_DIR) -> list[Case]:
    """Every sample event with its expected verdict; an event without an expectation is an error."""
    with (events_dir / EXPECTATIONS_FILE.name).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cases = [
        Case(
            row["event"],
            row["verdict"],
            row["why"],
            json.loads((events_dir / row["event"]).read_text("utf-8")),
            row.get("severity") or "",
            row.get("behaviour") or "",
        )
        for row in rows
    ]
    listed = {case.file for case in cases}
    unlisted = sorted(path.name for path in events_dir.glob("*.json") if path.name not in listed)
    if unlisted:
        raise ValueError(f"events without an expected verdict in {EXPECTATIONS_FILE.name}: {', '.join(unlisted)}")
    return cases


def sample_settings() -> dict[str, str]:
    """The rule's settings the expected verdicts hold under: the allowlist and grading settings of env/local.json, the
    one file `sam local invoke`, the demo and the tests all read them from."""
    variables = json.loads(LOCAL_ENVIRONMENT_FILE.read_text("utf-8"))["DetectorFunction"]
    return {name: variables[name] for name in SAMPLE_SETTING_VARIABLES}
