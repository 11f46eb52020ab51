"""Physical systems behind the one :class:`physnn.Device` interface.

Families live in subpackages (``measured``, and as they land ``wave``,
``audio``, ``quantum``, ``adapters``), imported on use. Build any registered
device by name with :func:`create`; list them with :func:`available` or
``physnn devices``.
"""

from ._registry import ENTRY_POINT_GROUP, available, create, factory_of, register, registry_name
from .blackbox import BlackBox
from .oscillators import CoupledPendula
from .recorded import Recorded, ReplayDevice, recording
from .reference import ReferenceDevice
from .wrapper import Wrapper

__all__ = ["BlackBox", "CoupledPendula", "ENTRY_POINT_GROUP", "Recorded", "ReferenceDevice", "ReplayDevice", "Wrapper",
           "available", "create", "factory_of", "recording", "register", "registry_name"]
