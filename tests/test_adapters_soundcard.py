"""SoundCardDevice on a real audio stack: a JACK server (dummy driver) whose loopback ports wire output to input.

The sounddevice part runs in a subprocess: PortAudio must initialize after jackd
starts and terminate before it stops, which a fresh process guarantees.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from physnn.devices.adapters.soundcard import error_to_signal, find_delay, sync_chirp

SCRIPT = r"""
import json, subprocess, time
import sounddevice as sd
import torch
from physnn.devices.adapters import RecordingError, Retrying, SoundCardDevice
from physnn.testing import check_device

out = {}
def error(fn):
    try:
        fn()
    except RecordingError as exc:
        return str(exc)
    return None

card = SoundCardDevice(64, device="loopback", max_latency_seconds=0.05)
stable = Retrying(card, retries=3, backoff=0.0)  # an xrun under CPU load fails the take comparison: measure again
x = torch.rand(3, 64, generator=torch.Generator().manual_seed(0)) - 0.5
out["max_abs_error"] = float((stable(x) - x).abs().max())
out["delay"] = card.last_delay
out["check_device"] = str(check_device(stable))
out["clipped"] = error(lambda: card(torch.full((1, 64), 0.9999)))
out["unwired"] = error(lambda: SoundCardDevice(64, device="loopback", input_channel=1, max_latency_seconds=0.05)(x))
metro = subprocess.Popen(["jack_metro", "-n", "metro", "-b", "900", "-A", "0.1", "-D", "60"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    time.sleep(0.5)
    subprocess.run(["jack_connect", "metro:900_bpm", "loopback:playback_1"], check=True)
    out["not_repeatable"] = error(lambda: card(x))
finally:
    metro.terminate()
    metro.wait()
sd._terminate()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def jack_env():
    missing = [tool for tool in ("jackd", "jack_wait", "jack_metro", "jack_connect") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no JACK server here ({missing} not found): apt-get install jackd2 libportaudio2")
    probe = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"sounddevice/PortAudio unavailable: {probe.stderr.strip().splitlines()[-1]}")
    server = f"physnn-test-{os.getpid()}"  # a private server: other JACK users on this machine are untouched
    env = {**os.environ, "JACK_DEFAULT_SERVER": server, "JACK_NO_AUDIO_RESERVATION": "1"}
    jackd = subprocess.Popen(["jackd", "-n", server, "-R", "-L", "2", "-d", "dummy", "-r", "44100", "-p", "256"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ready = subprocess.run(["jack_wait", "-s", server, "-w", "-t", "10"], env=env, capture_output=True)
        if ready.returncode:
            jackd.terminate()
            pytest.skip(f"jackd did not start: {jackd.communicate(timeout=10)[1][-300:]}")
        yield env
    finally:
        jackd.terminate()
        jackd.wait(10)


def test_sound_card_on_jack_loopback_aligns_rejects_and_checks_repeatability(jack_env):
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=jack_env, capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-2000:]
    out = json.loads(lines[0][len("RESULT "):])
    assert out["max_abs_error"] == 0.0 and out["delay"] == 256  # bit-exact once the JACK period is removed
    assert "6 passed, 1 skipped, 0 failed" in out["check_device"]
    assert "recording clipped (peak 0.9999" in out["clipped"]
    assert "sync chirp not found on input 1" in out["unwired"] and "is output 0 wired to it?" in out["unwired"]
    assert "take 2 differs from take 1 by an error-to-signal ratio" in out["not_repeatable"]


def test_sync_chirp_is_found_at_its_delay_in_noise():
    chirp = sync_chirp(44100, 0.05)
    rng = np.random.default_rng(0)
    recording = 0.05 * rng.standard_normal(6000)
    recording[1234:1234 + chirp.size] += 0.8 * chirp
    delay, sync = find_delay(recording, chirp, max_delay=3000)
    assert delay == 1234 and sync > 0.9
    assert find_delay(0.05 * rng.standard_normal(6000), chirp, max_delay=3000)[1] < 0.2


def test_error_to_signal_ratio():
    reference = np.sin(np.linspace(0, 20, 500))
    assert error_to_signal(reference, reference) == 0.0
    assert math.isclose(error_to_signal(1.1 * reference, reference), 0.01)
    assert error_to_signal(reference, np.zeros(500)) == math.inf
