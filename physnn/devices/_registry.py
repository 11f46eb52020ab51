"""The string-keyed device registry: ``physnn.devices.create("name", **config)``.

Built-in devices are listed here as ``"module:attribute"`` strings and imported
only when created, so ``import physnn`` stays light. Third-party packages add
devices through the entry-point group ``physnn.devices``::

    [project.entry-points."physnn.devices"]
    my-cavity = "my_package.cavity:MyCavity"

A registered object is a :class:`~physnn.Device` subclass or a factory function
returning a device.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..device import Device, keywords_of
from ..errors import ConfigurationError
from ._catalog import CATALOG, DeviceInfo
from ._config import check_config

ENTRY_POINT_GROUP = "physnn.devices"

_BUILTIN: dict[str, str] = {name: entry.target for name, entry in CATALOG.items()}
_REGISTERED: dict[str, Callable[..., Device] | str] = {}


def register(name: str, factory: Callable[..., Device] | str, *, overwrite: bool = False) -> None:
    """Make ``create(name, ...)`` build a device with ``factory`` (a class, a function or ``"module:attr"``)."""
    if not overwrite and name in _table():
        raise ConfigurationError(f"a device named {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTERED[name] = factory


def available() -> list[str]:
    """Names of every registered device, built-in and from entry points."""
    return sorted(_table())


def create(name: str, **config: Any) -> Device:
    """Build the device registered as ``name`` with keyword ``config``.

    An unknown keyword, a missing one, or a value whose type contradicts the factory's annotation
    raises :class:`~physnn.errors.ConfigurationError` before the device is built.
    """
    table = _table()
    if name not in table:
        raise ConfigurationError(f"no device named {name!r}; registered devices: {sorted(table)}")
    factory = _resolve(table[name])
    check_config(name, factory, config)
    device = factory(**config)
    if not isinstance(device, Device):
        raise ConfigurationError(f"device {name!r} built a {type(device).__name__}, not a physnn.Device")
    if not isinstance(factory, type):  # a factory function: its keywords, not the class's, rebuild the device
        device.built_by(name, keywords_of(factory, (), config))
    return device


def registry_name(device: Device | type) -> str | None:
    """The name ``create`` builds ``device`` (an instance or a class) by; None when it is not registered."""
    factory = device.config_factory if isinstance(device, Device) else device
    if isinstance(factory, str):
        return factory
    for name, target in _table().items():
        if isinstance(target, str) and target.rpartition(".")[2].rpartition(":")[2] != factory.__name__:
            continue  # resolve only the entries that can be this class (importing is what costs)
        try:
            if _resolve(target) is factory:
                return name
        except ImportError:
            continue
    return None


def factory_of(name: str) -> Callable[..., Device]:
    """The class or function registered as ``name`` (imported on demand)."""
    table = _table()
    if name not in table:
        raise ConfigurationError(f"no device named {name!r}; registered devices: {sorted(table)}")
    return _resolve(table[name])


def catalog_entry(name: str) -> DeviceInfo | None:
    """The static description of built-in ``name``; None for devices registered at run time or by entry point."""
    entry = CATALOG.get(name)
    return entry if entry is not None and _table().get(name) == entry.target else None


def check_settings(name: str) -> dict[str, Any]:
    """The small settings ``physnn check NAME`` builds ``name`` with (its catalog entry's, else the
    factory's own ``check_settings`` attribute, else none)."""
    entry = catalog_entry(name)
    return dict(entry.check_settings if entry is not None else getattr(factory_of(name), "check_settings", {}))


def _table() -> dict[str, Callable[..., Device] | str]:
    table: dict[str, Callable[..., Device] | str] = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep.value)
    table.update(_REGISTERED)
    return table


def _resolve(target: Callable[..., Device] | str) -> Callable[..., Device]:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
