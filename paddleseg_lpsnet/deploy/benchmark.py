"""Latency of a model as deployed: export it, load it in a backend, time batch-1 runs.

`measure_latency` is the one measurement `lpsnet bench` and `lpsnet scale` share:
the model goes through the same export path as `lpsnet export` (deploy form,
deploy.yaml) and runs in the same predictor classes as `lpsnet infer`. Timings
are wall-clock per run after warm-up runs; report the median and the spread.
"""
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import List

import numpy as np

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["LatencyStats", "time_predictor", "measure_latency"]


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


def measure_latency(model, input_shape, backend="onnxruntime", cpu_threads=None, warmup=3, repeats=10,
                    output_op="argmax", device="cpu", workdir=None, predictor_options=None, seed=0):
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
    Returns a LatencyStats.
    """
    from paddleseg_lpsnet.deploy.export import export_model
    from paddleseg_lpsnet.deploy.predictor import create_predictor

    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ConfigError(f"input_shape must be [N, C, H, W] with positive sizes; got {input_shape}.")
    fmt = "onnx" if backend == "onnxruntime" else "paddle"

    def run(directory):
        config = export_model(model, directory, output_op=output_op, input_shape=list(input_shape), format=fmt)
        predictor = create_predictor(config, backend=backend, device=device, cpu_threads=cpu_threads,
                                     **(predictor_options or {}))
        batch = np.random.RandomState(seed).standard_normal(input_shape).astype("float32")
        runs = time_predictor(predictor, batch, warmup, repeats)
        return LatencyStats(backend, list(input_shape), runs, predictor.describe())

    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
        return run(workdir)
    with tempfile.TemporaryDirectory(prefix="lpsnet-latency-") as directory:
        return run(directory)
