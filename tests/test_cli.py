"""The physnn command."""

import json
import subprocess
import sys

import pytest

from physnn.cli import main, parse_settings
from physnn.errors import ConfigurationError


def test_devices_lists_controls_and_differentiability(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSNN_DATA", str(tmp_path))  # no measurements here: listed with the reason
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "coupled-pendula (CoupledPendula, differentiable): in [4] -> out [4]" in out
    assert "coupling [3] in [0, 40] 1/s^2 (default 4.0)" in out
    assert "phyll-cavity: not available with defaults (DataNotFoundError" in out
    assert main(["devices", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reference"]["differentiable"] is True and "unavailable" in rows["phyll-cavity"]


def test_check_runs_the_conformance_suite(capsys):
    assert main(["check", "coupled-pendula", "--set", "n=3", "--set", "steps=30"]) == 0
    assert "7 passed, 0 skipped, 0 failed" in capsys.readouterr().out
    assert main(["check", "no-such-device"]) == 1
    assert "no device named 'no-such-device'" in capsys.readouterr().err


def test_data_reports_the_directory(capsys, tmp_path):
    assert main(["data", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data dir: {tmp_path} (from the data_dir argument)" in out and "mnist           0/4 files" in out


def test_demo_runs_and_writes_results(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "| physics-aware | hardware fwd, twin bwd |" in out and "Lesson: " in out
    assert (tmp_path / "results.md").read_text().count(" ± ") == 10  # 4 physical x 2 places, digital, footnote
    assert (tmp_path / "training.png").stat().st_size > 10_000


def test_console_entry_point_and_help():
    out = subprocess.run([sys.executable, "-m", "physnn", "--help"], capture_output=True, text=True, check=True)
    assert "devices" in out.stdout and "demo" in out.stdout


def test_parse_settings():
    assert parse_settings(["n=3", "omega=[1, 2]", "name=cavity"]) == {"n": 3, "omega": [1, 2], "name": "cavity"}
    with pytest.raises(ConfigurationError, match="--set must look like KEY=VALUE, got 'n'"):
        parse_settings(["n"])
