"""Cost of trusting nothing: re-sending controls and record length, re-reading scale factors, every acquisition.

Run: ``python benchmarks/bench_instrument_sharing.py [--repeats 30]``. A
VisaDevice drives the loopback emulator (ReferenceDevice(4)); for each batch
size it times, interleaved in the same run, one whole forward call and the
commands that each call now repeats instead of caching: the two control
writes ("resend" mode), ``ACQ:POIN`` + ``WAV:YINC?`` + ``WAV:YOFF?`` (always),
and the two control read-back queries ("readback" mode). Wall time (the work is I/O between
two threads); min and median of ``--repeats``; ratio = extra / forward call.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from physnn.devices import ReferenceDevice
from physnn.devices.adapters import InstrumentEmulator, VisaDevice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with InstrumentEmulator(ReferenceDevice(4), max_points=1 << 22) as emu, VisaDevice(emu.resource) as device:
        controls = {c.name: c.default_tensor(torch.float64) for c in device.controls}
        settings = {k: v.numpy() for k, v in controls.items()}
        awg, p = device._awg, device.profile
        assert awg is not None

        def controls_resent() -> None:  # skipped before when unchanged (training changes them every call anyway)
            for knob in device.controls:
                awg.write(device._set_command(knob, settings[knob.name]))

        def record_and_scale() -> None:  # sent/read once per session before
            awg.write(p["digitizer"]["points"].format(points=device.points))
            awg.number(p["digitizer"]["y_increment"])
            awg.number(p["digitizer"]["y_offset"])

        def readback() -> None:  # verify = "readback" instead of resending the controls
            for knob in device.controls:
                awg.query(p["controls"]["query"].format(name=knob.name))

        extras = {"controls": controls_resent, "record+scale": record_and_scale, "readback": readback}
        print(f"{'batch':>6} {'forward ms min/med':>20}" + "".join(f" {name + ' ms':>16} {'ratio':>6}"
                                                              for name in extras))
        for batch in (1, 64, 4096):
            x = torch.rand(batch, 4, dtype=torch.float64) - 0.5
            times = interleaved({"forward": functools.partial(device, x, controls), **extras}, args.repeats)
            fwd = statistics.median(times["forward"])
            row = f"{batch:>6} {min(times['forward']) * 1e3:>9.2f}/{fwd * 1e3:<9.2f} "
            for name in extras:
                t = times[name]
                row += f" {min(t) * 1e3:>7.2f}/{statistics.median(t) * 1e3:<7.2f} {statistics.median(t) / fwd:6.1%}"
            print(row)


def interleaved(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each contender, run in turn ``repeats`` times after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
