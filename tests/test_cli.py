"""The physnn command."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import physnn
import physnn.devices._registry as registry
from physnn.cli import main, parse_settings
from physnn.devices import create
from physnn.devices._catalog import CATALOG, describe_control
from physnn.errors import ConfigurationError
from physnn.testing import check_registered

DATA = Path(os.environ.get("PHYSNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


def test_devices_lists_from_static_metadata_without_building(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSNN_DATA", str(tmp_path))  # no measurements here: listed with what is missing

    def no_import(target):
        raise AssertionError(f"physnn devices imported {target}")

    monkeypatch.setattr(registry, "_resolve", no_import)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "coupled-pendula (CoupledPendula, differentiable): in [4] -> out [4]" in out
    assert "coupling [3] in [0, 40] 1/s^2 (default 4.0)" in out
    assert "phyll-cavity (MeasuredDevice, black box): in [20] -> out [20]  [needs data file phyll/acoustic_x_data" in out
    assert "weights [2, 4, 3] in [-inf, inf] rad (default: 24 values in [0.0547, 5.63])" in out
    assert "[[" not in out and len(out.splitlines()) < 80  # no weight tensors printed
    assert main(["devices", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["reference"]["differentiable"] is True and rows["reference"]["check_settings"] == {"n": 3}
    assert rows["phyll-cavity"]["needs"] and rows["reference"]["needs"] == []


def test_devices_lists_a_run_time_device_without_building_it(capsys, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTERED", {"my-amp": "no_such_package.amp:Amp"})
    assert main(["devices"]) == 0
    assert "my-amp: registered at run time or by a package; `physnn devices my-amp` builds it" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_entry_is_the_built_device(name, monkeypatch):
    """The static listing says what the device, built with its defaults, really is."""
    entry = CATALOG[name]
    if entry.needs_data:
        if not (DATA / entry.needs_data).is_file():
            pytest.skip(f"{name} needs {DATA / entry.needs_data}")
        monkeypatch.setenv("PHYSNN_DATA", str(DATA))
    with create(name) as device:
        assert (type(device).__name__, device.differentiable) == (entry.cls, entry.differentiable)
        assert (tuple(device.in_shape), tuple(device.out_shape)) == (entry.in_shape, entry.out_shape)
        assert tuple(describe_control(c) for c in device.controls) == entry.controls


def test_devices_name_builds_one_device_in_detail(capsys):
    assert main(["devices", "quantum-circuit"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quantum-circuit (QuantumCircuit, differentiable): in [4] -> out [4]")
    assert "(default: 24 values in [0.0547, 5.63])" in out and "[[" not in out
    assert "physnn check settings: {'n_qubits': 2, 'layers': 1}" in out


def test_check_uses_small_settings_and_full_warns(capsys):
    assert main(["check", "coupled-pendula", "--set", "n=3", "--set", "steps=30"]) == 0
    assert "7 passed, 0 skipped, 0 failed" in capsys.readouterr().out
    assert main(["check", "reference", "--full"]) == 0
    out, err = capsys.readouterr()
    assert "ReferenceDevice" in out and "0 failed" in out
    assert "full-size ReferenceDevice('reference'): gradcheck makes about 16 device calls" in err
    report = check_registered("reference")  # the library path of `physnn check reference`
    assert report.passed == ["shapes", "counter", "batch_independence", "determinism", "bad_inputs", "gradcheck",
                             "routes"]
    assert main(["check", "no-such-device"]) == 2
    assert "no device named 'no-such-device'" in capsys.readouterr().err


def test_check_settings_of_a_run_time_device(monkeypatch):
    from physnn.devices import ReferenceDevice

    class Small(ReferenceDevice):
        check_settings = {"n": 2}

    monkeypatch.setattr(registry, "_REGISTERED", {"small": Small})
    assert registry.check_settings("small") == {"n": 2}
    assert check_registered("small").device.startswith("Small")


def test_data_says_where_the_folder_came_from(capsys, tmp_path, monkeypatch):
    assert main(["data", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data dir: {tmp_path} (from the data_dir argument (--data-dir))" in out
    assert "mnist           0/4 files" in out
    monkeypatch.setenv("PHYSNN_DATA", str(tmp_path / "env"))
    assert main(["data"]) == 0
    assert f"data dir: {tmp_path / 'env'} (from $PHYSNN_DATA)" in capsys.readouterr().out
    monkeypatch.delenv("PHYSNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["data"]) == 0
    assert f"data dir: {tmp_path / 'cache' / 'physnn'} (default cache dir" in capsys.readouterr().out
    assert "PHYSNN_DATA" not in os.environ  # --data-dir did not leak into the environment


def test_version_is_the_package_metadata(capsys):
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert physnn.__version__ == re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE).group(1)
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"physnn {physnn.__version__}\n"


def test_a_family_without_its_extra_says_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if `pip install 'physnn[audio]'` never ran
    monkeypatch.delitem(sys.modules, "physnn.devices.audio.wavio", raising=False)
    assert main(["process", "in.wav", "out.wav", "--device", "diode-clipper"]) == 2
    err = capsys.readouterr().err
    assert err == "physnn: error: soundfile is not installed; install it with pip install 'physnn[audio]'\n"
    monkeypatch.setitem(sys.modules, "pedalboard", None)
    assert main(["check", "pedalboard"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'physnn[audio]'" in err


def test_demo_runs_and_writes_results(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2"]) == 0
    assert f"results and plots in {tmp_path}" in capsys.readouterr().out
    assert (tmp_path / "results.md").read_text().count("|\n") >= 4  # a table: header, rule, methods
    assert (tmp_path / "training.png").stat().st_size > 10_000


def test_console_entry_point_and_help():
    out = subprocess.run([sys.executable, "-m", "physnn", "--help"], capture_output=True, text=True, check=True)
    assert "devices" in out.stdout and "demo" in out.stdout and "process" in out.stdout


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`physnn devices | head -1`: the pipe closes before physnn writes."""
    run = subprocess.Popen([sys.executable, "-m", "physnn", "devices"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()
    assert run.wait(timeout=120) == 0 and run.stderr.read() == b""


def test_parse_settings():
    assert parse_settings(["n=3", "omega=[1, 2]", "name=cavity"]) == {"n": 3, "omega": [1, 2], "name": "cavity"}
    with pytest.raises(ConfigurationError, match="--set must look like KEY=VALUE with KEY a name, got 'n'"):
        parse_settings(["n"])
    with pytest.raises(ConfigurationError, match="--set n= given twice"):
        parse_settings(["n=3", "n=4"])
    with pytest.raises(ConfigurationError, match="--set gain= must be a finite number, got 'nan'"):
        parse_settings(["gain=nan"])


def test_torch_device_option_refuses_what_this_torch_cannot_run():
    import argparse

    import torch

    from physnn.cli import torch_device

    assert torch_device("cpu") == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match="choose cpu or cuda"):
        torch_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match=r"torch.cuda.is_available\(\) is False"):
            torch_device("cuda")
