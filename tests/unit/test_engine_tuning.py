"""execution_config's engine fields and the GPU usage metrics, worker side: what each
engine can apply, what the prompt carries, and how samples become the status metrics."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from comfy_serverless.engine.comfyui.device_usage import GpuMonitor, GpuReading, UsageWindow
from comfy_serverless.engine.comfyui.stats import has_gpu
from comfy_serverless.engine.comfyui.tuning import EngineTuning
from comfy_serverless.worker.engine_facts import EngineFacts

CPU_STATS = {"devices": [{"name": "cpu", "type": "cpu", "index": None}]}
CUDA_STATS = {"devices": [{"name": "cuda:0 NVIDIA H200 : cudaMallocAsync", "type": "cuda",
                           "index": 0}]}


def test_the_defaults_travel_as_nothing_and_each_field_as_itself() -> None:
    assert EngineTuning(None, optimize=True).extra_data() == {}
    tuned = EngineTuning(0.8, optimize=False)
    assert tuned.extra_data() == {"cs_tuning": {"gpu_memory_fraction": 0.8, "optimize": False}}


@pytest.mark.parametrize(("tuning", "gpu", "hooks", "field"), [
    (EngineTuning(0.5), False, True, "execution_config.gpu_memory_fraction"),
    (EngineTuning(0.5), True, False, "execution_config.gpu_memory_fraction"),
    (EngineTuning(optimize=False), True, False, "execution_config.enable_optimization"),
    (EngineTuning(0.5), True, True, None),
    (EngineTuning(optimize=False), False, False, None),  # a CPU computes exact fp32
    (EngineTuning(optimize=True), False, False, None),
])
def test_what_an_engine_cannot_apply_is_refused(tuning: EngineTuning, gpu: bool,
                                                hooks: bool, field: str | None) -> None:
    refusal = EngineFacts(gpu=gpu, hooks=hooks).refusal(tuning)
    if field is None:
        assert refusal is None
        return
    assert refusal is not None
    assert refusal.error_type == "FEATURE_UNAVAILABLE"
    assert not refusal.retryable
    assert refusal.extra == {"field": field}


def test_a_cpu_engine_has_no_gpu_and_no_monitor() -> None:
    assert not has_gpu(CPU_STATS)
    assert has_gpu(CUDA_STATS)
    assert GpuMonitor.for_engine(CPU_STATS) is None
    assert EngineFacts().sample() is None
    assert UsageWindow().metrics(None) == {"gpu_utilization": None,
                                           "memory_efficiency": None}


class _FakeNvml:
    """NVML's calls, answering a GPU at 60% then 100% utilization, 40 then 72 of 100 GB."""

    def __init__(self) -> None:
        self.readings = [(60, 40), (100, 72)]

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.readings[0][0])

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> SimpleNamespace:
        _, used = self.readings.pop(0)
        return SimpleNamespace(used=used * 10**9, total=100 * 10**9)


def test_samples_become_mean_utilization_and_peak_memory_of_the_allowed_share() -> None:
    monitor = GpuMonitor(_FakeNvml(), handle=object())
    window = UsageWindow()
    window.add(monitor.read())
    window.add(monitor.read())
    assert window.metrics(None) == {"gpu_utilization": 0.8, "memory_efficiency": 0.72}
    assert window.metrics(0.8) == {"gpu_utilization": 0.8, "memory_efficiency": 0.9}


def test_a_failed_sample_is_skipped() -> None:
    window = UsageWindow()
    window.add(None)
    window.add(GpuReading(0.5, 10, 100))
    assert window.metrics(None) == {"gpu_utilization": 0.5, "memory_efficiency": 0.1}


class _FleetNvml:
    """NVML on a machine with three GPUs, where ComfyUI (pid 4242) runs under
    CUDA_VISIBLE_DEVICES=2: its CUDA index 0 is NVML's index 2. Another process holds
    memory on the same GPU."""

    def __init__(self) -> None:
        self.initialised = False
        self.GPUS = {"GPU-aaaa": ("00000000:17:00.0", 10),
                     "GPU-bbbb": ("00000000:65:00.0", 20),
                     "GPU-cccc": ("00000000:B3:00.0", 90)}

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.GPUS)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return list(self.GPUS)[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        assert uuid in self.GPUS
        return uuid

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> str:
        return next(uuid for uuid, (bus, _) in self.GPUS.items() if bus == bus_id)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(gpu=self.GPUS[handle][1])

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:
        return SimpleNamespace(used=80 * 10**9, total=100 * 10**9)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=4242, usedGpuMemory=30 * 10**9),
                SimpleNamespace(pid=777, usedGpuMemory=50 * 10**9)]


def test_the_monitor_samples_comfyuis_gpu_by_its_identity_not_its_cuda_index() -> None:
    for device in ({"uuid": "GPU-cccc"}, {"uuid": "cccc"},
                   {"pci_bus_id": "00000000:B3:00.0"}):
        monitor = GpuMonitor.for_engine(CUDA_STATS, {"version": 1, "pid": 4242,
                                                     "device": device}, nvml=_FleetNvml())
        assert monitor is not None
        reading = monitor.read()
        assert reading is not None
        assert reading.utilization == 0.9, device  # NVML's GPU 2, not CUDA's index 0
        assert reading.memory_used == 30 * 10**9, "ComfyUI's own memory, not the others'"


def test_without_an_identity_only_a_lone_gpu_is_sampled() -> None:
    assert GpuMonitor.for_engine(CUDA_STATS, None, nvml=_FleetNvml()) is None
    lone = _FleetNvml()
    lone.GPUS = {"GPU-aaaa": ("00000000:17:00.0", 10)}
    monitor = GpuMonitor.for_engine(CUDA_STATS, None, nvml=lone)
    assert monitor is not None
    reading = monitor.read()
    assert reading is not None
    assert reading.memory_used == 80 * 10**9  # no pid known: the device's figure
