"""``physnn.save`` / ``physnn.load``: a trained physical model as data, deployable onto other instances.

A saved model holds the model's ``state_dict`` (digital weights, trained
controls), every device and twin its :class:`~physnn.PhysicalLayer` s use as
data (registry name or physnn class, :meth:`~physnn.Device.config`, the
device's own state such as a fitted twin's calibration, its random generator),
each layer's route, and how to rebuild the model: the builder that made it
(``physnn.training.physical_network`` and friends record themselves with
:func:`builds_model`), else a template the caller passes (``model=``).
The file format is in :mod:`physnn._codec`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._codec import CHECKPOINT_MAGIC, FORMAT, decode, encode, read_file, resolve_physnn, write_file
from .device import Device, keywords_of
from .devices._registry import create, registry_name
from .errors import ConfigurationError, ModelFileError, NotRebuildableError
from .layer import PhysicalLayer

_BUILD = "_physnn_build"


def builds_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Mark a physnn model builder: the models it returns remember it and its arguments, so
    :func:`load` rebuilds them without a template."""
    @functools.wraps(builder)
    def build(*args: Any, **kwargs: Any) -> nn.Module:
        model = builder(*args, **kwargs)
        model.__dict__[_BUILD] = (f"{builder.__module__}:{builder.__qualname__}", keywords_of(builder, args, kwargs))
        return model

    build.__physnn_builder__ = True  # type: ignore[attr-defined]
    return build


def save(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (any ``nn.Module``, typically holding :class:`~physnn.PhysicalLayer` s) to ``path``.

    Devices that cannot be rebuilt from their configuration (a wrapped function,
    a live instrument) are saved with their interface and the reason, and
    :func:`load` then needs an instance for them (``devices=``). Returns ``path``.
    """
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"physnn.save needs an nn.Module, got {type(model).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"physnn.save: the folder {path.parent} of {path} does not exist")
    tensors: dict[str, torch.Tensor] = {}
    catalog = _Catalog(tensors)
    layers = []
    for index, (name, layer) in enumerate(named_physical_layers(model)):
        layers.append({"name": name, "device": catalog.ref(layer.device),
                       "twin": None if layer.twin is None else catalog.ref(layer.twin), "route": layer.route})
        tensors[f"layers/{index}/generator"] = layer.generator.get_state()
    builder, why_not = _describe_build(model, tensors, catalog)
    tensors.update({f"model/{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()})
    from . import __version__

    manifest = {"format": FORMAT, "physnn": __version__, "model_class": f"{type(model).__module__}:"
                f"{type(model).__qualname__}", "training": model.training, "builder": builder,
                "builder_missing": why_not, "layers": layers, "devices": catalog.entries}
    return write_file(path, manifest, tensors)


def load(path: str | os.PathLike[str], *, devices: Mapping[str | int, Device] | None = None,
         model: nn.Module | None = None, route: str | None = None) -> nn.Module:
    """The model saved at ``path`` (by :func:`save`, or a ``fit`` checkpoint with ``model=``).

    Args:
        path: a file written by :func:`physnn.save`, or ``checkpoint.pt`` of
            :func:`physnn.training.fit` (weights only: needs ``model=``).
        devices: deploy onto other instances: physical layer name (as in
            ``model.named_modules()``) or index -> device, e.g. the hardware
            adapter for a twin-trained layer. Each must have the saved device's
            shapes and controls (names, shapes, bounds, units).
        model: a template with the saved structure (needed when the model was
            not made by a physnn builder); it is loaded in place and returned.
        route: every physical layer's route after loading (default: each one's saved
            route); e.g. ``"none"`` to run a model trained by backprop on a black box.

    Raises:
        ModelFileError: the file is corrupt, newer, or does not fit ``model``.
        NotRebuildableError: a saved device cannot be rebuilt and none was given for it.
        ConfigurationError: a deployed device's interface differs from the saved one.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read: {exc}") from exc
    if data.startswith(CHECKPOINT_MAGIC):
        return _from_checkpoint(path, data, devices or {}, model, route)
    manifest, tensors = read_file(path, data)
    layers = manifest["layers"]
    resolver = _Resolver(path, manifest["devices"], tensors, layers, _chosen(devices or {}, layers, manifest, path))
    if model is None:
        model = _build(path, manifest, tensors, resolver)
    found = dict(named_physical_layers(model))
    if list(found) != [entry["name"] for entry in layers]:
        raise ModelFileError(f"model file {path} holds physical layers {[e['name'] for e in layers]}, the model "
                             f"has {list(found)}")
    for entry in layers:
        layer = found[entry["name"]]
        layer.device = resolver.device(entry["device"], layer.device)
        layer.twin = None if entry["twin"] is None else resolver.device(entry["twin"], layer.twin)
    load_exact(model, _prefixed(tensors, "model/"), f"model file {path}")
    for index, entry in enumerate(layers):
        layer = found[entry["name"]]
        layer.route = entry["route"] if route is None else route
        layer.generator.set_state(tensors[f"layers/{index}/generator"])
    return model.train(manifest["training"])


def named_physical_layers(model: nn.Module) -> Iterator[tuple[str, PhysicalLayer]]:
    """``(name, layer)`` for every :class:`~physnn.PhysicalLayer` in ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, PhysicalLayer):
            yield name, module


def interface(device: Device) -> dict[str, Any]:
    """What a deployed device must share with the saved one: shapes and controls (JSON-able)."""
    return {"in_shape": list(device.in_shape), "out_shape": list(device.out_shape),
            "controls": [{"name": c.name, "shape": list(c.shape), "low": c.low, "high": c.high, "unit": c.unit}
                         for c in device.controls]}


def check_interface(saved: dict[str, Any], label: str, device: Device, where: str) -> None:
    """Raise ConfigurationError naming every difference between ``device`` and the saved interface."""
    if not isinstance(device, Device):
        raise ConfigurationError(f"{where}: expected a physnn.Device, got {type(device).__name__}")
    mine = interface(device)
    diffs = [f"{k} {saved[k]} saved, {mine[k]} given" for k in ("in_shape", "out_shape") if saved[k] != mine[k]]
    old, new = {c["name"]: c for c in saved["controls"]}, {c["name"]: c for c in mine["controls"]}
    if sorted(old) != sorted(new):
        diffs.append(f"controls {sorted(old)} saved, {sorted(new)} given")
    for name in sorted(set(old) & set(new)):
        changed = [f"{k} {old[name][k]} saved, {new[name][k]} given" for k in ("shape", "low", "high", "unit")
                   if old[name][k] != new[name][k]]
        diffs += [f"control {name!r} {c}" for c in changed]
    if diffs:
        raise ConfigurationError(f"{where}: {device._label()} does not match the saved {label}: {'; '.join(diffs)}")


def load_exact(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` strictly, in the saved dtypes (the module is converted to them
    when it holds another floating dtype), so outputs are bit-identical to the saved module's."""
    current = module.state_dict()
    missing, unexpected = sorted(set(current) - set(state)), sorted(set(state) - set(current))
    if missing or unexpected:
        raise ModelFileError(f"{what} does not fit {type(module).__name__}: missing {missing[:8]}, "
                             f"unexpected {unexpected[:8]} (of {len(missing)}, {len(unexpected)})")
    saved = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(saved) == 1 and any(current[k].dtype != state[k].dtype for k in state if state[k].is_floating_point()):
        module.to(saved.pop())
        current = module.state_dict()
    wrong = [f"{k} {tuple(current[k].shape)} {current[k].dtype} vs saved {tuple(v.shape)} {v.dtype}"
             for k, v in state.items() if current[k].dtype != v.dtype or current[k].shape != v.shape]
    if wrong:
        raise ModelFileError(f"{what} does not fit {type(module).__name__}, whose tensors differ in shape or dtype: "
                             f"{wrong[:8]}")
    module.load_state_dict(state, strict=True)


class _Catalog:
    """Devices of a model being saved, each once (by identity), described as data."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors, self.entries, self._ids = tensors, {}, {}
        self._held: list[Device] = []  # keeps ids unique while saving

    def ref(self, device: Device) -> str:
        if id(device) in self._ids:
            return self._ids[id(device)]
        key = f"d{len(self._ids)}"
        self._ids[id(device)] = key
        self._held.append(device)
        entry: dict[str, Any] = {"label": device._label(), "interface": interface(device), "rebuildable": False}
        self.entries[key] = entry
        local: dict[str, torch.Tensor] = {}
        try:
            factory = device_factory(device)
            config = {k: encode(v, f"devices/{key}/config/{k}", local, self.ref) for k, v in device.config().items()}
        except NotRebuildableError as exc:
            entry["reason"] = str(exc) if device._label() in str(exc) else f"{device._label()}: {exc}"
        else:
            entry.update(rebuildable=True, factory=factory, config=config)
            self.tensors.update(local)
            self.tensors.update({f"devices/{key}/state/{k}": v.detach().cpu().clone()
                                 for k, v in device.state_dict().items()})
            self.tensors[f"devices/{key}/generator"] = device.generator.get_state()
        return key


def device_factory(device: Device) -> str:
    """How a file names what rebuilds ``device``: its registry name, else its physnn class path."""
    name = registry_name(device)
    if name is not None:
        return name
    cls = type(device)
    if cls.__module__.startswith("physnn."):
        return f"{cls.__module__}:{cls.__qualname__}"
    raise NotRebuildableError(f"{device._label()} is neither a registered device nor part of physnn; register "
                              f"its class with physnn.devices.register(name, {cls.__name__}) before saving")


def rebuild(factory: str, config: dict[str, Any]) -> Device:
    """The device :func:`device_factory` named, built from ``config``."""
    if ":" not in factory:
        return create(factory, **config)
    cls = resolve_physnn(factory, "device class")
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        raise ModelFileError(f"the file names {factory}, which is not a physnn.Device")
    return cls(**config)


def _describe_build(model: nn.Module, tensors: dict[str, torch.Tensor],
                    catalog: _Catalog) -> tuple[dict[str, Any] | None, str]:
    """The builder entry of the manifest, or None and why there is none."""
    build = model.__dict__.get(_BUILD)
    if build is None:
        return None, f"{type(model).__name__} was not made by a physnn model builder"
    target, arguments = build
    try:
        encoded = {k: encode(v, f"builder/{k}", tensors, catalog.ref) for k, v in arguments.items()}
    except NotRebuildableError as exc:
        return None, f"the arguments of {target} are not data: {exc}"
    return {"target": target, "arguments": encoded}, ""


class _Resolver:
    """Saved device references -> device instances: deployed ones, else rebuilt from their configuration."""

    def __init__(self, path: Path, entries: dict[str, Any], tensors: dict[str, torch.Tensor],
                 layers: list[dict[str, Any]], chosen: dict[str, Device]) -> None:
        self.path, self.entries, self.tensors, self.layers = path, entries, tensors, layers
        self.built: dict[str, Device] = dict(chosen)

    def device(self, key: str, fallback: Device | None = None) -> Device:
        """The device for ``key``; ``fallback`` (a template's) stands in for one that cannot be rebuilt."""
        if key in self.built:
            return self.built[key]
        entry = self.entries[key]
        if not entry["rebuildable"]:
            users = [e["name"] for e in self.layers if key in (e["device"], e["twin"])]
            if fallback is None:
                raise NotRebuildableError(f"model file {self.path}: layer(s) {users} use {entry['label']}, which "
                                          f"cannot be rebuilt ({entry['reason']}); deploy onto an instance: "
                                          f"physnn.load(path, devices={{{(users or ['0'])[0]!r}: device}})")
            check_interface(entry["interface"], entry["label"], fallback, f"the template's layer(s) {users}")
            self.built[key] = fallback
            return fallback
        config = {k: decode(v, self.tensors, self.device) for k, v in entry["config"].items()}
        device = rebuild(entry["factory"], config)
        load_exact(device, _prefixed(self.tensors, f"devices/{key}/state/"), f"device {entry['label']} saved in "
                                                                              f"{self.path}")
        device.generator.set_state(self.tensors[f"devices/{key}/generator"])
        self.built[key] = device
        return device


def _chosen(devices: Mapping[str | int, Device], layers: list[dict[str, Any]], manifest: dict[str, Any],
            path: Path) -> dict[str, Device]:
    """Saved device key -> deployed instance, after checking each against the saved interface."""
    by_name = {e["name"]: e for e in layers} | {str(i): e for i, e in enumerate(layers)}
    chosen: dict[str, Device] = {}
    for key, device in devices.items():
        entry = by_name.get(str(key))
        if entry is None:
            raise ConfigurationError(f"physnn.load(devices=...): {path} has no physical layer {key!r}; its layers "
                                     f"are {[e['name'] for e in layers]} (or indices 0..{len(layers) - 1})")
        saved = manifest["devices"][entry["device"]]
        check_interface(saved["interface"], saved["label"], device, f"layer {entry['name']!r}")
        if chosen.setdefault(entry["device"], device) is not device:
            raise ConfigurationError(f"physnn.load(devices=...): the layers sharing {saved['label']} were given "
                                     "different devices; give one device for all of them")
    return chosen


def _build(path: Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor],
           resolver: _Resolver) -> nn.Module:
    builder = manifest["builder"]
    if builder is None:
        raise ModelFileError(f"model file {path} cannot rebuild its {manifest['model_class']} "
                             f"({manifest['builder_missing']}); build the same model and pass it: "
                             "physnn.load(path, model=template)")
    build = resolve_physnn(builder["target"], "model builder")
    if not getattr(build, "__physnn_builder__", False):
        raise ModelFileError(f"model file {path} names {builder['target']}, which is not a physnn model builder")
    arguments = {k: decode(v, tensors, resolver.device) for k, v in builder["arguments"].items()}
    if "route" in arguments:  # built with the route every device takes; load() then sets each layer's own
        arguments["route"] = "none"
    return build(**arguments)


def _from_checkpoint(path: Path, data: bytes, devices: Mapping[str | int, Device],
                     model: nn.Module | None, route: str | None) -> nn.Module:
    """Load the weights of a ``fit`` checkpoint (the last epoch's) into ``model``, deploying ``devices``."""
    from .training._checkpoint import verified_state

    if model is None:
        raise ConfigurationError(f"{path} is a fit() checkpoint, which holds weights only: pass the model fit "
                                 "trained (built the same way) as physnn.load(path, model=...)")
    state = verified_state(data, path)
    found = dict(named_physical_layers(model))
    names = list(found)
    for key, device in devices.items():
        name = names[int(key)] if str(key).isdigit() and int(key) < len(names) else str(key)
        if name not in found:
            raise ConfigurationError(f"physnn.load(devices=...): the model has no physical layer {key!r}; its "
                                     f"layers are {names}")
        layer = found[name]
        check_interface(interface(layer.device), layer.device._label(), device, f"layer {name!r}")
        layer.device = device
    load_exact(model, state["method"]["model"], f"checkpoint {path}")
    for layer in found.values():  # also checks each route against a deployed device
        layer.route = route or layer.route
    return model


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
