"""Shared pytest options and fixtures: ``--device-address`` opts in to tests against a real instrument;
``one_thread`` runs a module's small-tensor tests on one torch thread; ``load_example`` imports an
example script."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pytest_addoption(parser):
    parser.addoption("--device-address", default=None,
                     help="VISA resource of a real instrument for the opt-in hardware tests, e.g. "
                          "TCPIP::192.168.1.20::INSTR (profile from $PHYSNN_DEVICE_PROFILE, default physnn-emulator; "
                          "64-sample drives when the profile has no describe query)")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module, restored afterwards: on small tensors a second thread only contends (on
    2 shared cores it made small FFTs 1000x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def load_example():
    """``load_example(name)``: ``examples/<name>.py`` imported as a module (the examples are scripts, not a package)."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
