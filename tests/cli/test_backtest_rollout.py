"""backtest's closing advice: a `sam deploy` line that carries the suggested allowlist as it is, and a cost."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from samcli.cli.types import CfnParameterOverridesType

from lambda_crud_detector import backtest, cost
from tests.cli.test_backtest import ACCOUNT, role_calls, run_backtest, write_log
from tests.support.cloudformation import TEMPLATE_PATH, load_template

ALLOWED_PATTERN = re.compile(load_template(TEMPLATE_PATH)["Parameters"]["AllowlistPatterns"]["AllowedPattern"])


def parsed_by_sam(command_line: str) -> dict[str, str]:
    """What `sam deploy` makes of ``command_line``'s --parameter-overrides, after a POSIX shell split it."""
    words = shlex.split(command_line)
    value = words[words.index("--parameter-overrides") + 1]
    return CfnParameterOverridesType().convert((value,), None, None)


@pytest.fixture
def pipeline_trail(tmp_path: Path) -> Path:
    """Two pipeline roles, each through its own channel, and a person's change."""
    deploys = role_calls("PaymentsPipeline", 6, invokedBy="cloudformation.amazonaws.com")
    github = role_calls("GitHubDeploy", 5, invokedBy="codepipeline.amazonaws.com")
    for record in github:
        record["eventID"] += "-gh"
    write_log(tmp_path / "trail.json.gz", deploys + github + role_calls("Developer", 1))
    return tmp_path


def test_the_printed_sam_deploy_line_carries_every_suggested_entry_intact(pipeline_trail: Path) -> None:
    status, text, _ = run_backtest(["--path", str(pipeline_trail), "--no-progress"])

    assert status == 0
    [line] = [line.strip() for line in text.splitlines() if line.strip().startswith("sam deploy --parameter-overrides")]
    value = parsed_by_sam(line)["AllowlistPatterns"]
    assert value.split(",") == [
        f"arn:aws:iam::{ACCOUNT}:role/PaymentsPipeline;invokedBy=cloudformation.amazonaws.com",
        f"arn:aws:iam::{ACCOUNT}:role/GitHubDeploy;invokedBy=codepipeline.amazonaws.com",
    ]
    # CloudFormation accepts it as the parameter's value, and the detector allowlists exactly those calls.
    assert ALLOWED_PATTERN.fullmatch(value)
    _, json_text, _ = run_backtest(["--path", str(pipeline_trail), "--no-progress", "--json", "--allowlist", value])
    assert '"allowlisted": 11' in json_text and '"finding": 1' in json_text


@pytest.mark.parametrize(
    "entries",
    [
        ["*DeployRole"],
        ["arn:aws:iam::*:role/ci-*;invokedBy=cloudformation.amazonaws.com", "arn:aws:iam::111122223333:role/B"],
        ["arn:aws:iam::111122223333:role/it's;sourceIp=10.0.0.0/8"],
    ],
)
def test_entries_with_globs_semicolons_and_quotes_survive_the_shell_and_sam(entries: list[str]) -> None:
    line = backtest.allowlist_override([{"entry": entry} for entry in entries])
    assert line is not None
    assert parsed_by_sam(line) == {"AllowlistPatterns": ",".join(entries)}


def test_no_suggestion_prints_no_deploy_line() -> None:
    assert backtest.allowlist_override([]) is None


def test_the_summary_ends_with_a_monthly_cost_of_this_history(pipeline_trail: Path) -> None:
    # A 10-day window, so the month is 3.04 times what was read.
    arguments = ["--path", str(pipeline_trail), "--no-progress", "--since", "2026-11-01", "--until", "2026-11-11"]
    status, text, _ = run_backtest(arguments)

    assert status == 0
    assert "(10.0 days read: 12 invocations, 12 findings;" in text
    expected = cost.monthly_cost(cost.Usage(writes=12 * 30.4375 / 10, findings=12 * 30.4375 / 10))
    assert cost.format_cost(expected) in text
    assert text.rstrip().splitlines()[-1].strip().startswith("Total")


def test_history_days_falls_back_on_the_findings_span() -> None:
    findings = [{"eventTime": "2026-11-01T00:00:00Z"}, {"eventTime": "2026-11-08T00:00:00Z"}]
    assert backtest.history_days(None, backtest.datetime.now(backtest.timezone.utc), findings) == 7.0
    assert backtest.history_days(None, backtest.datetime.now(backtest.timezone.utc), findings[:1]) == 1.0


def test_security_hub_charges_only_beyond_the_free_ingestions() -> None:
    free = cost.monthly_cost(cost.Usage(writes=10_000, findings=10_000))["Security Hub finding ingestion"]
    paid = cost.monthly_cost(cost.Usage(writes=20_000, findings=20_000))["Security Hub finding ingestion"]
    assert free == 0.0
    assert paid == pytest.approx(10_000 * 0.00003)


def test_lambda_cost_grows_with_writes_and_the_canary_costs_even_an_idle_month() -> None:
    idle = cost.monthly_cost(cost.Usage(writes=0, findings=0))
    busy = cost.monthly_cost(cost.Usage(writes=1_000_000, findings=0))
    assert 0 < idle["Lambda requests"] < busy["Lambda requests"]
    assert busy["Lambda requests"] == pytest.approx((1_000_000 + cost.CANARY_INVOCATIONS) * 0.20 / 1e6)


def test_the_cost_page_table_is_the_one_the_formula_gives() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text(encoding="utf-8")
    assert cost.example_table() in page, (
        "docs/cost.md's table is stale: paste `python -m lambda_crud_detector.cost --table`"
    )
