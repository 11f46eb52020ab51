"""The ``physnn`` command: ``physnn devices``, ``physnn check NAME``, ``physnn data``, ``physnn demo``.

Exit status: 0 done, 1 a device failed its conformance check, 2 a user mistake
(unknown device, bad ``--set``, missing file...), reported as one line on
stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from . import __version__

#: optional modules -> the pip extra that provides them (for "not installed" messages)
EXTRA_OF = {"pennylane": "quantum", "soundfile": "audio", "pedalboard": "audio", "scipy": "data",
            "sklearn": "data", "openpyxl": "data", "pyvisa": "lab", "sounddevice": "lab", "ray": "ray",
            "qiskit": "qiskit", "numba": "fast"}

#: subcommands contributed by device families, imported only when invoked: name -> (module, parser hook, help)
EXTENSIONS = {
    "process": ("physnn.devices.audio.wavio", "add_process_parser", "run an audio device on a sound file"),
    "serve-instrument": ("physnn.devices.adapters.emulator", "add_serve_parser",
                         "serve a simulated device as an SCPI instrument on TCP"),
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    with _data_dir_env(getattr(args, "data_dir", None)):
        return _run(args.handler, args, parser.prog)


def _run(handler: Callable[[argparse.Namespace], int | None], args: argparse.Namespace, prog: str) -> int:
    """Run a subcommand; a user mistake (a PhysnnError, a missing optional module) is one line and status 2."""
    from .errors import PhysnnError
    try:
        return int(handler(args) or 0)
    except PhysnnError as exc:
        return fail(prog, exc)
    except ImportError as exc:  # an optional dependency that is not installed
        return fail(prog, missing_module(exc) if isinstance(exc, ModuleNotFoundError) else exc)
    except BrokenPipeError:  # the reader left early (`physnn devices | head -1`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail
        return 0


def fail(prog: str, error: BaseException | str) -> int:
    """Print ``error`` as one line ``PROG: error: ...`` on stderr; return exit status 2."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


def missing_module(exc: ModuleNotFoundError) -> str:
    """What to install for a missing optional module, e.g. ``pip install 'physnn[quantum]'`` for pennylane."""
    top = (exc.name or "").split(".")[0]
    if top in EXTRA_OF:
        return f"{top} is not installed; install it with pip install 'physnn[{EXTRA_OF[top]}]'"
    return f"{exc} (a module physnn needs is not installed)"


@contextmanager
def _data_dir_env(data_dir: str | None) -> Iterator[None]:
    """Point ``$PHYSNN_DATA`` at ``--data-dir`` for the command (devices read their data from it), then restore."""
    old = os.environ.get("PHYSNN_DATA")
    if data_dir:
        os.environ["PHYSNN_DATA"] = str(data_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PHYSNN_DATA", None)
        else:
            os.environ["PHYSNN_DATA"] = old


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; a family's subcommand (:data:`EXTENSIONS`) is imported only when it is ``command``."""
    parser = _Parser(prog="physnn", description="Physical and hybrid neural networks.")
    parser.add_argument("--version", action="version", version=f"physnn {__version__}")
    sub = parser.add_subparsers(title="commands")

    p = sub.add_parser("devices", help="list every registered device with its controls (NAME: build it, in detail)")
    p.add_argument("name", nargs="?", help="show this device in detail (builds it with its default settings)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--data-dir", help="data directory for devices built from measurements")
    p.set_defaults(handler=_devices)

    p = sub.add_parser("check", help="run the conformance check physnn.testing.check_device on a device",
                       description="Check a registered device against the physnn.Device contract. By default the "
                                   "device is built with its small check settings (`physnn devices` lists them); "
                                   "--set overrides them, --full uses the full-size defaults instead.")
    p.add_argument("name", help="registered device name (see `physnn devices`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor setting, e.g. --set n=3 (repeatable)")
    p.add_argument("--full", action="store_true",
                   help="check the full-size default device (gradcheck costs 2 device calls per input element: "
                        "hours for a 44,100-sample audio device)")
    p.add_argument("--data-dir", help="data directory for devices built from measurements")
    p.set_defaults(handler=_check)

    p = sub.add_parser("data", help="show the data directory and which datasets are present")
    p.add_argument("--data-dir", help="data directory (default: $PHYSNN_DATA, else the user cache)")
    p.set_defaults(handler=_data)

    p = sub.add_parser("demo", help="train a vowel classifier through simulated hardware (no files needed)")
    p.add_argument("--out", default="physnn-demo", help="folder for the plots and the results table")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs per method (default: the demo's own)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_demo)

    for name, (module, hook, text) in EXTENSIONS.items():
        try:
            if name != command:  # listed in --help only
                sub.add_parser(name, help=text)
                continue
            getattr(importlib.import_module(module), hook)(sub)
        except ModuleNotFoundError as exc:  # without the family's optional modules: say what to install
            p = sub.add_parser(name, help=text, add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(handler=lambda args, exc=exc: _raise(exc))
    return parser


def _raise(exc: Exception) -> NoReturn:
    raise exc


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def torch_device(name: str) -> str:
    """The ``type=`` of a ``--device`` option: ``"cpu"``, or ``"cuda"`` where torch sees a CUDA GPU."""
    import torch

    if name not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"choose cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("cuda: torch.cuda.is_available() is False (no CUDA GPU, or a CPU-only "
                                         "torch build)")
    return name


def parse_settings(pairs: Sequence[str], what: str = "--set") -> dict[str, Any]:
    """``["n=3", "omega=[1, 2]", "name=x"]`` -> ``{"n": 3, "omega": [1, 2], "name": "x"}``.

    Values are parsed as Python literals where they parse, else kept as strings;
    a pair without ``=`` or with a key that is not an identifier, a repeated key,
    and a NaN or infinite number raise :class:`~physnn.errors.ConfigurationError`
    naming ``what``.
    """
    from .errors import ConfigurationError
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigurationError(f"{what} must look like KEY=VALUE with KEY a name, got {pair!r}")
        if key in settings:
            raise ConfigurationError(f"{what} {key}= given twice ({settings[key]!r}, then {value!r})")
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            settings[key] = value
        if not math.isfinite(_as_number(value)):
            raise ConfigurationError(f"{what} {key}= must be a finite number, got {value!r}")
    return settings


def _as_number(text: str) -> float:
    """``float(text)``, or 0.0 for text that is not one number (NaN and Inf included: ``nan``, ``1e999``)."""
    try:
        return float(text)
    except ValueError:
        return 0.0


def build_device(name: str, settings: dict[str, Any]) -> Any:
    """``physnn.devices.create(name, **settings)``; a constructor refusing the settings is a ConfigurationError."""
    from .devices import create
    from .errors import ConfigurationError, PhysnnError
    try:
        return create(name, **settings)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PhysnnError):
            raise
        raise ConfigurationError(f"device {name!r} refused the settings {settings}: {exc}") from exc


# ------------------------------------------------------------------- commands
def _devices(args: argparse.Namespace) -> int:
    from .devices._registry import available, catalog_entry
    if args.name:
        return _device_detail(args.name, args.json)
    rows = []
    for name in available():
        entry = catalog_entry(name)
        if entry is None:
            rows.append({"name": name})
            continue
        rows.append({"name": name, "class": entry.cls, "differentiable": entry.differentiable,
                     "in_shape": list(entry.in_shape), "out_shape": list(entry.out_shape),
                     "controls": list(entry.controls), "check_settings": dict(entry.check_settings),
                     "needs": _needs(entry)})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for row in rows:
        if "class" not in row:
            print(f"{row['name']}: registered at run time or by a package; `physnn devices {row['name']}` "
                  "builds it for a description\n")
            continue
        kind = "differentiable" if row["differentiable"] else "black box"
        print(f"{row['name']} ({row['class']}, {kind}): in {row['in_shape']} -> out {row['out_shape']}"
              + (f"  [needs {'; '.join(row['needs'])}]" if row["needs"] else ""))
        for line in row["controls"] or ["(no controls)"]:
            print(f"    {line}")
        print()
    return 0


def _needs(entry: Any) -> list[str]:
    """What a built-in device lacks here: uninstalled modules (with their extra) and missing data files."""
    from .data import data_dir
    needs = [f"pip install 'physnn[{entry.extra}]'" for module in entry.requires
             if importlib.util.find_spec(module) is None][:1]
    if entry.needs_data and not (data_dir() / entry.needs_data).is_file():
        needs.append(f"data file {entry.needs_data} (see `physnn data`)")
    return needs


def _device_detail(name: str, as_json: bool) -> int:
    from .devices._catalog import describe_control
    from .devices._registry import check_settings
    with build_device(name, {}) as device:
        info = device.describe()
        info["controls"] = [describe_control(c) for c in device.controls]
        info["check_settings"] = check_settings(name)
        docs = [c.doc for c in device.controls]
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    kind = "differentiable" if info["differentiable"] else "black box"
    print(f"{info['name']} ({info['class']}, {kind}): in {list(info['in_shape'])} -> out {list(info['out_shape'])}")
    for line, doc in zip(info["controls"], docs):
        print(f"    {line}" + (f": {doc}" if doc else ""))
    print(f"    physnn check settings: {info['check_settings'] or '(the defaults)'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .devices._registry import check_settings
    from .testing import DeviceCheckError, check_device
    settings = {} if args.full else check_settings(args.name)
    settings.update(parse_settings(args.set))
    with build_device(args.name, settings) as device:
        if args.full:
            elements = 2 * math.prod(device.in_shape)
            print(f"physnn check: full-size {device._label()}: gradcheck makes about {2 * elements:,} device calls "
                  "(2 per input element); drop --full for the small check settings", file=sys.stderr)
        try:
            report = check_device(device)
        except DeviceCheckError as exc:
            print(exc)
            return 1
    print(report)
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data import describe_data_dir
    print(describe_data_dir(args.data_dir))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .errors import ConfigurationError
    try:  # the output folder, before minutes of training
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"demo --out {args.out!r} cannot be a folder for the results: {exc}") from exc
    if not os.access(args.out, os.W_OK):
        raise ConfigurationError(f"demo --out {args.out!r} is not writable")
    run_demo(out=args.out, epochs=args.epochs, seed=args.seed)
    return 0
