"""Backtest against what a team would reach for instead: DuckDB's ``read_json`` and one SQL query, on the same trail.

The query below is the rule as an analyst would write it in SQL: Lambda records, every write (not a read by
``readOnly`` or by a Get/List name, not an invocation or a runtime's own call) with its API-version suffix stripped, the principal (the session issuer's role for an assumed role, else the ARN), the
allowlist as globs. It is simpler than the rule (no channel conditions, no ARN-field matching, no recovery of a
role from a session ARN without an issuer), which is enough for the synthetic trail of ``bench.backtest`` and the
function's default settings; before timing, its verdict counts are checked against backtest's, so that the two
sides are known to do the same work. DuckDB is an optional extra (``pip install '.[bench]'``, installed by
requirements-dev.txt); without it the row says so and the rest of the benchmark runs.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.backtest import backtest_counts, in_turns, write_synthetic_trail

# DuckDB infers the records' structure from the files (read_json's default), as a team's first query would.
VERDICT_QUERY = """
WITH calls AS (
    SELECT
        r.eventSource AS source,
        r.eventID AS event_id,
        r.eventTime AS event_time,
        regexp_extract(r.eventName, '^([A-Za-z]+?)([0-9]{8}(v[0-9]+)?)?$', 1) AS action,
        r.readOnly AS read_only,
        CASE WHEN r.userIdentity.arn LIKE 'arn:%:sts::%:assumed-role/%'
             THEN r.userIdentity.sessionContext.sessionIssuer.arn
             ELSE r.userIdentity.arn END AS principal
    FROM (SELECT unnest(Records) AS r FROM read_json($files, maximum_object_size = 1073741824))
)
SELECT
    CASE
        WHEN source IS DISTINCT FROM 'lambda.amazonaws.com' THEN 'ignored'
        WHEN event_id IS NULL OR event_time IS NULL THEN 'invalid'
        WHEN read_only IS TRUE OR starts_with(action, 'Get') OR starts_with(action, 'List') THEN 'ignored'
        WHEN list_contains($not_writes, action) THEN 'ignored'
        WHEN list_bool_or(list_transform($allowlist, lambda pattern: principal GLOB pattern)) THEN 'allowlisted'
        ELSE 'finding'
    END AS verdict,
    count(*) AS records
FROM calls
GROUP BY verdict
"""
VERDICT_KINDS = ("finding", "allowlisted", "ignored", "invalid")


def duckdb_version() -> str | None:
    """DuckDB's version, or None when the optional extra is not installed."""
    try:
        import duckdb
    except ImportError:
        return None
    return str(duckdb.__version__)


def duckdb_counts(root: Path, not_writes: Sequence[str], allowlist: Sequence[str]) -> dict[str, int]:
    """The verdict counts of VERDICT_QUERY over every gzip log file under ``root``, in a new DuckDB connection."""
    import duckdb

    parameters = {"files": str(root / "**" / "*.json.gz"), "not_writes": list(not_writes), "allowlist": list(allowlist)}
    # No progress bar: DuckDB draws one on the terminal for queries longer than two seconds.
    with duckdb.connect() as connection:
        connection.execute("SET enable_progress_bar = false")
        rows = connection.execute(VERDICT_QUERY, parameters).fetchall()
    return {kind: 0 for kind in VERDICT_KINDS} | {str(verdict): int(count) for verdict, count in rows}


def default_rule_settings() -> tuple[list[str], list[str]]:
    """The operations the rule never reports (invocations, a runtime's own calls) and the allowlist the function
    uses by default, as the query's parameters."""
    import lambda_crud_detector  # noqa: F401 (puts the function's modules on the path)
    from grading import NOT_MANAGEMENT_WRITES
    from rule import DEFAULT_ALLOWLIST_PATTERNS

    if any(pattern.startswith("arn:") for pattern in DEFAULT_ALLOWLIST_PATTERNS):
        raise ValueError("the query matches the allowlist as plain globs, not ARN field by field")
    return sorted(NOT_MANAGEMENT_WRITES), list(DEFAULT_ALLOWLIST_PATTERNS)


@dataclass(frozen=True)
class DuckDBComparison:
    records: int
    files: int
    workers: int
    version: str
    backtest: Mapping[str, int]
    duckdb: Mapping[str, int]
    subject: tuple[float, ...]
    """Backtest's wall seconds per repetition."""
    baseline: tuple[float, ...]
    """DuckDB's wall seconds, taken in turns with the subject."""

    @property
    def counts_match(self) -> bool:
        return dict(self.backtest) == dict(self.duckdb)

    @property
    def ratio(self) -> float:
        return statistics.median(s / b for s, b in zip(self.subject, self.baseline, strict=True))


def measure(
    records: int, repetitions: int, workers: int | None = None, seed: int = 20261201
) -> DuckDBComparison | None:
    """Backtest and DuckDB in turns on one synthetic trail; ``workers`` defaults to backtest's own default. None
    when DuckDB is not installed."""
    from lambda_crud_detector.backtest import DEFAULT_WORKERS

    version = duckdb_version()
    if version is None:
        return None
    workers = workers or DEFAULT_WORKERS
    not_writes, allowlist = default_rule_settings()
    with tempfile.TemporaryDirectory(prefix="duckdb-bench-") as scratch:
        root = Path(scratch)
        files = len(write_synthetic_trail(root, records, seed))
        backtest, duckdb = backtest_counts(root, workers), duckdb_counts(root, not_writes, allowlist)
        subject, baseline = in_turns(
            lambda: backtest_counts(root, workers), lambda: duckdb_counts(root, not_writes, allowlist), repetitions
        )
    return DuckDBComparison(records, files, workers, version, backtest, duckdb, subject, baseline)


def details(comparison: DuckDBComparison | None) -> list[str]:
    if comparison is None:
        return ["Backtest against DuckDB: skipped, DuckDB is not installed (pip install '.[bench]')."]
    counts = ", ".join(f"{kind} {count:,}" for kind, count in comparison.duckdb.items())
    return [
        f"Backtest against DuckDB {comparison.version} read_json + one SQL query (bench/duckdb_backtest.py):"
        f" {comparison.records:,} records in {comparison.files} gzip files, backtest with {comparison.workers}"
        f" worker processes, DuckDB with its default threads; DuckDB's counts {counts}; equal to backtest's:"
        f" {'yes' if comparison.counts_match else 'NO'}",
        f"  backtest s: {', '.join(f'{value:.2f}' for value in comparison.subject)}",
        f"  DuckDB s: {', '.join(f'{value:.2f}' for value in comparison.baseline)}",
    ]
