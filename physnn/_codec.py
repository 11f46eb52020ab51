"""Configurations as data: JSON plus named tensors, and the verified file that holds them.

:func:`encode` turns a device configuration (numbers, strings, tuples, lists,
dicts, tensors, arrays, dtypes, physnn dataclasses such as wave ``Port`` s, and
devices) into JSON-able values; tensors and arrays go to a ``tensors`` dict
under a key, devices to a reference made by a callback. :func:`decode` undoes
it. Anything else (a function, an open session) raises
:class:`~physnn.errors.NotRebuildableError` naming the setting.

The file (``physnn.save``)::

    physnn-model <format> sha256=<64 hex digits of everything after this line>\\n
    <manifest: one line of JSON>\\n
    <torch.save of a dict name -> tensor, read back with weights_only=True>

``head -2 model.physnn | tail -1 | python -m json.tool`` shows the manifest
without physnn or torch; nothing in the file is unpickled as code.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._atomic import atomic_write
from ._framing import corruption, frame, no_header, unframe
from .device import Device
from .errors import ModelFileError, NotRebuildableError

FORMAT = 1
KIND = "physnn-model"
#: the header of a fit() checkpoint (physnn.training._checkpoint), which load() also accepts
CHECKPOINT_MAGIC = b"physnn-checkpoint "


def encode(value: Any, key: str, tensors: dict[str, torch.Tensor], device_ref: Callable[[Device], Any]) -> Any:
    """``value`` as JSON-able data; tensors and arrays are stored in ``tensors`` under ``key``-derived names."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray) and value.dtype != object:
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"__ndarray__": key}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, Device):
        return {"__device__": device_ref(value)}
    if isinstance(value, (tuple, list)):
        items = [encode(v, f"{key}.{i}", tensors, device_ref) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: encode(v, f"{key}.{k}", tensors, device_ref) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and _is_physnn(type(value)):
        fields = {f.name: encode(getattr(value, f.name), f"{key}.{f.name}", tensors, device_ref)
                  for f in dataclasses.fields(value) if f.init}
        return {"__dataclass__": _path_of(type(value)), "fields": fields}
    raise NotRebuildableError(f"setting {key.rpartition('/')[2]!r} holds a {type(value).__name__}, which is not "
                              "data (numbers, strings, sequences, tensors, arrays, devices)")


def decode(value: Any, tensors: dict[str, torch.Tensor], device_of: Callable[[str], Any]) -> Any:
    """The value :func:`encode` gave ``value`` for; device references are resolved by ``device_of``."""
    if isinstance(value, list):
        return [decode(v, tensors, device_of) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]].clone()
    if "__ndarray__" in value:
        return tensors[value["__ndarray__"]].numpy().copy()
    if "__dtype__" in value:
        dtype = getattr(torch, str(value["__dtype__"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ModelFileError(f"a saved configuration names the dtype {value['__dtype__']!r}, which torch lacks")
        return dtype
    if "__device__" in value:
        return device_of(value["__device__"])
    if "__tuple__" in value:
        return tuple(decode(v, tensors, device_of) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: decode(v, tensors, device_of) for k, v in value["__dict__"].items()}
    if "__dataclass__" in value:
        cls = resolve_physnn(value["__dataclass__"], "data class")
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):  # never call another physnn function
            raise ModelFileError(f"a saved configuration names {value['__dataclass__']}, which is not a data class")
        return cls(**{k: decode(v, tensors, device_of) for k, v in value["fields"].items()})
    raise ModelFileError(f"unknown entry {sorted(value)} in a saved configuration")


def resolve_physnn(path: str, what: str) -> Any:
    """The object at ``"physnn.module:Qual.name"``; only physnn's own modules are imported from a file."""
    module, _, attr = path.partition(":")
    if not (module == "physnn" or module.startswith("physnn.")) or not attr:
        raise ModelFileError(f"the file names the {what} {path!r}; only physnn's own (or registered devices) "
                             "are loaded from a file")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _path_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_physnn(cls: type) -> bool:
    return cls.__module__ == "physnn" or cls.__module__.startswith("physnn.")


def write_file(path: Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write the header, manifest and tensors to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    body = json.dumps(manifest, separators=(",", ":")).encode() + b"\n" + buffer.getvalue()
    return atomic_write(path, lambda f: f.write(frame(KIND, FORMAT, body)))


def read_file(path: Path, data: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and tensors of the bytes ``data`` of the model file ``path``, after every check."""
    if (framed := unframe(KIND, data)) is None:
        raise ModelFileError(f"model file {path} {no_header(KIND, data)}; it was truncated, overwritten or is not "
                             "a physnn.save file")
    version, digest, body = framed
    if version > FORMAT:
        raise ModelFileError(f"model file {path} has format {version}, newer than this physnn reads "
                             f"({FORMAT}); upgrade physnn to load it")
    if problem := corruption(body, digest):
        raise ModelFileError(f"model file {path} {problem}")
    line, _, payload = body.partition(b"\n")
    try:
        manifest = json.loads(line)
        tensors = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a verified file that cannot be parsed is still the file's fault
        raise ModelFileError(f"model file {path} passed its digest but cannot be parsed: {exc}") from exc
    return manifest, tensors
