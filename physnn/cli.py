"""The ``physnn`` command: ``physnn devices``, ``physnn check NAME``, ``physnn data``, ``physnn demo``."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    if getattr(args, "data_dir", None):
        os.environ["PHYSNN_DATA"] = str(args.data_dir)
    from .errors import PhysnnError
    try:
        return int(args.handler(args) or 0)
    except PhysnnError as exc:
        print(f"physnn: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="physnn", description="Physical and hybrid neural networks.")
    sub = parser.add_subparsers(title="commands")

    p = sub.add_parser("devices", help="list every registered device with its controls")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--data-dir", help="data directory for devices built from measurements")
    p.set_defaults(handler=_devices)

    p = sub.add_parser("check", help="run the conformance check physnn.testing.check_device on a device")
    p.add_argument("name", help="registered device name (see `physnn devices`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor setting, e.g. --set n=3 (repeatable)")
    p.add_argument("--data-dir", help="data directory for devices built from measurements")
    p.set_defaults(handler=_check)

    p = sub.add_parser("data", help="show the data directory and which datasets are present")
    p.add_argument("--data-dir", help="data directory (default: $PHYSNN_DATA, else the user cache)")
    p.set_defaults(handler=_data)

    p = sub.add_parser("demo", help="train a vowel classifier through simulated hardware (no files needed)")
    p.add_argument("--out", default="physnn-demo", help="folder for the plots and the results table")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per method (default: the demo's own)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_demo)

    for hook in _extension_parsers():
        hook(sub)
    return parser


def _extension_parsers() -> list[Any]:
    """Subcommands contributed by device families: ``process`` (audio), ``serve-instrument`` (adapters)."""
    hooks = []
    for module, name in (("physnn.devices.audio.wavio", "add_process_parser"),
                         ("physnn.devices.adapters.emulator", "add_serve_parser")):
        try:
            hooks.append(getattr(importlib.import_module(module), name))
        except ImportError:
            continue
    return hooks


def parse_settings(pairs: Sequence[str], what: str = "--set") -> dict[str, Any]:
    """``["n=3", "omega=[1, 2]", "name=x"]`` -> ``{"n": 3, "omega": [1, 2], "name": "x"}``.

    Values are parsed as Python literals where they parse, else kept as strings;
    a pair without ``=`` raises :class:`~physnn.errors.ConfigurationError` naming ``what``.
    """
    from .errors import ConfigurationError
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[key] = value
    return settings


def _devices(args: argparse.Namespace) -> int:
    from .devices import available, create
    rows = []
    for name in available():
        try:
            with create(name) as device:
                info = device.describe()
        except Exception as exc:  # noqa: BLE001 - a device that cannot be built is listed with the reason
            info = {"name": name, "unavailable": f"{type(exc).__name__}: {exc}"}
        rows.append(info)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for info in rows:
        if "unavailable" in info:
            print(f"{info['name']}: not available with defaults ({info['unavailable'].splitlines()[0]})\n")
            continue
        kind = "differentiable" if info["differentiable"] else "black box"
        print(f"{info['name']} ({info['class']}, {kind}): in {list(info['in_shape'])} -> out {list(info['out_shape'])}")
        for line in info["controls"] or ["(no controls)"]:
            print(f"    {line}")
        print()
    return 0


def _check(args: argparse.Namespace) -> int:
    from .devices import create
    from .testing import DeviceCheckError, check_device
    with create(args.name, **parse_settings(args.set)) as device:
        try:
            report = check_device(device)
        except DeviceCheckError as exc:
            print(exc)
            return 1
    print(report)
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data import data_dir, describe_data_dir
    print(describe_data_dir(data_dir(args.data_dir)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    run_demo(out=args.out, epochs=args.epochs, seed=args.seed)
    return 0
