"""The benchmark's comparison of backtest with DuckDB's read_json and one SQL query (bench/duckdb_backtest.py): the
two must give the same verdict counts on the same trail, or the row fails."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench import duckdb_backtest
from bench import run as bench
from bench.backtest import backtest_counts, write_synthetic_trail

pytest.importorskip("duckdb", reason="DuckDB is the bench extra (pip install '.[bench]')")


def test_duckdb_counts_what_backtest_counts_and_each_verdict_occurs() -> None:
    comparison = duckdb_backtest.measure(records=3_000, repetitions=1, workers=1)
    assert comparison is not None
    assert comparison.counts_match and sum(comparison.duckdb.values()) == 3_000 and comparison.files == 3
    assert comparison.duckdb["finding"] > 0 and comparison.duckdb["allowlisted"] > 0
    assert comparison.duckdb["ignored"] > 2_500
    assert len(comparison.subject) == len(comparison.baseline) == 1 and comparison.ratio > 0
    assert "equal to backtest's: yes" in duckdb_backtest.details(comparison)[0]


def test_a_query_that_judges_differently_is_caught(tmp_path: Path) -> None:
    write_synthetic_trail(tmp_path, 2_000, seed=7)
    actions, _ = duckdb_backtest.default_rule_settings()
    other_allowlist = duckdb_backtest.duckdb_counts(tmp_path, actions, ["*NoSuchRole"])
    assert other_allowlist["allowlisted"] == 0
    assert other_allowlist != backtest_counts(tmp_path, workers=1)


def test_the_row_gives_the_paired_ratio_and_fails_when_the_counts_differ() -> None:
    counts = {"finding": 1, "allowlisted": 2, "ignored": 3, "invalid": 0}
    comparison = duckdb_backtest.DuckDBComparison(6, 1, 1, "x", counts, counts, (1.0, 2.0), (2.0, 2.0))
    row = bench.duckdb_row(comparison, 6)
    assert (row.ratio, row.target, row.ok) == ("0.75", "—", "info")  # median of the paired ratios 0.5 and 1.0
    assert bench.duckdb_row(replace(comparison, duckdb=counts | {"finding": 2}), 6).ok == "NO"
    assert bench.duckdb_row(None, 6).baseline == "not installed"
