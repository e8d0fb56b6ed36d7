"""measure_latency: exports through `lpsnet export`'s path and times the backend's predictor."""
import numpy as np
import pytest

from paddleseg_lpsnet.deploy.benchmark import LatencyStats, measure_latency, time_predictor
from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.models import LPSNetSeg
from paddleseg_lpsnet.models.backbones import LPSNET_TINY, LPSNetBackbone


class _CountingPredictor:
    def __init__(self):
        self.calls = 0

    def run(self, batch):
        self.calls += 1


def test_time_predictor_warms_up_then_times_each_run():
    p = _CountingPredictor()
    ticks = iter(range(100))
    runs = time_predictor(p, None, warmup=2, repeats=4, clock=lambda: next(ticks) * 0.001)
    assert p.calls == 6
    assert runs == [1.0] * 4
    with pytest.raises(ConfigError):
        time_predictor(p, None, repeats=0)


def test_stats():
    s = LatencyStats("onnxruntime", [2, 3, 8, 8], [4.0, 1.0, 2.0, 3.0, 100.0])
    assert s.median_ms == 3.0 and s.fps == pytest.approx(2000 / 3.0)
    assert s.p10_ms < s.median_ms < s.p90_ms


@pytest.mark.parametrize("backend", ["onnxruntime", "paddle"])
def test_measure_latency_runs_the_exported_model(backend, tmp_path):
    model = LPSNetSeg(4, LPSNetBackbone(**LPSNET_TINY))
    stats = measure_latency(model, [1, 3, 64, 128], backend=backend, warmup=1, repeats=3,
                            workdir=str(tmp_path))
    assert stats.backend == backend and len(stats.runs_ms) == 3
    assert all(np.isfinite(stats.runs_ms)) and min(stats.runs_ms) > 0
    assert (tmp_path / "deploy.yaml").exists()
    assert (tmp_path / ("model.onnx" if backend == "onnxruntime" else "model.json")).exists()
