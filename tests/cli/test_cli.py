"""The ``lambda-crud-detector`` command: its help, its exit status, what it imports, and the wheel that
``pip install .`` builds, run outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lambda_crud_detector import cli
from tests.support.cases import INVALID, PROJECT_ROOT, load_cases, sample_settings


def run_cli(capsys: pytest.CaptureFixture[str], arguments: list[str]) -> tuple[int, str, str]:
    """cli.main as the console script calls it; argparse's exits (help, usage errors) become the status."""
    try:
        status = cli.main(arguments)
    except SystemExit as exit:
        status = int(exit.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_trail(directory: Path) -> Path:
    """The CloudTrail record of every sample event the handler accepts, as one log file of a trail."""
    records = [case.event["detail"] for case in load_cases() if case.expected_verdict != INVALID]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trail.json").write_text(json.dumps({"Records": records}), "utf-8")
    return directory


def expected_counts() -> dict[str, int]:
    """The verdicts events/expected-verdicts.csv gives the samples, under env/local.json's settings."""
    counts = Counter(case.expected_verdict for case in load_cases() if case.expected_verdict != INVALID)
    return {"finding": 0, "allowlisted": 0, "ignored": 0, "invalid": 0} | dict(counts)


def sample_setting_flags() -> list[str]:
    settings = sample_settings()
    return [
        "--allowlist",
        settings["ALLOWLIST_PATTERNS"],
        "--trusted-layer-accounts",
        settings["TRUSTED_LAYER_ACCOUNTS"],
    ]


# Help and usage --------------------------------------------------------------------------------------------------


def test_help_names_every_subcommand_and_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, ["--help"])
    assert status == 0
    assert out.startswith("usage: lambda-crud-detector ")
    for name in ("backtest", "findings", "redrive"):
        assert f"    {name}  " in out, name
    assert "exit status" in out and "130" in out


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_each_subcommand_has_its_own_help_under_the_command_name(capsys: pytest.CaptureFixture[str], name: str) -> None:
    status, out, _ = run_cli(capsys, [name, "--help"])
    assert status == 0
    assert out.startswith(f"usage: lambda-crud-detector {name} ")


@pytest.mark.parametrize("arguments", [[], ["backtests"], ["--since", "1d"]])
def test_no_or_an_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str], arguments: list[str]) -> None:
    status, out, err = run_cli(capsys, arguments)
    assert status == cli.EXIT_CANNOT_RUN
    assert out == "" and err.startswith("usage: lambda-crud-detector ")


def test_a_usage_error_of_a_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, ["backtest", "--path", "x", "--s3", "s3://bucket"])
    assert status == cli.EXIT_CANNOT_RUN and "not allowed with argument" in err


# Exit status of real work -----------------------------------------------------------------------------------------


def test_backtest_judges_a_trail_and_exits_0(tmp_path: Path) -> None:
    trail = write_trail(tmp_path / "trail")
    completed = subprocess.run(
        [sys.executable, "-m", "lambda_crud_detector", "backtest", "--path", trail, "--json", *sample_setting_flags()],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == cli.EXIT_OK, completed.stderr
    assert json.loads(completed.stdout)["counts"] == expected_counts()
    assert "[backtest] files 1/1" in completed.stderr  # progress goes to stderr, never into the JSON


def test_backtest_exits_1_when_files_cannot_be_judged(capsys: pytest.CaptureFixture[str]) -> None:
    # events/ holds EventBridge events, not a trail's log files: each is named, none is judged.
    status, out, _ = run_cli(capsys, ["backtest", "--path", str(PROJECT_ROOT / "events"), "--json", "--no-progress"])
    report = json.loads(out)
    assert status == cli.EXIT_ATTENTION
    assert len(report["errors"]) == len(list((PROJECT_ROOT / "events").glob("*.json")))


def test_backtest_exits_2_when_it_cannot_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = run_cli(capsys, ["backtest", "--path", str(tmp_path / "missing")])
    assert status == cli.EXIT_CANNOT_RUN and "does not exist" in err


def test_an_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(arguments: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "subcommand_main", lambda name: interrupted)
    status, _, err = run_cli(capsys, ["findings"])
    assert status == cli.EXIT_INTERRUPTED and "interrupted" in err


# What the command is made of -------------------------------------------------------------------------------------


def test_the_command_imports_no_harness() -> None:
    """Every module of the command, imported in a fresh process: no test support, benchmark or test library."""
    probe = (
        "import importlib, json, sys\n"
        "from lambda_crud_detector import cli\n"
        "for subcommand in cli.SUBCOMMANDS.values(): importlib.import_module(subcommand.module)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    modules = json.loads(completed.stdout)
    assert {"lambda_crud_detector.backtest", "lambda_crud_detector.findings", "lambda_crud_detector.redrive"} <= set(
        modules
    )
    harness = ("tests", "bench", "moto", "samcli", "samtranslator", "pytest", "duckdb", "yaml")
    assert [name for name in modules if name.split(".")[0] in harness] == []


def test_the_console_script_is_cli_main() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["scripts"] == {"lambda-crud-detector": "lambda_crud_detector.cli:main"}


@pytest.mark.slow
def test_the_wheel_runs_backtest_without_the_checkout(tmp_path: Path) -> None:
    """``pip install .`` builds this wheel: it must carry the function's modules, and nothing of the harnesses, and
    its console script must judge a trail from a directory that holds no checkout."""
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    for part in ("pyproject.toml", "lambda_crud_detector", "functions/detector"):
        copy = shutil.copytree if (PROJECT_ROOT / part).is_dir() else shutil.copy
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        copy(PROJECT_ROOT / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # No build isolation and no dependencies: the environment already has setuptools and the command's libraries.
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path / "wheel", source],
                   check=True, timeout=300)  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("lambda_crud_detector-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("rule", "cloudtrail", "finding", "publisher"):
        assert f"lambda_crud_detector/detector/{module}.py" in names
    assert [name for name in names if name.split("/")[0] in ("tests", "bench", "functions")] == []

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=300)
    workdir = tmp_path / "elsewhere"
    trail = write_trail(workdir / "trail")
    # The installed package first on the path; the libraries from this environment; no checkout on the path.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment["PYTHONPATH"] = str(site)
    completed = subprocess.run(
        [site / "bin" / "lambda-crud-detector", "backtest", "--path", "trail", "--json", *sample_setting_flags()],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == expected_counts()
    where = subprocess.run(
        [sys.executable, "-c", "import lambda_crud_detector as c; print(c.__file__); print(c.DETECTOR_SOURCES)"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert all(Path(path).is_relative_to(site) for path in where), where
    assert trail.is_dir()
