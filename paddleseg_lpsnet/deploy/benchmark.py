"""Latency of a model as deployed, and what it is compared with: the machine's fp32 peak.

`measure_latency` is the one measurement `lpsnet bench` and `lpsnet scale` share:
the model goes through the same export path as `lpsnet export` (deploy form,
deploy.yaml) and runs in the same predictor classes as `lpsnet infer`. Timings
are wall-clock per run after warm-up runs; report the median and the spread.
`measure_export_latency` times an existing export directory the same way.

`measure_gemm_peak` is the yardstick: the fp32 rate of a large numpy GEMM with
the same number of threads, measured in a child process (so the BLAS thread count
can be set before numpy loads). A model's FLOP floor is 2 x MACs / peak: the
latency it would have if every multiply-add ran at GEMM speed (`flop_floor_ms`).
`machine_info` names what the numbers were measured on.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np

from paddleseg_lpsnet.errors import ConfigError, LPSNetError

__all__ = ["LatencyStats", "time_predictor", "time_round_robin", "measure_latency", "measure_export_latency",
           "lowres_network", "GemmPeak",
           "measure_gemm_peak", "flop_floor_ms", "machine_info", "gpu_name", "cpu_flags"]


@dataclass
class LatencyStats:
    """Wall-clock latencies (ms) of repeated runs of one deployed model."""
    backend: str
    input_shape: List[int]
    runs_ms: List[float] = field(default_factory=list)
    description: str = ""

    @property
    def median_ms(self):
        return float(np.median(self.runs_ms))

    @property
    def p10_ms(self):
        return float(np.percentile(self.runs_ms, 10))

    @property
    def p90_ms(self):
        return float(np.percentile(self.runs_ms, 90))

    @property
    def fps(self):
        return self.input_shape[0] * 1000.0 / self.median_ms

    def as_dict(self):
        d = asdict(self)
        d.update(median_ms=self.median_ms, p10_ms=self.p10_ms, p90_ms=self.p90_ms, fps=self.fps)
        return d


def time_predictor(predictor, batch, warmup=3, repeats=10, clock=time.perf_counter):
    """Run `predictor` `warmup` times untimed, then `repeats` times timed; returns the ms list."""
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}.")
    for _ in range(warmup):
        predictor.run(batch)
    runs = []
    for _ in range(repeats):
        start = clock()
        predictor.run(batch)
        runs.append((clock() - start) * 1000.0)
    return runs


def time_round_robin(predictors, batch, rounds=3, repeats=4, warmup=2, clock=time.perf_counter, log=None):
    """{name: ms list} of predictors timed in turn: `rounds` rounds of `repeats` runs each.

    Alternating keeps a change of machine load from favouring one predictor.
    """
    runs = {name: [] for name in predictors}
    for predictor in predictors.values():
        for _ in range(warmup):
            predictor.run(batch)
    for r in range(rounds):
        for name, predictor in predictors.items():
            runs[name] += time_predictor(predictor, batch, warmup=0, repeats=repeats, clock=clock)
        if log is not None:
            log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {np.median(v):.0f} ms" for n, v in runs.items()))
    return runs


def _random_batch(input_shape, seed):
    return np.random.RandomState(seed).standard_normal(input_shape).astype("float32")


def measure_export_latency(model_dir, backend=None, input_shape=None, cpu_threads=None, warmup=3, repeats=10,
                           device="cpu", predictor_options=None, seed=0, clock=time.perf_counter):
    """Latency of an export directory (the --save_dir of `lpsnet export`) on `backend`.

    `input_shape` defaults to the export's fixed shape (an export with dynamic
    dimensions needs it). `clock` as in `time_predictor`. Returns a LatencyStats.
    """
    from paddleseg_lpsnet.deploy.config import DeployConfig
    from paddleseg_lpsnet.deploy.predictor import create_predictor, default_backend

    config = DeployConfig.load(model_dir)
    shape = list(input_shape) if input_shape is not None else list(config.input_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ConfigError(f"{model_dir} has input_shape {config.input_shape}; give a full [N, C, H, W] "
                          f"input_shape to time it (got {shape}).")
    if backend is None:
        backend, _ = default_backend(config, device)
    predictor = create_predictor(config, backend=backend, device=device, cpu_threads=cpu_threads,
                                 **(predictor_options or {}))
    runs = time_predictor(predictor, _random_batch(shape, seed), warmup, repeats, clock)
    return LatencyStats(backend, shape, runs, predictor.describe())


def lowres_network(model):
    """`model` up to its low-resolution logits (its `forward_lowres`), as a layer to export
    with output_op="none": the network without the final upsampling and argmax."""
    import paddle.nn as nn

    if not callable(getattr(model, "forward_lowres", None)):
        raise ConfigError(f"{type(model).__name__} has no forward_lowres: its network cannot be timed alone.")

    class LowRes(nn.Layer):
        def __init__(self):
            super().__init__()
            self.net, self.num_classes = model, getattr(model, "num_classes", None)

        def forward(self, x):
            return [self.net.forward_lowres(x)]

    return LowRes()


def measure_latency(model, input_shape, backend="onnxruntime", cpu_threads=None, warmup=3, repeats=10,
                    output_op="argmax", device="cpu", workdir=None, predictor_options=None, seed=0,
                    export_options=None, clock=time.perf_counter):
    """Latency of `model` exported at a fixed `input_shape` and run on `backend`.

    Args:
        model (nn.Layer): A segmentation model (exported in deploy form; not modified).
        input_shape (list[int]): [N, C, H, W] of the timed input.
        backend (str): "onnxruntime" (ONNX export) or "paddle" (Paddle Inference).
        cpu_threads (int, optional): Threads of the backend. Default: all usable cores.
        warmup, repeats (int): Untimed and timed runs. Default: 3 and 10.
        output_op (str): The exported output op (argmax, softmax, none). Default: argmax.
        workdir (str, optional): Where the export goes (kept); a temporary directory otherwise.
        predictor_options (dict, optional): Extra options of the predictor class.
        export_options (dict, optional): Extra arguments of `export_model` (e.g.
            sparse_argmax=False).
        clock (callable, optional): Seconds counter of each run: time.perf_counter
            (wall clock, the default) or time.thread_time (CPU time of the calling
            thread: with cpu_threads=1 both backends compute in that thread, so a
            busy machine inflates it far less than the wall clock).
    Returns a LatencyStats.
    """
    from paddleseg_lpsnet.deploy.export import export_model
    from paddleseg_lpsnet.deploy.predictor import create_predictor

    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be [N, C, H, W] with positive sizes; got {input_shape}.")
    fmt = "onnx" if backend == "onnxruntime" else "paddle"

    def run(directory):
        config = export_model(model, directory, output_op=output_op, input_shape=list(input_shape), format=fmt,
                              **(export_options or {}))
        predictor = create_predictor(config, backend=backend, device=device, cpu_threads=cpu_threads,
                                     **(predictor_options or {}))
        runs = time_predictor(predictor, _random_batch(input_shape, seed), warmup, repeats, clock)
        return LatencyStats(backend, list(input_shape), runs, predictor.describe())

    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="lpsnet-latency-") as directory:
        return run(directory)


# Run in a child process: the BLAS reads its thread count from the environment
# when numpy loads, which in this process has already happened.
_GEMM_CHILD = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.RandomState(0)
a = rng.standard_normal((n, n)).astype(np.float32)
b = rng.standard_normal((n, n)).astype(np.float32)
c = np.empty((n, n), np.float32)
np.matmul(a, b, out=c)
wall, cpu = [], []
for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    np.matmul(a, b, out=c)
    wall.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"wall": wall, "cpu": cpu}))
"""
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class GemmPeak:
    """fp32 GEMM rate of this machine: best and median over repeated n x n x n products.

    `runs_s` are wall-clock seconds, or process CPU seconds when `clock` is "cpu"
    (meaningful with 1 thread, as the CPU-time latencies it is compared with).
    """
    threads: int
    n: int
    runs_s: List[float] = field(default_factory=list)
    clock: str = "wall"

    @property
    def gflops_runs(self):
        return [2.0 * self.n ** 3 / t / 1e9 for t in self.runs_s]

    @property
    def peak_gflops(self):
        """The best run: what the cores can do (noise only ever slows a run down)."""
        return max(self.gflops_runs)

    @property
    def median_gflops(self):
        return float(np.median(self.gflops_runs))

    def as_dict(self):
        d = asdict(self)
        d.update(peak_gflops=self.peak_gflops, median_gflops=self.median_gflops)
        return d


def measure_gemm_peak(threads=None, n=4096, repeats=5, timeout=600, clock="wall"):
    """fp32 GFLOP/s of numpy's `float32 [n, n] @ [n, n]` on `threads` BLAS threads (default: all usable cores).

    `clock` "wall" times each product by the wall clock, "cpu" by the process's CPU time.
    """
    from paddleseg_lpsnet.deploy.predictor import default_cpu_threads
    threads = int(threads or default_cpu_threads())
    if clock not in ("wall", "cpu"):
        raise ConfigError(f"clock must be wall or cpu, got {clock!r}.")
    if n < 64 or repeats < 1 or threads < 1:
        raise ConfigError(f"GEMM peak needs n >= 64, repeats >= 1, threads >= 1; got n={n}, "
                          f"repeats={repeats}, threads={threads}.")
    env = dict(os.environ, **{var: str(threads) for var in _THREAD_VARS})
    proc = subprocess.run([sys.executable, "-c", _GEMM_CHILD, str(n), str(repeats)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LPSNetError(f"The GEMM peak measurement failed: {proc.stderr.strip().splitlines()[-1:]}")
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    return GemmPeak(threads, n, runs[clock], clock)


def flop_floor_ms(macs, peak_gflops):
    """ms that `macs` multiply-adds (2 FLOPs each) take at `peak_gflops`."""
    if peak_gflops <= 0:
        raise ConfigError(f"peak_gflops must be > 0, got {peak_gflops}.")
    return 2.0 * macs / (peak_gflops * 1e9) * 1e3


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    """The SIMD features that decide fp32 and int8 speed, as /proc/cpuinfo lists them."""
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:  # not installed, or no version
        return None


def machine_info(cpu_threads=None):
    """What a benchmark ran on: CPU, cores, threads used, GPU, library versions."""
    from paddleseg_lpsnet.deploy.predictor import default_cpu_threads
    info = {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": default_cpu_threads(),
        "threads_used": int(cpu_threads or default_cpu_threads()),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for module in ("paddle", "paddleseg", "onnxruntime", "paddle2onnx", "onnx", "numpy"):
        info[module] = _version(module)
    info["gpu"] = gpu_name()
    return info


def gpu_name():
    """The first CUDA GPU Paddle sees, or None (CPU build, or no device)."""
    try:
        import paddle
        if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            return paddle.device.cuda.get_device_name(0)
    except Exception:  # a broken CUDA setup reads as no GPU
        pass
    return None
