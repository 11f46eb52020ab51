"""DevicePool: results equal serial evaluation; dead workers are replaced and their work redone."""

import functools
import json
import logging
import os
import subprocess
import sys
import time
import traceback
import uuid

import numpy as np
import pytest
import torch

from physnn import PhysicalLayer
from physnn.devices import BlackBox, ReferenceDevice
from physnn.devices.adapters import CallableDevice, DeviceTimeoutError
from physnn.errors import ConfigurationError, DeviceBusyError, DeviceOutputError, DeviceUnavailableError
from physnn.parallel import DevicePool
from physnn.testing import check_device

X = torch.linspace(-1, 1, 40).reshape(10, 4)
CONTROLS = {"gain": torch.tensor([0.5, 1.0, 2.0, 3.0]), "bias": torch.tensor([0.1, 0.0, -0.1, 0.2])}


def tanh_or_die(x: np.ndarray, *, marker: str = "", bad: float = 9.0) -> np.ndarray:
    """tanh(x); the first call (while ``marker`` does not exist) kills its process; NaN where x == bad."""
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return np.where(x == bad, np.nan, np.tanh(x))


def fragile(marker: str = "") -> CallableDevice:
    return CallableDevice(functools.partial(tanh_or_die, marker=marker), (4,), (4,), backend="numpy", name="fragile")


def test_thread_pool_equals_serial_and_passes_check_device():
    serial = ReferenceDevice(4)(X, CONTROLS)
    with DevicePool(ReferenceDevice(4), workers=3) as pool:
        assert (pool.in_shape, pool.controls, pool.differentiable) == ((4,), ReferenceDevice(4).controls, False)
        torch.testing.assert_close(pool(X, CONTROLS), serial)
        per_sample = {"gain": torch.rand(10, 4, generator=torch.Generator().manual_seed(0)) * 2}
        torch.testing.assert_close(pool(X, per_sample), ReferenceDevice(4)(X, per_sample))
        assert not check_device(pool).failed
    with DevicePool(BlackBox(ReferenceDevice(3), noise_std=0.1), workers=2, chunk_size=1, seed=5) as noisy:
        assert noisy.stochastic and not check_device(noisy).failed  # repeatable under a seed, per worker


def test_pool_drops_into_a_physical_layer_unchanged():
    def gradients(device):
        torch.manual_seed(0)
        layer = PhysicalLayer(device, route="zeroth_order", readout=torch.nn.Linear(4, 2), seed=1)
        layer(X).sum().backward()
        return [p.grad for p in layer.parameters()]

    with DevicePool(ReferenceDevice(4), workers=2) as pool:
        for in_pool, alone in zip(gradients(pool), gradients(ReferenceDevice(4))):
            torch.testing.assert_close(in_pool, alone)
        assert pool.calls == 2  # the forward, then every SPSA perturbation in one batched call


def test_training_through_a_pool_equals_training_through_the_device():
    from physnn.training import PhysicsAware, fit, physical_network

    labels = torch.arange(2).repeat(8)
    x = torch.stack([labels.float(), 1 - labels.float(), labels.float(), torch.ones(16)], 1)

    def train(device):
        model = physical_network([device], [2], twins=[ReferenceDevice(4)], seed=0)
        return fit(PhysicsAware(model, lr=0.05), (x, labels), epochs=2, batch_size=8, progress=False, plot=False)

    with DevicePool(ReferenceDevice(4), workers=2) as pool:
        pooled = train(pool)
    alone = train(ReferenceDevice(4))
    assert [r["loss"] for r in pooled.history] == pytest.approx([r["loss"] for r in alone.history], abs=1e-6)


def test_process_worker_that_dies_mid_batch_is_replaced_and_its_work_redone(tmp_path):
    marker = tmp_path / "died"
    factories = [fragile, functools.partial(fragile, str(marker))]  # worker 1 dies on its first chunk
    with DevicePool(factories, backend="process") as pool:
        torch.testing.assert_close(pool(X), torch.tanh(X))
        assert marker.exists() and pool._pool.restarts == 1
        bad = X.clone()
        bad[7, 1] = 9.0
        with pytest.raises(DeviceOutputError, match="NaN"):  # a device's own error reaches the caller
            pool(bad)
        torch.testing.assert_close(pool(X[:5]), torch.tanh(X[:5]))  # and the pool stays usable


def test_one_worker_per_instrument_over_visa():
    pytest.importorskip("pyvisa_py", reason="VisaDevice over loopback needs pyvisa-py: pip install 'physnn[lab]'")
    from physnn.devices.adapters import InstrumentEmulator, VisaDevice

    with InstrumentEmulator(ReferenceDevice(4)) as bench_a, InstrumentEmulator(ReferenceDevice(4)) as bench_b:
        factories = [functools.partial(VisaDevice, bench.resource) for bench in (bench_a, bench_b)]
        with DevicePool(factories, chunk_size=3) as pool:
            assert [c.name for c in pool.controls] == ["gain", "bias"]
            y = pool(X, CONTROLS)
        assert float((y - ReferenceDevice(4)(X, CONTROLS)).abs().max()) <= 5.0 / 32767  # one digitizer code


def test_pool_configuration_errors_are_clear():
    with pytest.raises(ConfigurationError, match="different devices"):
        DevicePool([functools.partial(ReferenceDevice, 3), functools.partial(ReferenceDevice, 4)])
    with pytest.raises(ConfigurationError, match="backend must be one of"):
        DevicePool(ReferenceDevice(2), backend="mpi")


# ------------------------------------------------- a pool never hangs; start-up failures are reported at once
def napper(hang_s: float) -> CallableDevice:
    """tanh; a batch holding a value above 0.5 hangs for ``hang_s`` seconds first (an instrument that never answers)."""
    return CallableDevice(functools.partial(nap, hang_s=hang_s), (4,), (4,), backend="numpy", name="napper")


def nap(x: np.ndarray, *, hang_s: float) -> np.ndarray:
    if x.max() > 0.5:
        time.sleep(hang_s)
    return np.tanh(x)


HANG_SCRIPT = """
import functools, json, sys, time
import torch
sys.path.insert(0, {tests!r})
from test_parallel import napper
from physnn.errors import DeviceTimeoutError
from physnn.parallel import DevicePool

pool = DevicePool(functools.partial(napper, 600.0), workers=2, backend={backend!r}, timeout_s=1.0)
x = torch.linspace(-1, 1, 8).reshape(2, 4)  # worker 1's chunk hangs for 10 minutes
start = time.monotonic()
try:
    pool(x)
except DeviceTimeoutError:
    timed_out = time.monotonic() - start
calm = torch.linspace(-1, 0.5, 8).reshape(2, 4)
again = bool(torch.allclose(pool(calm), torch.tanh(calm)))  # worker 1 rebuilt from its factory
start = time.monotonic()
pool.close()
print(json.dumps({{"timed_out_s": timed_out, "again": again, "close_s": time.monotonic() - start}}))
"""


@pytest.mark.parametrize("backend", ["thread", pytest.param("process", marks=pytest.mark.slow)])  # 3 spawns
def test_after_a_timeout_the_pool_recovers_closes_at_once_and_the_interpreter_exits(backend):
    script = HANG_SCRIPT.format(tests=os.path.dirname(__file__), backend=backend)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)  # hang: 600 s
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert 1.0 <= report["timed_out_s"] < 2.0 and report["again"]
    assert report["close_s"] < 1.0 + 2.0  # within timeout_s + 2 s


class FactoryFailed(RuntimeError):
    """A start-up error of the tests' own type."""


def unreachable(attempts: str) -> CallableDevice:
    open(os.path.join(attempts, uuid.uuid4().hex), "x").close()
    raise FactoryFailed("no instrument answers at TCPIP::10.0.0.9::INSTR")


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_worker_that_fails_to_start_reports_the_original_error_at_once(backend, tmp_path):
    with pytest.raises(FactoryFailed, match="no instrument answers at TCPIP::10.0.0.9::INSTR") as caught:
        DevicePool(functools.partial(unreachable, str(tmp_path)), workers=2, backend=backend, max_restarts=3)
    assert len(list(tmp_path.iterdir())) == 1  # worker 0 tried once; never retried, worker 1 never tried
    trace = "".join(traceback.format_exception(caught.value))
    assert "in unreachable" in trace and "raise FactoryFailed" in trace  # the worker's traceback comes along


def test_start_up_has_its_own_limit_and_a_slow_start_is_not_a_call_timeout():
    slow_start = functools.partial(napper_after, 1.5)
    with DevicePool(slow_start, workers=2, timeout_s=0.5) as pool:  # 1.5 s to build, 0.5 s per call
        torch.testing.assert_close(pool(X), torch.tanh(X))
    with pytest.raises(DeviceTimeoutError, match=r"worker 0 did not build its device within start_timeout_s=0.2"):
        DevicePool(slow_start, workers=2, start_timeout_s=0.2)


def napper_after(build_s: float) -> CallableDevice:
    time.sleep(build_s)
    return napper(0.0)


# ------------------------------------------------- one exclusive instrument is never fanned out to several workers
class Bench(ReferenceDevice):
    """A ReferenceDevice wired to a bench at ``address``: exclusive; each build leaves a file in ``builds``.

    ``lock``: a second session gets DeviceBusyError (the bench declares no resource then); ``hang_s``: a drive
    above 0.5 takes that long.
    """

    def __init__(self, address: str, builds: str, lock: bool = False, hang_s: float = 0.0) -> None:
        super().__init__(4)
        self.address, self.hang_s = address, hang_s
        self.lock = os.path.join(builds, f"{address}.lock") if lock else ""
        if self.lock:
            try:
                open(self.lock, "x").close()
            except FileExistsError:
                raise DeviceBusyError(f"{address} is held by another session") from None
        open(os.path.join(builds, f"{address}-{uuid.uuid4().hex}.built"), "x").close()

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        if x.max() > 0.5:
            time.sleep(self.hang_s)
        return super()._forward(x, controls)

    def exclusive_resources(self) -> tuple[str, ...]:
        return () if self.lock else (self.address,)

    def close(self) -> None:
        if self.lock and os.path.exists(self.lock):
            os.remove(self.lock)


@pytest.mark.parametrize("backend", ["thread", pytest.param("process", marks=pytest.mark.slow)])  # 9 spawns
def test_one_exclusive_instrument_is_never_fanned_out(backend, tmp_path):
    builds = str(tmp_path)
    with pytest.raises(ConfigurationError, match=r"exclusive resource 'bench-a' out to workers \[0, 1, 2\]"):
        DevicePool(functools.partial(Bench, "bench-a", builds), workers=3, backend=backend)
    assert len(list(tmp_path.glob("bench-a-*.built"))) == 1  # refused after building worker 0 alone
    twins = [functools.partial(Bench, "bench-b", builds), functools.partial(Bench, "bench-b", builds)]
    with pytest.raises(ConfigurationError, match=r"exclusive resource 'bench-b' out to workers \[0, 1\]"):
        DevicePool(twins, backend=backend)
    locked = [functools.partial(Bench, "bench-c", builds, lock=True)] * 2  # busy at start-up, declares nothing
    with pytest.raises(ConfigurationError, match=r"bench-c is held by another session.*one factory per instrument"):
        DevicePool(locked, backend=backend)
    assert not (tmp_path / "bench-c.lock").exists()  # worker 0's session was closed again
    benches = [functools.partial(Bench, name, builds) for name in ("bench-d", "bench-e")]
    with DevicePool(benches, backend=backend, chunk_size=3) as pool:
        assert pool.exclusive_resources() == ("bench-d", "bench-e")
        torch.testing.assert_close(pool(X, CONTROLS), ReferenceDevice(4)(X, CONTROLS))


def test_a_hung_session_that_still_holds_its_instrument_makes_its_worker_unavailable_until_it_returns(tmp_path):
    lock = tmp_path / "bench-g.lock"
    with DevicePool(functools.partial(Bench, "bench-g", str(tmp_path), lock=True, hang_s=2.0), workers=1,
                    timeout_s=0.5) as pool:
        with pytest.raises(DeviceTimeoutError):
            pool(torch.full((2, 4), 0.9))
        with pytest.raises(DeviceUnavailableError, match="could not be rebuilt.*bench-g is held") as caught:
            pool(X)
        assert isinstance(caught.value.__cause__, DeviceBusyError)
        deadline = time.monotonic() + 10
        while lock.exists() and time.monotonic() < deadline:  # the abandoned thread closes its session once the
            time.sleep(0.05)                                   # hung call returns (after 2 s)
        torch.testing.assert_close(pool(X / 2), ReferenceDevice(4)(X / 2))  # then the worker is rebuilt


def test_a_busy_instrument_of_a_one_worker_pool_stays_a_device_busy_error(tmp_path):
    with Bench("bench-f", str(tmp_path), lock=True), pytest.raises(DeviceBusyError, match="bench-f is held"):
        DevicePool(functools.partial(Bench, "bench-f", str(tmp_path), lock=True), workers=1)


# ------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray tests need ray: pip install 'physnn[ray]'")
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, resources={"scope_a": 1}, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, _node_ip_address="127.0.0.1")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the tests
    yield ray
    ray.shutdown()
    if saved is None:
        del os.environ["RAY_AUTH_MODE"]
    else:
        os.environ["RAY_AUTH_MODE"] = saved


def test_ray_pool_equals_serial_with_a_worker_pinned_by_custom_resource(ray_local, tmp_path):
    marker = tmp_path / "died"
    factories = [fragile, functools.partial(fragile, str(marker))]
    with DevicePool(factories, backend="ray", resources=[{"scope_a": 1}, {}], cpus_per_worker=0.25,
                    timeout_s=120) as pool:
        torch.testing.assert_close(pool(X), torch.tanh(X))  # worker 1 died mid-batch: restarted, chunk redone
        assert marker.exists()
        torch.testing.assert_close(pool(X[:3]), torch.tanh(X[:3]))


def test_ray_worker_needing_a_resource_no_node_has_times_out_clearly(ray_local):
    with pytest.raises(DeviceTimeoutError, match="custom resources no node offers"):
        DevicePool(fragile, workers=1, backend="ray", resources=[{"scope_b": 1}], start_timeout_s=2)


def test_ray_pool_after_a_timeout_kills_the_busy_actor_and_closes_at_once(ray_local):
    pool = DevicePool(functools.partial(napper, 600.0), workers=2, backend="ray", cpus_per_worker=0.25, timeout_s=2)
    x = torch.linspace(-1, 1, 8).reshape(2, 4)  # worker 1's chunk hangs for 10 minutes
    with pytest.raises(DeviceTimeoutError, match="timeout_s=2"):
        pool(x)
    calm = x.clamp(max=0.5)
    torch.testing.assert_close(pool(calm), torch.tanh(calm))  # worker 1 rebuilt
    start = time.monotonic()
    pool.close()
    assert time.monotonic() - start < 2 + 2


def test_ray_pool_refuses_one_exclusive_instrument_per_node(ray_local, tmp_path):
    bench = functools.partial(Bench, "bench-h", str(tmp_path))  # placed apart: built on both, then compared per node
    with pytest.raises(ConfigurationError, match=r"exclusive resource 'bench-h on [\d.]+' out to workers \[0, 1\]"):
        DevicePool(bench, backend="ray", resources=[{"scope_a": 1}, {}], cpus_per_worker=0.25)
    assert len(list(tmp_path.glob("bench-h-*.built"))) == 2
    with pytest.raises(ConfigurationError, match=r"'bench-i on [\d.]+' out to workers \[0, 1\]"):  # placed alike
        DevicePool(functools.partial(Bench, "bench-i", str(tmp_path)), backend="ray", cpus_per_worker=0.25)
    assert len(list(tmp_path.glob("bench-i-*.built"))) == 1  # worker 0 alone
