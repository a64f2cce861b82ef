"""What the detector costs, each figure measured in the same run as its baseline: ``python -m bench.run``.

1. Cold start: importing the handler module in a fresh ``python3.13 -S`` process whose PYTHONPATH is only the
   built function, with the environment Lambda gives it under the template's defaults, against importing boto3
   and creating a Security Hub client from source (the same package without its bytecode) in the same kind of
   process. The time is taken inside the process, so interpreter start-up is left out. /var/task is read-only in
   Lambda, so the processes here may not write bytecode either: a module without shipped bytecode is compiled at
   every cold start. Also shown: the handler from source; and the import followed by the first invocation, to an
   allowlisted verdict (which needs no AWS client) and to a finding (Security Hub answered locally, as in 2).
2. Warm CPU per invocation: the handler over the sample events against a handler that only sends the finding
   the detector would send, prebuilt, through boto3's default client; Security Hub answers locally, after botocore
   has validated, serialized and signed the call (bench/lambda_worker.py).
3. Memory: peak resident memory over many warm invocations against the baseline handler's, and how much the
   detector's grows after warm-up.
4. Size of the built package, unzipped and zipped, against boto3 with its dependencies alone.
5. Invocations the event rule's pattern, as written in template.yaml, triggers per 1,000 Lambda write events
   of a realistic mix, against the number the rule (rule.py) holds in scope; evaluated with moto's EventBridge
   matcher.
6. Backtest on a synthetic gzip trail against gzip + json.loads of the same files (bench/backtest.py), and against
   DuckDB's read_json with the rule as one SQL query, with the same verdict counts (bench/duckdb_backtest.py).
7. A flood: 10,000 denied calls by one principal within 10 minutes with one real finding half-way, through the
   handler on the rate-limited strict Security Hub, on simulated time: import calls, and when the real finding
   lands, against one import per call (bench/flood.py).

Repeated figures are interleaved (baseline and subject take turns) and reported as the median of the paired
ratios, because machines are shared and noisy. Nothing here contacts AWS or the network: credentials are dummies
and Security Hub is answered locally.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from bench import backtest as bench_backtest
from bench import duckdb_backtest as bench_duckdb
from bench import flood as bench_flood
from bench import package as bench_package
from bench import pattern as bench_pattern
from tests.support import local_runtime
from tests.support.cases import INVALID, PROJECT_ROOT, load_cases
from tests.support.cloudformation import EVENT_ID, FUNCTION_ID, TEMPLATE_PATH, Stack, load_template

DEFAULT_ARTIFACT = PROJECT_ROOT / ".aws-sam" / "build" / FUNCTION_ID
DETECTOR_SOURCES = PROJECT_ROOT / "functions" / "detector"
WORKER = Path(__file__).resolve().parent / "lambda_worker.py"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
BASELINE_IMPORT = 'import boto3\nboto3.client("securityhub")'
IMPORT_PROBE = """\
import time
_wall, _cpu = time.perf_counter(), time.process_time()
{statements}
print("\\nimport-seconds", time.perf_counter() - _wall, time.process_time() - _cpu, flush=True)
"""
SUBPROCESS_TIMEOUT_SECONDS = 900
GROWTH_ALLOWANCE_KIB = 1024
COLD_START_TARGET = 0.65
ALLOWLISTED_COLD_START_TARGET = 0.30
WARM_CPU_TARGET = 1.50
BACKTEST_TARGET = 1.00


@dataclass(frozen=True)
class BenchSettings:
    """How many times each figure is measured."""

    cold_start_runs: int = 15
    warm_invocations: int = 2_000
    warm_rounds: int = 40
    memory_invocations: int = 10_000
    memory_warmup: int = 1_000
    pattern_events: int = 1_000
    seed: int = 20261127
    backtest_records: int = 200_000
    backtest_repetitions: int = 5
    flood_calls: int = 10_000


FULL = BenchSettings()
QUICK = BenchSettings(
    cold_start_runs=2,
    warm_invocations=48,
    warm_rounds=2,
    memory_invocations=60,
    memory_warmup=24,
    pattern_events=200,
    backtest_records=5_000,
    backtest_repetitions=1,
    flood_calls=400,
)


# Figures, their comparison with a baseline, and the table -----------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """Samples of a subject and its baseline taken in turns: ``subject[i]`` and ``baseline[i]`` belong together."""

    subject: tuple[float, ...]
    baseline: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.subject or len(self.subject) != len(self.baseline):
            raise ValueError("a comparison needs as many baseline samples as subject samples, at least one")

    @property
    def ratio(self) -> float:
        """Median of the paired ratios: robust against the machine getting faster or slower during the run."""
        return statistics.median(s / b for s, b in zip(self.subject, self.baseline, strict=True))

    def summary(self) -> str:
        """The ratio three ways; when they disagree much, the machine was too noisy to trust the figure."""
        of_medians = statistics.median(self.subject) / statistics.median(self.baseline)
        of_minima = min(self.subject) / min(self.baseline)
        return f"ratio: median of paired {self.ratio:.2f}, of medians {of_medians:.2f}, of minima {of_minima:.2f}"


class Row(NamedTuple):
    measure: str
    subject: str
    baseline: str
    ratio: str
    target: str
    ok: str


class Section(NamedTuple):
    """A measurement's rows in the table and the lines that detail it below the table."""

    rows: list[Row]
    details: list[str]


def ok_text(passed: bool | None) -> str:
    return "info" if passed is None else "yes" if passed else "NO"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def comparison_row(measure: str, paired: Paired, unit: Callable[[float], str], target: float | None = None) -> Row:
    """A row of medians and their paired ratio; with a target, whether the ratio is within it."""
    subject, baseline = unit(statistics.median(paired.subject)), unit(statistics.median(paired.baseline))
    if target is None:
        return Row(measure, subject, baseline, f"{paired.ratio:.2f}", "—", ok_text(None))
    return Row(measure, subject, baseline, f"{paired.ratio:.2f}", f"≤ {target:.2f}", ok_text(paired.ratio <= target))


def check_row(measure: str, subject: str, target: str, passed: bool, baseline: str = "") -> Row:
    """A row that is a check against a fixed target rather than a ratio."""
    return Row(measure, subject, baseline, "", target, ok_text(passed))


def render_table(rows: Sequence[Row]) -> str:
    """Columns aligned; the figures right-aligned."""
    header = Row("measure", "subject", "baseline", "ratio", "target", "ok?")
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]

    def line(row: Row, numbers_right: bool = True) -> str:
        cells = [
            cell.rjust(width) if numbers_right and index in (1, 2, 3) else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return " | ".join(cells).rstrip()

    return "\n".join([line(header, False), "-+-".join("-" * width for width in widths), *map(line, rows)])


# The Lambda environment, and processes in it -------------------------------------------------------------------


def detector_function() -> dict[str, Any]:
    """The detector's properties as CloudFormation would create them with the template's default parameters."""
    return Stack(load_template(TEMPLATE_PATH)).properties(FUNCTION_ID)


@functools.cache
def lambda_function() -> Any:
    """The function as the SAM CLI reads it from the template, read once for all the processes started here."""
    return local_runtime.template_function(TEMPLATE_PATH)


def lambda_environment(task_root: Path) -> dict[str, str]:
    """The environment Lambda gives the function under the template's defaults, as the demo and the end-to-end
    tests build it (tests/support/local_runtime.py), with only ``task_root`` on the path and no bytecode writing."""
    return local_runtime.lambda_environment(lambda_function(), task_root, [task_root])


def function_arn(function: Mapping[str, Any]) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function.get('FunctionName', FUNCTION_ID)}"


class BenchProcessError(RuntimeError):
    """A measuring process failed; the message names it and ends with what it wrote to stderr."""


def run_in_lambda_process(name: str, arguments: Sequence[str], task_root: Path, stdin: str | None = None) -> str:
    """Run ``python -S ARGUMENTS`` in a fresh process that sees only ``task_root``, as Lambda runs the function;
    its stdout."""
    completed = subprocess.run(
        [sys.executable, "-S", *arguments],
        input=stdin,
        env=lambda_environment(task_root),
        cwd=task_root,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchProcessError(f"{name} failed (exit {completed.returncode}): {completed.stderr.strip()[-3000:]}")
    return completed.stdout


# 1. Cold start ----------------------------------------------------------------------------------------------

BASELINE = "boto3 + Security Hub client, from source"
DETECTOR = "detector, as built"
DETECTOR_FROM_SOURCE = "detector, from source"
DETECTOR_TO_ALLOWLISTED = "detector to an allowlisted verdict, as built"
DETECTOR_TO_FINDING = "detector to a finding, as built"
FIRST_INVOCATION = """\
import {module}
class _Context:
    invoked_function_arn = {arn!r}
    function_name = {name!r}
    function_version = "$LATEST"
    memory_limit_in_mb = {memory}
    aws_request_id = "5d9b0a6e-1f1c-4a42-9d8e-6b8c2f3a7e11"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "2026/11/27/[$LATEST]0123456789abcdef"
    def get_remaining_time_in_millis(self):
        return 120_000
{before}
_answer = {module}.{handler}({event!r}, _Context())
assert _answer["verdict"] == {verdict!r}, _answer
"""
ANSWER_SECURITY_HUB_LOCALLY = """\
import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
class _Body:
    def stream(self, *args, **kwargs):
        yield b'{"FailedCount":0,"SuccessCount":1,"FailedFindings":[]}'
def _answer_locally(request, **kwargs):
    return AWSResponse(request.url, 200, HTTPHeaders.from_dict({"Content-Type": "application/json"}), _Body())
boto3.setup_default_session()
boto3.DEFAULT_SESSION.events.register("before-send.securityhub", _answer_locally)
"""
"""Security Hub's answer without the network, as bench/lambda_worker.py gives it: botocore still validates,
serializes and signs the call."""


def time_import(statements: str, task_root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``statements`` in a fresh Lambda-like process, timed inside it (interpreter
    start-up excluded)."""
    output = run_in_lambda_process(
        f"import in {task_root}", ["-c", IMPORT_PROBE.format(statements=statements)], task_root
    )
    _, wall, cpu = output.splitlines()[-1].split()
    return float(wall), float(cpu)


@dataclass(frozen=True)
class ColdStart:
    runs: int
    timings: dict[str, list[tuple[float, float]]]
    """Wall and CPU seconds of each run, by variant."""

    def seconds(self, name: str, cpu: bool = False) -> tuple[float, ...]:
        return tuple(timing[1 if cpu else 0] for timing in self.timings[name])

    def compared(self, subject: str, cpu: bool = False) -> Paired:
        return Paired(self.seconds(subject, cpu), self.seconds(BASELINE, cpu))


def measure_cold_start(artifact: Path, function: Mapping[str, Any], runs: int, scratch: Path) -> ColdStart:
    """Import times of the handler module as built (with the bytecode it ships) and from source, and of the
    baseline from source: what any function bundling the SDK without bytecode pays at each cold start. Each round
    imports every variant once, starting with a different one."""
    source = scratch / "source"
    shutil.copytree(artifact, source, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    detector_import = "import " + str(function["Handler"]).rsplit(".", 1)[0]
    variants = {
        BASELINE: (BASELINE_IMPORT, source),
        DETECTOR: (detector_import, artifact),
        DETECTOR_FROM_SOURCE: (detector_import, source),
        DETECTOR_TO_ALLOWLISTED: (first_invocation(function, "allowlisted"), artifact),
        DETECTOR_TO_FINDING: (first_invocation(function, "finding", ANSWER_SECURITY_HUB_LOCALLY), artifact),
    }
    names = list(variants)
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_number in range(runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name].append(time_import(*variants[name]))
    return ColdStart(runs, timings)


def first_invocation(function: Mapping[str, Any], verdict: str, before: str = "") -> str:
    """Statements that import the handler and invoke it once with the first sample event that gets ``verdict``
    under the function's default settings, failing unless it does; ``before`` runs between the two."""
    module, handler = str(function["Handler"]).rsplit(".", 1)
    judge = rule_judge(function)
    event = next(
        case.event
        for case in load_cases()
        if case.expected_verdict != INVALID and judge(case.event["detail"]) == verdict
    )
    return FIRST_INVOCATION.format(
        module=module,
        handler=handler,
        arn=function_arn(function),
        name=str(function.get("FunctionName", FUNCTION_ID)),
        memory=int(function.get("MemorySize", 128)),
        before=before,
        event=event,
        verdict=verdict,
    )


def cold_start_section(cold: ColdStart) -> Section:
    rows = [
        comparison_row("cold start: import handler module", cold.compared(DETECTOR), ms, COLD_START_TARGET),
        comparison_row("cold start: the same without bytecode", cold.compared(DETECTOR_FROM_SOURCE), ms),
        comparison_row(
            "cold start to an allowlisted verdict",
            cold.compared(DETECTOR_TO_ALLOWLISTED),
            ms,
            ALLOWLISTED_COLD_START_TARGET,
        ),
        comparison_row("cold start to a finding", cold.compared(DETECTOR_TO_FINDING), ms, COLD_START_TARGET),
    ]
    details = [f"Cold start, {cold.runs} interleaved runs per variant (wall time inside the process; CPU time):"]
    for name in cold.timings:
        wall, cpu = cold.seconds(name), cold.seconds(name, cpu=True)
        details.append(
            f"  {name:<48} median {ms(statistics.median(wall)):>8}  min {ms(min(wall)):>8}  max {ms(max(wall)):>8}"
            f"  CPU median {ms(statistics.median(cpu)):>8}"
        )
    for subject in (DETECTOR, DETECTOR_FROM_SOURCE, DETECTOR_TO_ALLOWLISTED, DETECTOR_TO_FINDING):
        cpu_summary = cold.compared(subject, cpu=True).summary().removeprefix("ratio: ")
        details.append(f"  {subject}: wall {cold.compared(subject).summary()}; CPU {cpu_summary}")
    return Section(rows, details)


# 2 and 3. Warm invocations, in a Lambda-like process (bench/lambda_worker.py) --------------------------------


def detector_module(name: str) -> ModuleType:
    """A module of the detector, imported from its sources (they import each other by top-level name)."""
    if str(DETECTOR_SOURCES) not in sys.path:
        sys.path.insert(0, str(DETECTOR_SOURCES))
    return importlib.import_module(name)


def rule_settings(function: Mapping[str, Any]) -> Any:
    variables = function.get("Environment", {}).get("Variables", {})
    rule = detector_module("rule")
    return rule.RuleSettings.from_environment(variables)


def worker_job(function: Mapping[str, Any], **settings: int) -> dict[str, Any]:
    """What bench/lambda_worker.py needs: the sample events the handler accepts, for each the finding the detector
    sends (None when it sends none) for the baseline to send, and the Lambda context."""
    cloudtrail, rule, finding = (detector_module(name) for name in ("cloudtrail", "rule", "finding"))
    events = [case.event for case in load_cases() if case.expected_verdict != INVALID]
    rules = rule_settings(function)
    detector = finding.DetectorAccount.from_function_arn(function_arn(function), REGION)
    findings = []
    for event in events:
        unwrapped = cloudtrail.unwrap(event)
        judged = rule.evaluate(unwrapped.record, rules)
        findings.append(finding.build_finding(unwrapped, judged, detector) if judged.kind == "finding" else None)
    context = {
        "invoked_function_arn": function_arn(function),
        "function_name": str(function.get("FunctionName", FUNCTION_ID)),
        "memory_limit_in_mb": int(function.get("MemorySize", 128)),
    }
    return {"events": events, "findings": findings, "context": context, **settings}


def run_worker(mode: str, job: Mapping[str, Any], artifact: Path) -> Any:
    """bench/lambda_worker.py in a fresh Lambda-like process; the figures it returns."""
    return json.loads(run_in_lambda_process(mode, ["-P", str(WORKER), mode], artifact, json.dumps(job)))


@dataclass(frozen=True)
class WarmCpu:
    invocations_each: int
    rounds: int
    mix_size: int
    per_invocation: Paired
    """CPU seconds per invocation, one sample per block."""
    security_hub_calls: Mapping[str, int]
    """Calls Security Hub answered during the measured blocks, by handler: the same for both."""


def measure_warm_cpu(artifact: Path, function: Mapping[str, Any], settings: BenchSettings) -> WarmCpu:
    job = worker_job(function, rounds=settings.warm_rounds)
    mix_size = len(job["events"])
    job["warmup"] = 2 * mix_size
    job["block"] = mix_size * max(1, -(-settings.warm_invocations // (settings.warm_rounds * mix_size)))
    figures = run_worker("warm-cpu", job, artifact)
    per_invocation = figures["cpu_seconds_per_invocation"]
    paired = Paired(tuple(per_invocation["detector"]), tuple(per_invocation["baseline"]))
    return WarmCpu(
        job["block"] * settings.warm_rounds, settings.warm_rounds, mix_size, paired, figures["security_hub_calls"]
    )


def warm_cpu_section(warm: WarmCpu) -> Section:
    paired = warm.per_invocation
    calls = ", ".join(f"{name} {count:,}" for name, count in warm.security_hub_calls.items())
    return Section(
        [comparison_row("warm invocation: CPU per event", paired, us, WARM_CPU_TARGET)],
        [
            f"Warm CPU, {warm.invocations_each:,} invocations each in {warm.rounds} alternating blocks over the"
            f" {warm.mix_size} accepted sample events (Security Hub calls answered: {calls}):",
            f"  {paired.summary()}",
            f"  detector per block: {', '.join(map(us, paired.subject))}",
            f"  baseline per block: {', '.join(map(us, paired.baseline))}",
        ],
    )


@dataclass(frozen=True)
class MemoryUse:
    rss_after_warmup_kib: int
    rss_end_kib: int
    peak_rss_kib: int
    security_hub_calls: int

    @property
    def growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_after_warmup_kib


def measure_memory(artifact: Path, function: Mapping[str, Any], settings: BenchSettings) -> dict[str, MemoryUse]:
    """Each handler alone in its own process, the baseline first."""
    job = worker_job(function, warmup=settings.memory_warmup, invocations=settings.memory_invocations)
    return {name: MemoryUse(**run_worker(f"memory-{name}", job, artifact)) for name in ("baseline", "detector")}


def memory_section(memory: Mapping[str, MemoryUse], settings: BenchSettings) -> Section:
    detector, baseline = memory["detector"], memory["baseline"]
    peak = Paired((detector.peak_rss_kib,), (baseline.peak_rss_kib,))
    rows = [
        comparison_row(f"peak RSS over {settings.memory_invocations:,} warm invocations", peak, mib),
        check_row(
            f"RSS growth, invocation {settings.memory_warmup:,} → {settings.memory_invocations:,}",
            f"{detector.growth_kib:+,} KiB",
            f"none (< {GROWTH_ALLOWANCE_KIB:,} KiB)",
            detector.growth_kib < GROWTH_ALLOWANCE_KIB,
            baseline=f"{baseline.growth_kib:+,} KiB",
        ),
    ]
    details = ["Memory (resident set, one process each):"]
    for name, use in memory.items():
        details.append(
            f"  {name:<9} after warm-up {use.rss_after_warmup_kib:>8,} KiB   at the end {use.rss_end_kib:>8,} KiB"
            f"   peak {use.peak_rss_kib:>8,} KiB   Security Hub calls {use.security_hub_calls:,}"
        )
    return Section(rows, details)


# 4. Package size (bench/package.py) ------------------------------------------------------------


def package_section(sizes: bench_package.PackageSizes) -> Section:
    detector, sdk = sizes.detector, sizes.sdk

    def row(measure: str, detector_bytes: int, sdk_bytes: int) -> Row:
        return comparison_row(measure, Paired((detector_bytes / 1024,), (sdk_bytes / 1024,)), mib)

    return Section(
        [
            row("package size, unzipped", detector.bytes, sdk.bytes),
            row("package size, zipped (deflate)", detector.zipped_bytes, sdk.zipped_bytes),
        ],
        [
            f"Package: {detector.files:,} files, {detector.bytes:,} bytes ({detector.zipped_bytes:,} zipped);"
            f" baseline {sdk.files:,} files of {', '.join(sizes.sdk_distributions)}, {sdk.bytes:,} bytes"
            f" ({sdk.zipped_bytes:,} zipped); the detector adds {detector.bytes - sdk.bytes:,} bytes."
        ],
    )


# 5. What the event pattern lets through (bench/pattern.py) -------------------------------------------


def event_rule_pattern(function: Mapping[str, Any]) -> dict[str, Any]:
    """The pattern of the detector's event rule, as CloudFormation creates it with the default parameters."""
    return function["Events"][EVENT_ID]["Properties"]["Pattern"]


def rule_judge(function: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str]:
    """The kind of verdict the rule gives a record, with the function's default settings."""
    rule, settings = detector_module("rule"), rule_settings(function)
    return lambda record: rule.evaluate(record, settings).kind


def pattern_rows(cost: bench_pattern.PatternCost) -> list[Row]:
    def per_1000(count: int) -> str:
        return f"{cost.per_thousand(count):.1f}"

    exact = cost.matched == cost.in_scope and cost.wasted == 0 and cost.missed == 0
    matched = "invocations per 1,000 Lambda write events"
    ratio, in_scope = f"{cost.ratio:.2f}", f"{per_1000(cost.in_scope)} in scope"
    return [
        Row(matched, per_1000(cost.matched), in_scope, ratio, "1.00", ok_text(exact)),
        check_row("  wasted (matched, out of scope) per 1,000", per_1000(cost.wasted), "0", not cost.wasted),
        check_row("  missed (in scope, not matched) per 1,000", per_1000(cost.missed), "0 (must)", not cost.missed),
    ]


# 6. Backtest ------------------------------------------------------------------------------------------------


def backtest_row(speed: bench_backtest.BacktestSpeed) -> Row:
    """Backtest on local gzip files against gzip + json.loads of the same files; its counts must be exact too."""
    measure = f"backtest, {speed.records:,}-record gzip trail (wall)"
    row = comparison_row(measure, Paired(speed.subject, speed.baseline), ms, BACKTEST_TARGET)
    return row if speed.counts_match else row._replace(ok=ok_text(False))


def duckdb_row(comparison: bench_duckdb.DuckDBComparison | None, records: int) -> Row:
    """Backtest against DuckDB's read_json and a SQL query on the same files; their counts must be equal."""
    measure = f"backtest vs DuckDB read_json, {records:,} records (wall)"
    if comparison is None:
        return Row(measure, "", "not installed", "", "—", ok_text(None))
    row = comparison_row(measure, Paired(comparison.subject, comparison.baseline), ms)
    return row if comparison.counts_match else row._replace(ok=ok_text(False))


# 7. Flood ---------------------------------------------------------------------------------------------------


FLOOD_SECONDS = 600.0


def measure_flood(calls: int) -> bench_flood.FloodResult:
    """The flood in a process of its own: the handler there runs on a mocked, rate-limited Security Hub."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.flood", "--calls", str(calls), "--seconds", str(FLOOD_SECONDS)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith(bench_flood.RESULT_MARKER))
    return bench_flood.FloodResult(**json.loads(line[len(bench_flood.RESULT_MARKER) :]))


def flood_section(flood: bench_flood.FloodResult) -> Section:
    minutes = flood.seconds / 60
    delay = flood.real_finding_delay_seconds
    landed = "never" if delay is None else f"{delay:.1f} s"
    ceiling = max(1, flood.calls // 10)  # 400 denied calls may cost at most 40 imports
    rows = [
        check_row(
            f"flood: imports for {flood.calls:,} denied calls in {minutes:.0f} min",
            f"{flood.import_calls:,}",
            f"≤ {ceiling:,}",
            flood.import_calls <= ceiling and flood.handler_errors == 0,
            baseline=f"{flood.unfolded_import_calls:,}",
        ),
        check_row(
            "  real finding lands after (simulated)",
            landed,
            "0 s",
            delay == 0,
            baseline=f">= {flood.unfolded_real_finding_delay_seconds:.0f} s",
        ),
    ]
    details = [
        f"Flood: {flood.calls:,} denied calls by one principal over {minutes:.0f} simulated minutes, one real finding"
        f" half-way; one warm execution environment; Security Hub at 10 imports/s, burst 30 (strict local model)."
        f" {flood.folded:,} calls folded, {flood.throttled_calls} import calls throttled, {flood.handler_errors}"
        f" handler errors, {flood.stored_findings} findings stored. Baseline: one import per call, paced by the"
        " same rate, no retry cost (a lower bound on the delay)."
    ]
    return Section(rows, details)


# The report -------------------------------------------------------------------------------------------------


def run_benchmarks(artifact: Path, settings: BenchSettings) -> str:
    """Every measurement in turn; the report."""
    function = detector_function()
    seconds: dict[str, float] = {}

    def timed(name: str, measure: Callable[[], Section]) -> Section:
        print(f"[bench] {name}…", file=sys.stderr, flush=True)
        started = time.monotonic()
        section = measure()
        seconds[name] = time.monotonic() - started
        return section

    def cold_start() -> Section:
        with tempfile.TemporaryDirectory(prefix="detector-bench-") as scratch:
            return cold_start_section(measure_cold_start(artifact, function, settings.cold_start_runs, Path(scratch)))

    def pattern() -> Section:
        events = bench_pattern.synthetic_lambda_events(settings.pattern_events, settings.seed)
        cost = bench_pattern.measure_pattern_cost(event_rule_pattern(function), events, rule_judge(function))
        return Section(pattern_rows(cost), bench_pattern.details(cost, settings.seed))

    def backtest() -> Section:
        speed = bench_backtest.measure(settings.backtest_records, settings.backtest_repetitions)
        return Section([backtest_row(speed)], bench_backtest.details(speed))

    def duckdb() -> Section:
        comparison = bench_duckdb.measure(settings.backtest_records, settings.backtest_repetitions)
        return Section([duckdb_row(comparison, settings.backtest_records)], bench_duckdb.details(comparison))

    sections = [
        timed("cold start", cold_start),
        timed("warm CPU", lambda: warm_cpu_section(measure_warm_cpu(artifact, function, settings))),
        timed("memory", lambda: memory_section(measure_memory(artifact, function, settings), settings)),
        timed("package size", lambda: package_section(bench_package.measure_package_size(artifact))),
        timed("pattern", pattern),
        timed("backtest", backtest),
        timed("backtest vs DuckDB", duckdb),
        timed("flood", lambda: flood_section(measure_flood(settings.flood_calls))),
    ]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return "\n".join(
        [
            f"lambda-crud-detector benchmarks — Python {platform.python_version()} ({platform.python_implementation()}),"
            f" {platform.machine()}, {os.cpu_count()} CPUs, load average {load}, {platform.platform()}",
            f"artifact: {artifact}",
            f"repetitions: cold start {settings.cold_start_runs} runs per variant; warm CPU"
            f" {settings.warm_invocations:,}+ invocations each in {settings.warm_rounds} blocks; memory"
            f" {settings.memory_invocations:,} invocations ({settings.memory_warmup:,} warm-up); pattern"
            f" {settings.pattern_events:,} events; backtest {settings.backtest_records:,} records,"
            f" {settings.backtest_repetitions} repetitions; flood {settings.flood_calls:,} denied calls",
            "baselines: cold start = import boto3 + boto3.client('securityhub'); warm = the same finding sent through"
            " boto3's default client; size = boto3 and its dependencies; backtest = gzip + json.loads",
            "",
            render_table([row for section in sections for row in section.rows]),
            "",
            *(line for section in sections for line in section.details),
            "",
            "took " + ", ".join(f"{name} {spent:.0f} s" for name, spent in seconds.items()),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT, help="the built function (sam build)")
    parser.add_argument("--quick", action="store_true", help="a few repetitions only: checks that it runs")
    arguments = parser.parse_args(argv)
    artifact = arguments.artifact.resolve()
    if not (artifact / "app.py").is_file():
        print(f"{artifact} holds no built function: run `make build` first.", file=sys.stderr)
        return 2
    print(run_benchmarks(artifact, QUICK if arguments.quick else FULL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
