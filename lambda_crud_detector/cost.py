"""What running the detector costs a month: one formula, used by backtest and by docs/cost.md's table.

    python -m lambda_crud_detector.cost [--table]

Prices are US East (N. Virginia) list prices, each with its source and the date it was read; other Regions
differ by a few per cent. Free tiers that last (Lambda's, CloudWatch's, Scheduler's, Security Hub CSPM's 10,000
finding ingestions per account and Region) are applied; the 12-month free tier of new accounts is not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

READ_ON = "2026-12-06"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


LAMBDA_REQUEST = Price(0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/")
LAMBDA_ARM_GB_SECOND = Price(0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/")
EVENTBRIDGE_FORWARDED_EVENT = Price(
    1.00 / 1e6,
    "event sent to an event bus in another account or Region",
    "https://aws.amazon.com/eventbridge/pricing/",
)
SQS_REQUEST = Price(0.40 / 1e6, "request (standard queue)", "https://aws.amazon.com/sqs/pricing/")
ALARM = Price(0.10, "standard-resolution alarm metric a month", "https://aws.amazon.com/cloudwatch/pricing/")
CUSTOM_METRIC = Price(0.30, "custom metric a month", "https://aws.amazon.com/cloudwatch/pricing/")
LOG_INGESTION = Price(0.50 / 1e9, "byte of standard log ingestion", "https://aws.amazon.com/cloudwatch/pricing/")
SECURITY_HUB_INGESTION = Price(
    0.00003, "finding ingestion event beyond the free 10,000", "https://aws.amazon.com/security-hub/cspm/pricing/"
)
SCHEDULER_INVOCATION = Price(
    1.00 / 1e6, "scheduled invocation beyond 14 million", "https://aws.amazon.com/eventbridge/pricing/"
)

SECURITY_HUB_FREE_INGESTIONS = 10_000
"""Finding ingestion events free per account and Region each month."""

# Measured on the built function under the local Lambda runtime emulator (docs/cost.md): billed 9 ms warm (median,
# 90th percentile 16 ms) and 926 ms cold, importing into a local Security Hub; 1,206 bytes of log a warm invocation,
# 2,967 a cold one. A real Security Hub call adds its network round trip and some invocations start cold: 100 ms
# and 1,500 bytes leave room for both.
BILLED_MS_PER_INVOCATION = 100.0
MEMORY_GB = 256 / 1024
"""The function's MemorySize in template.yaml: Lambda bills the configured memory, not the memory used."""
LOG_BYTES_PER_INVOCATION = 1_500
DETECTOR_ALARMS = 14
"""The detector's alarm metrics with the defaults (canary on, no topics). CloudWatch prices an alarm per metric it
reads, so each metric of a metric-math alarm is counted: events lost (3: dropped, destination failures, dead-letter
failures), events waiting (3: the rule's failed invocations, the two queues), the detector failing (2: errors,
throttles), the detector attacked (2: implausible event times, folded calls), the heartbeat (1), and the tamper
alerts' delivery (3: one per rule)."""
FORWARDER_ALARMS = 1
DETECTOR_CUSTOM_METRICS = 4
"""Findings, Allowlisted, CanaryHeartbeat and ColdStart: the metrics a healthy detector emits every month."""
CANARY_INVOCATIONS = 24 * 30
"""The canary's hourly change: one detector invocation (a heartbeat, no finding) an hour."""


@dataclass(frozen=True)
class Usage:
    """A month of watched Lambda writes, for one detector."""

    writes: float
    """Lambda write calls the event pattern delivers (findings, allowlisted calls, canary excluded)."""
    findings: float
    """Writes that become findings."""
    forwarded_writes: float = 0.0
    """Writes made outside the detector's own account and Region, which a forwarder sends to the central bus."""
    forwarders: int = 0
    """Forwarder stacks: one per watched account and Region."""


def monthly_cost(usage: Usage) -> dict[str, float]:
    """Each service's monthly cost, in US dollars, for ``usage``."""
    invocations = usage.writes + CANARY_INVOCATIONS
    gb_seconds = invocations * BILLED_MS_PER_INVOCATION / 1000 * MEMORY_GB
    return {
        "Lambda requests": invocations * LAMBDA_REQUEST.usd,
        "Lambda duration": gb_seconds * LAMBDA_ARM_GB_SECOND.usd,
        "EventBridge forwarding": usage.forwarded_writes * EVENTBRIDGE_FORWARDED_EVENT.usd,
        # Only failures reach the queues: none in a healthy month.
        "SQS": 0.0 * SQS_REQUEST.usd,
        "CloudWatch alarms": (DETECTOR_ALARMS + FORWARDER_ALARMS * usage.forwarders) * ALARM.usd,
        "CloudWatch metrics": DETECTOR_CUSTOM_METRICS * CUSTOM_METRIC.usd,
        "CloudWatch Logs ingestion": invocations * LOG_BYTES_PER_INVOCATION * LOG_INGESTION.usd,
        # With FindingsAccount=detector every finding is imported into one account and Region.
        "Security Hub finding ingestion": max(0.0, usage.findings - SECURITY_HUB_FREE_INGESTIONS)
        * SECURITY_HUB_INGESTION.usd,
        # 720 a month, far inside the 14 million free.
        "EventBridge Scheduler": 0.0 * SCHEDULER_INVOCATION.usd,
    }


def format_cost(costs: dict[str, float]) -> str:
    """One line per service and the total, aligned."""
    width = max(len(name) for name in costs)
    lines = [f"  {name:<{width}}  ${amount:>9,.2f}" for name, amount in costs.items()]
    lines.append(f"  {'Total':<{width}}  ${sum(costs.values()):>9,.2f}")
    return "\n".join(lines)


# docs/cost.md's worked example: every enabled Region of each account watched, with these volumes.
EXAMPLE_REGIONS = 17
"""The Regions enabled by default in a commercial account."""
EXAMPLE_WRITES_PER_ACCOUNT = 3_000
"""Lambda writes an account makes a month (a team deploying a few functions daily through a pipeline)."""
EXAMPLE_FINDING_SHARE = 0.2
"""Of them, the share not allowlisted (people's changes, after the pipeline is allowlisted)."""


def example_usage(accounts: int) -> Usage:
    writes = accounts * EXAMPLE_WRITES_PER_ACCOUNT
    return Usage(
        writes=writes,
        findings=writes * EXAMPLE_FINDING_SHARE,
        # Every write but those in the detector's own account and Region travels through a forwarder.
        forwarded_writes=writes * (1 - 1 / (accounts * EXAMPLE_REGIONS)),
        forwarders=accounts * EXAMPLE_REGIONS,
    )


def example_table(account_counts: Sequence[int] = (1, 10, 100)) -> str:
    """docs/cost.md's table: each service's monthly cost for 1, 10 and 100 accounts."""
    costs = [monthly_cost(example_usage(accounts)) for accounts in account_counts]
    header = (
        "| Service | " + " | ".join(f"{accounts} account{'s' * (accounts > 1)}" for accounts in account_counts) + " |"
    )
    rule = "|---|" + "---:|" * len(account_counts)
    rows = [f"| {name} | " + " | ".join(f"${cost[name]:,.2f}" for cost in costs) + " |" for name in costs[0]]
    total = "| **Total** | " + " | ".join(f"**${sum(cost.values()):,.2f}**" for cost in costs) + " |"
    return "\n".join([header, rule, *rows, total])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_crud_detector.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=float, default=0, help="Lambda writes a month the detector judges")
    parser.add_argument("--findings", type=float, default=0, help="of them, the writes that become findings")
    parser.add_argument("--table", action="store_true", help="print docs/cost.md's table for 1, 10, 100 accounts")
    arguments = parser.parse_args(argv)
    if arguments.table:
        print(example_table())
    else:
        print(format_cost(monthly_cost(Usage(arguments.writes, arguments.findings))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
