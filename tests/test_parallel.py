"""DevicePool: results equal serial evaluation; dead workers are replaced and their work redone."""

import functools
import logging
import os
import sys

import numpy as np
import pytest
import torch

from physnn import PhysicalLayer
from physnn.devices import BlackBox, ReferenceDevice
from physnn.devices.adapters import CallableDevice, DeviceTimeoutError
from physnn.errors import ConfigurationError, DeviceOutputError
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
        DevicePool(fragile, workers=1, backend="ray", resources=[{"scope_b": 1}], timeout_s=2)
