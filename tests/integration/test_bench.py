"""The benchmarks run and report every figure, in a tiny configuration. Nothing here asserts on a timing: the
ratios are checked through the public functions with known inputs, and measured figures only for being there.

The function under test is assembled from this environment (the detector's sources plus boto3, Powertools and
their dependencies), so these tests need no ``sam build``.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

from bench import package as bench_package
from bench import pattern as bench_pattern
from bench import run as bench

TINY = bench.BenchSettings(
    cold_start_runs=1,
    warm_invocations=24,
    warm_rounds=2,
    memory_invocations=30,
    memory_warmup=12,
    pattern_events=200,
    backtest_records=2_000,
    backtest_repetitions=1,
    flood_calls=400,
)
EVERY_ROW = (
    "cold start: import handler module",
    "cold start: the same without bytecode",
    "cold start to an allowlisted verdict",
    "cold start to a finding",
    "warm invocation: CPU per event",
    "peak RSS over 30 warm invocations",
    "RSS growth, invocation 12 → 30",
    "package size, unzipped",
    "package size, zipped (deflate)",
    "invocations per 1,000 Lambda write events",
    "wasted (matched, out of scope) per 1,000",
    "missed (in scope, not matched) per 1,000",
    "backtest, 2,000-record gzip trail (wall)",
    "backtest vs DuckDB read_json, 2,000 records (wall)",
    "flood: imports for 400 denied calls in 10 min",
    "real finding lands after (simulated)",
)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A function package like the one ``sam build`` makes, copied from this environment."""
    root = tmp_path_factory.mktemp("artifact")
    site_packages = Path(str(distribution("boto3").locate_file(""))).resolve()
    members = bench_package.distribution_closure(site_packages, ["boto3", "aws-lambda-powertools"])
    for path in bench_package.distribution_files(site_packages, members):
        target = root / path.relative_to(site_packages)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for source in bench.DETECTOR_SOURCES.glob("*.py"):
        shutil.copy2(source, root / source.name)
    return root


@pytest.fixture(scope="module")
def function() -> dict[str, Any]:
    return bench.detector_function()


def assert_paired_figures_present(paired: bench.Paired, samples: int) -> None:
    assert len(paired.subject) == len(paired.baseline) == samples
    assert all(value > 0 for value in (*paired.subject, *paired.baseline))


def test_harness_bench_paired_ratio_is_the_median_of_the_ratios_of_samples_taken_together() -> None:
    # Per pair 2.0, 2.5 and 4.0: the median of those, not the ratio of the medians (3 / 1 = 3.0) nor of the
    # minima (2 / 0.75 = 2.67).
    paired = bench.Paired(subject=(2.0, 5.0, 3.0), baseline=(1.0, 2.0, 0.75))
    assert paired.ratio == 2.5
    assert paired.summary() == "ratio: median of paired 2.50, of medians 3.00, of minima 2.67"
    with pytest.raises(ValueError):
        bench.Paired(subject=(1.0,), baseline=(1.0, 2.0))


def test_harness_bench_comparison_row_shows_medians_the_paired_ratio_and_the_target() -> None:
    paired = bench.Paired(subject=(0.002, 0.004, 0.003), baseline=(0.001, 0.001, 0.001))
    assert bench.comparison_row("m", paired, bench.ms, 1.5) == bench.Row("m", "3 ms", "1 ms", "3.00", "≤ 1.50", "NO")
    assert bench.comparison_row("m", paired, bench.ms, 3.0).ok == "yes"
    assert bench.comparison_row("m", paired, bench.ms)[3:] == ("3.00", "—", "info")


def test_harness_bench_lambda_environment_sees_only_the_artifact_and_no_real_aws(artifact: Path) -> None:
    environment = bench.lambda_environment(artifact)
    assert environment["PYTHONPATH"] == str(artifact)
    assert environment["LAMBDA_TASK_ROOT"] == str(artifact)
    assert environment["POWERTOOLS_SERVICE_NAME"] == "lambda-crud-detector"
    assert environment["BEHAVIOUR_SEVERITIES"] == "" and environment["ALLOWLIST_HIDES_PUBLIC"] == "false"
    assert environment["AWS_SHARED_CREDENTIALS_FILE"] == environment["AWS_CONFIG_FILE"] == "/dev/null"
    assert not any(key in environment for key in ("AWS_PROFILE", "VIRTUAL_ENV", "PYTHONHOME"))


@pytest.mark.slow
def test_harness_bench_cold_start_figures(artifact: Path, function: dict[str, Any], tmp_path: Path) -> None:
    runs = 2
    cold = bench.measure_cold_start(artifact, function, runs, tmp_path)

    subjects = (
        bench.DETECTOR,
        bench.DETECTOR_FROM_SOURCE,
        bench.DETECTOR_TO_ALLOWLISTED,
        bench.DETECTOR_TO_FINDING,
    )
    assert set(cold.timings) == {bench.BASELINE, *subjects}
    for subject in subjects:
        assert_paired_figures_present(cold.compared(subject), runs)
        assert all(cpu > 0 for cpu in cold.seconds(subject, cpu=True))
    rows, details = bench.cold_start_section(cold)
    assert [row.measure for row in rows] == list(EVERY_ROW[:4])
    assert rows[0].target == rows[3].target == "≤ 0.65" and rows[2].target == "≤ 0.30"
    assert all(row.ok in ("yes", "NO") for row in (rows[0], rows[2], rows[3]))
    assert rows[1].ok == "info"
    # The baseline ran from a copy without bytecode, the detector from the artifact as given.
    assert not list((tmp_path / "source").rglob("*.pyc"))
    assert all(any(line.strip().startswith(name) for line in details) for name in cold.timings)


def test_harness_bench_an_import_that_fails_says_why(artifact: Path) -> None:
    with pytest.raises(bench.BenchProcessError, match="no_such_module_anywhere"):
        bench.time_import("import no_such_module_anywhere", artifact)


def test_harness_bench_a_worker_that_fails_says_why(artifact: Path, function: dict[str, Any]) -> None:
    with pytest.raises(bench.BenchProcessError, match="unknown mode 'no-such-mode'"):
        bench.run_worker("no-such-mode", bench.worker_job(function), artifact)


@pytest.mark.slow
def test_harness_bench_warm_cpu_figures(artifact: Path, function: dict[str, Any]) -> None:
    warm = bench.measure_warm_cpu(artifact, function, TINY)

    assert_paired_figures_present(warm.per_invocation, TINY.warm_rounds)
    assert warm.invocations_each >= TINY.warm_invocations
    assert warm.invocations_each % warm.mix_size == 0
    # Both handlers reached the (local) Security Hub, equally often: they sent the same findings.
    calls = warm.security_hub_calls
    assert calls["detector"] == calls["baseline"] > 0
    rows, details = bench.warm_cpu_section(warm)
    assert [row.measure for row in rows] == [EVERY_ROW[4]] and rows[0].target == "≤ 1.50"
    assert f"detector {calls['detector']:,}" in details[0]


@pytest.mark.slow
def test_harness_bench_memory_figures(artifact: Path, function: dict[str, Any]) -> None:
    memory = bench.measure_memory(artifact, function, TINY)

    assert set(memory) == {"detector", "baseline"}
    for use in memory.values():
        assert 0 < use.rss_after_warmup_kib <= use.peak_rss_kib
        assert 0 < use.rss_end_kib <= use.peak_rss_kib
        assert use.security_hub_calls > 0
    assert memory["detector"].security_hub_calls == memory["baseline"].security_hub_calls
    rows, _ = bench.memory_section(memory, TINY)
    assert [row.measure for row in rows] == list(EVERY_ROW[5:7])


def test_harness_bench_memory_rows_compare_peaks_and_flag_growth() -> None:
    baseline = bench.MemoryUse(rss_after_warmup_kib=900, rss_end_kib=900, peak_rss_kib=1024, security_hub_calls=5)
    steady = bench.MemoryUse(rss_after_warmup_kib=1800, rss_end_kib=1810, peak_rss_kib=2048, security_hub_calls=5)
    leaking = bench.MemoryUse(rss_after_warmup_kib=1800, rss_end_kib=3000, peak_rss_kib=3072, security_hub_calls=5)

    peak, growth = bench.memory_section({"detector": steady, "baseline": baseline}, TINY).rows
    assert (peak.subject, peak.baseline, peak.ratio, peak.ok) == ("2.0 MiB", "1.0 MiB", "2.00", "info")
    assert (growth.subject, growth.baseline, growth.ok) == ("+10 KiB", "+0 KiB", "yes")
    _, growth = bench.memory_section({"detector": leaking, "baseline": baseline}, TINY).rows
    assert (growth.subject, growth.ok) == ("+1,200 KiB", "NO")


def fake_distribution(root: Path, name: str, requires: list[str], files: dict[str, bytes]) -> None:
    dist_info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir()
    metadata = "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{metadata}")
    records = [*files, f"{dist_info.name}/METADATA", f"{dist_info.name}/RECORD"]
    (dist_info / "RECORD").write_text("".join(f"{record},,\n" for record in records))
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)


def test_harness_bench_package_size_compares_with_the_sdk_and_its_dependencies_only(tmp_path: Path) -> None:
    boto3_requires = ["botocore<2", 'awscrt==0.1; extra == "crt"', 'oldshim; python_version < "3.0"']
    fake_distribution(tmp_path, "boto3", boto3_requires, {"boto3/__init__.py": b"b" * 300})
    fake_distribution(tmp_path, "botocore", ["jmespath (>=0.7.1,<2.0.0)"], {"botocore/__init__.py": b"c" * 500})
    fake_distribution(tmp_path, "jmespath", [], {"jmespath/__init__.py": b"j" * 100})
    fake_distribution(tmp_path, "awscrt", [], {"awscrt/__init__.py": b"a" * 700})
    fake_distribution(tmp_path, "oldshim", [], {"oldshim.py": b"o" * 700})
    powertools_files = {"aws_lambda_powertools/__init__.py": b"p" * 900}
    fake_distribution(tmp_path, "aws-lambda-powertools", ["jmespath"], powertools_files)
    (tmp_path / "app.py").write_bytes(b"import boto3\n")

    sizes = bench_package.measure_package_size(tmp_path)

    assert [name.split()[0] for name in sizes.sdk_distributions] == ["boto3", "botocore", "jmespath"]
    assert sizes.sdk.files == 3 * 3  # one module, METADATA and RECORD each
    assert sizes.detector.files == len([path for path in tmp_path.rglob("*") if path.is_file()])
    assert 0 < sizes.sdk.bytes < sizes.detector.bytes
    assert 0 < sizes.sdk.zipped_bytes < sizes.detector.zipped_bytes


def test_harness_bench_package_rows_give_the_ratio_of_known_sizes() -> None:
    mib = 1024 * 1024
    sizes = bench_package.PackageSizes(
        bench_package.PackageSize(9, 3 * mib, mib), bench_package.PackageSize(3, 2 * mib, 2 * mib), ("boto3 1",)
    )
    unzipped, zipped = bench.package_section(sizes).rows
    assert (unzipped.measure, unzipped.subject, unzipped.baseline, unzipped.ratio) == (
        EVERY_ROW[7],
        "3.0 MiB",
        "2.0 MiB",
        "1.50",
    )
    assert (zipped.measure, zipped.ratio, zipped.ok) == (EVERY_ROW[8], "0.50", "info")


def test_harness_bench_synthetic_mix_is_deterministic_and_realistic() -> None:
    events = bench_pattern.synthetic_lambda_events(1000, seed=7)
    assert events == bench_pattern.synthetic_lambda_events(1000, seed=7)
    assert events != bench_pattern.synthetic_lambda_events(1000, seed=8)
    assert sum(weight for *_, weight in bench_pattern.LAMBDA_WRITE_MIX) == 1000
    assert sum(weight for _, weight in bench_pattern.CALLER_MIX) == 1000
    assert all(event["source"] == "aws.lambda" and event["detail"]["readOnly"] is False for event in events)
    assert len({event["detail"]["eventID"] for event in events}) == len(events)


def test_harness_bench_pattern_cost_counts_what_is_delivered_against_what_is_in_scope(function: dict[str, Any]) -> None:
    events = bench_pattern.synthetic_lambda_events(TINY.pattern_events, TINY.seed)
    judge = bench.rule_judge(function)
    in_scope = sum(judge(event["detail"]) != "ignored" for event in events)
    assert 0 < in_scope < len(events)

    everything = bench_pattern.measure_pattern_cost({"source": ["aws.lambda"]}, events, judge)
    assert (everything.matched, everything.in_scope, everything.missed) == (len(events), in_scope, 0)
    assert everything.wasted == len(events) - in_scope

    nothing = bench_pattern.measure_pattern_cost({"source": ["aws.nothing"]}, events, judge)
    assert (nothing.matched, nothing.wasted, nothing.missed) == (0, 0, in_scope)

    written = bench_pattern.measure_pattern_cost(bench.event_rule_pattern(function), events, judge)
    assert written.in_scope == in_scope
    assert written.matched - written.wasted == written.in_scope - written.missed


def test_harness_bench_pattern_rows_of_known_counts() -> None:
    exact = bench_pattern.PatternCost(events=500, matched=300, in_scope=300, wasted=0, missed=0, allowlisted=20)
    rows = bench.pattern_rows(exact)
    assert [row.measure.strip() for row in rows] == list(EVERY_ROW[9:12])
    assert [(row.subject, row.ok) for row in rows] == [("600.0", "yes"), ("0.0", "yes"), ("0.0", "yes")]
    assert (rows[0].baseline, rows[0].ratio) == ("600.0 in scope", "1.00")

    leaky = bench_pattern.PatternCost(events=500, matched=400, in_scope=300, wasted=110, missed=10, allowlisted=20)
    rows = bench.pattern_rows(leaky)
    assert [(row.subject, row.ok) for row in rows] == [("800.0", "NO"), ("220.0", "NO"), ("20.0", "NO")]
    assert rows[0].ratio == "1.33"


def test_harness_bench_table_has_a_line_per_row_and_aligned_columns() -> None:
    rows = [bench.Row("a measure", "1 ms", "2 ms", "0.50", "≤ 1.30", "yes"), bench.Row("b", "", "", "", "0", "NO")]
    lines = bench.render_table(rows).splitlines()
    assert lines[0].split(" | ")[0].strip() == "measure" and len(lines) == 2 + len(rows)
    assert len({line.index("|") for line in lines if "|" in line}) == 1


@pytest.mark.slow
def test_harness_bench_main_prints_every_row_in_one_table(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "QUICK", TINY)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert bench.main(["--quick", "--artifact", str(artifact)]) == 0
    lines = output.getvalue().splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("measure "))
    table = lines[header + 2 : header + 2 + len(EVERY_ROW)]
    assert [line.split(" | ")[0].strip() for line in table] == list(EVERY_ROW)
    assert not lines[header + 2 + len(EVERY_ROW)].strip()
    assert any("CPUs" in line for line in lines) and any(line.startswith("repetitions:") for line in lines)


def test_harness_bench_main_refuses_a_directory_without_a_built_function(tmp_path: Path) -> None:
    assert bench.main(["--artifact", str(tmp_path)]) == 2
