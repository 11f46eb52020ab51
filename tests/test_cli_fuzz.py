"""A user mistake on the command line is exit status 2 and one line on stderr: no traceback, no partial file.

Each case is an invocation with placeholders: ``{tone}`` a 0.1 s WAV, ``{text}`` a text file named .wav,
``{empty}`` an empty .wav, ``{dir}`` the scratch folder (which must hold nothing new afterwards), and the
words the one line must contain.
"""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from physnn.cli import main

PROCESS = ["process", "{tone}", "{dir}/out.wav", "--device", "diode-clipper"]

CASES: dict[str, tuple[list[str], str]] = {
    # the command line itself
    "no such command": (["calibrate"], "invalid choice: 'calibrate'"),
    "unknown option": (["--colour"], "unrecognized arguments: --colour"),
    "check without a name": (["check"], "the following arguments are required: name"),
    "check unknown option": (["check", "reference", "--fast"], "unrecognized arguments: --fast"),
    "devices unknown option": (["devices", "--yaml"], "unrecognized arguments: --yaml"),
    "data unknown option": (["data", "--list"], "unrecognized arguments: --list"),
    "demo zero epochs": (["demo", "--epochs", "0", "--out", "{dir}/demo"], "expected a positive integer, got 0"),
    "demo epochs not a number": (["demo", "--epochs", "many"], "invalid _positive_int value: 'many'"),
    "demo seed not a number": (["demo", "--seed", "x"], "invalid int value: 'x'"),
    "demo out is a file": (["demo", "--out", "{tone}", "--epochs", "1"], "cannot be a folder for the results"),
    # device names and --set values
    "check unknown device": (["check", "no-such-device"], "no device named 'no-such-device'"),
    "devices unknown device": (["devices", "no-such-device"], "no device named 'no-such-device'"),
    "set without =": (["check", "reference", "--set", "n"], "--set must look like KEY=VALUE"),
    "set without key": (["check", "reference", "--set", "=3"], "--set must look like KEY=VALUE"),
    "set key not a name": (["check", "reference", "--set", "n n=3"], "--set must look like KEY=VALUE"),
    "set twice": (["check", "reference", "--set", "n=3", "--set", "n=4"], "--set n= given twice"),
    "set NaN": (["check", "reference", "--set", "saturation=nan"], "must be a finite number, got 'nan'"),
    "set Inf": (["check", "reference", "--set", "saturation=1e999"], "must be a finite number, got '1e999'"),
    "set unknown key": (["check", "reference", "--set", "gain_db=3"], "has no setting 'gain_db'"),
    "set wrong type": (["check", "reference", "--set", "n=abc"], "setting n= expects int, got 'abc'"),
    "set broken list": (["check", "reference", "--set", "n=[1,2"], "setting n= expects int"),
    "pendula n=1": (["check", "coupled-pendula", "--set", "n=1"], "CoupledPendula needs n >= 2 pendula, got 1"),
    "pendula steps=0": (["check", "coupled-pendula", "--set", "steps=0"], "steps >= 1"),
    "pendula negative omega": (["check", "coupled-pendula", "--set", "omega=-1.0"], "needs omega > 0"),
    "reference n=0": (["check", "reference", "--set", "n=0"], "ReferenceDevice needs n >= 1"),
    "reference negative saturation": (["check", "reference", "--set", "saturation=-1.0"], "saturation > 0"),
    "wave grid too small": (["check", "wave-2d", "--set", "shape=(0, 0)"], "is too small for an absorbing layer"),
    "wave shape not a pair": (["check", "wave-2d", "--set", "shape=5"], "setting shape= expects tuple[int, int]"),
    "clipper zero samples": (["check", "diode-clipper", "--set", "num_samples=0"], "needs num_samples >= 1"),
    "clipper negative rate": (["check", "diode-clipper", "--set", "sample_rate=-5"], "supports sample rates"),
    "quantum zero qubits": (["check", "quantum-circuit", "--set", "n_qubits=0"], "need n_qubits >= 1"),
    "pedalboard unknown effect": (["check", "pedalboard", "--set", "effect=Wah"], "pedalboard has no effect 'Wah'"),
    "cavity without data": (["check", "phyll-cavity", "--data-dir", "{dir}/nowhere"],
                            "physnn data file 'phyll/acoustic_x_data.csv' not found"),
    "cavity detail without data": (["devices", "phyll-cavity", "--data-dir", "{dir}/nowhere"], "not found"),
    # physnn process: files, formats, paths
    "input is text named .wav": (["process", "{text}", "{dir}/out.wav", "--device", "diode-clipper"],
                                 "is not a sound file libsndfile can read"),
    "input is empty": (["process", "{empty}", "{dir}/out.wav", "--device", "diode-clipper"],
                       "is not a sound file libsndfile can read"),
    "input missing": (["process", "{dir}/missing.wav", "{dir}/out.wav", "--device", "diode-clipper"],
                      "does not exist"),
    "input is a folder": (["process", "{dir}", "{dir}/out.wav", "--device", "diode-clipper"], "is a folder"),
    "output folder missing": (["process", "{tone}", "{dir}/no/out.wav", "--device", "diode-clipper"],
                              "does not exist; create it first"),
    "output is a folder": (["process", "{tone}", "{dir}", "--device", "diode-clipper"], "is a folder"),
    "output .txt": (["process", "{tone}", "{dir}/out.txt", "--device", "diode-clipper"],
                    "unknown sound-file extension '.txt'"),
    "output .aif": (["process", "{tone}", "{dir}/out.aif", "--device", "diode-clipper"],
                    "unknown sound-file extension '.aif'"),
    "mp3 with a PCM subtype": (PROCESS[:2] + ["{dir}/out.mp3", "--device", "diode-clipper", "--subtype", "PCM_16"],
                               "MP3 holds MPEG_LAYER_I, MPEG_LAYER_II, MPEG_LAYER_III"),
    "unknown subtype": (PROCESS + ["--subtype", "PCM_7"], "WAV files cannot hold subtype 'PCM_7'"),
    "process without --device": (["process", "{tone}", "{dir}/out.wav"],
                                 "one of the arguments --device --preset is required"),
    "process without output": (["process", "{tone}", "--device", "diode-clipper"], "required: output"),
    "process unknown device": (["process", "{tone}", "{dir}/out.wav", "--device", "fuzzbox"],
                               "no device named 'fuzzbox'"),
    "process non-audio device": (["process", "{tone}", "{dir}/out.wav", "--device", "reference"],
                                 "cannot be built as an audio device"),
    "knob out of bounds": (PROCESS + ["--set", "drive=99"], "drive"),
    "unknown knob": (PROCESS + ["--set", "fuzz=1"], "fuzz"),
    "knob NaN": (PROCESS + ["--set", "drive=nan"], "must be a finite number"),
    "knob without value": (PROCESS + ["--set", "drive"], "--set must look like KEY=VALUE"),
    "unknown constructor option": (PROCESS + ["--option", "colour=1"], "has no setting 'colour'"),
    "bad mode": (PROCESS + ["--option", "mode=nonsense"], "mode must be one of ['exact', 'fast']"),
    "zero full scale": (PROCESS + ["--full-scale", "0"], "full_scale must be a positive number of volts"),
    "negative full scale": (PROCESS + ["--full-scale", "-1"], "full_scale must be a positive number of volts"),
    "infinite gain": (PROCESS + ["--gain-db", "inf"], "gain_db must be a finite number of dB"),
    "gain not a number": (PROCESS + ["--gain-db", "loud"], "invalid float value: 'loud'"),
    "gain that clips": (PROCESS + ["--gain-db", "40"], "exceeds full scale"),
    # physnn serve-instrument: ports and devices (the command's validation is the adapters')
    "port not a number": (["serve-instrument", "--device", "reference", "--port", "http"], "invalid int value"),
    "port too large": (["serve-instrument", "--device", "reference", "--port", "70000"], "got 70000"),
    "port negative": (["serve-instrument", "--device", "reference", "--port", "-1"], "got -1"),
    "serve unknown device": (["serve-instrument", "--device", "nosuch"], "no device named 'nosuch'"),
    "serve bad setting": (["serve-instrument", "--device", "reference", "--set", "n=0"], "needs n >= 1"),
}


@pytest.fixture
def files(tmp_path):
    rate = 44100
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 10) / rate), rate)
    (tmp_path / "text.wav").write_text("not audio\n")
    (tmp_path / "empty.wav").touch()
    return {"tone": str(tmp_path / "tone.wav"), "text": str(tmp_path / "text.wav"),
            "empty": str(tmp_path / "empty.wav"), "dir": str(tmp_path)}


def invoke(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_there_are_enough_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_user_mistake_is_one_line_and_status_2(case, files, tmp_path, capsys):
    template, words = CASES[case]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = invoke([arg.format(**files) for arg in template], capsys)
    assert code == 2, (code, out, err)
    assert err.endswith("\n") and err.count("\n") == 1 and err.startswith("physnn"), err
    assert "Traceback" not in err and words in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no partial output


def test_the_installed_command_prints_no_traceback(files):
    """Through the real entry point (a fresh interpreter): one line, status 2."""
    for argv in (["check", "coupled-pendula", "--set", "n=1"], PROCESS[:2] + ["{dir}/out.txt"] + PROCESS[3:]):
        run = subprocess.run([sys.executable, "-m", "physnn", *[a.format(**files) for a in argv]],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
