import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(autouse=True)
def _seed():
    import paddle
    paddle.seed(0)
    np.random.seed(0)


def randomize_bn_stats(model, seed=0):
    """Give every BN layer non-trivial statistics and affine, so BN matters in eval."""
    import paddle
    rng = np.random.RandomState(seed)
    for layer in model.sublayers():
        if isinstance(layer, (paddle.nn.BatchNorm2D, paddle.nn.BatchNorm1D, paddle.nn.BatchNorm)):
            c = layer._mean.shape[0]
            layer._mean.set_value(rng.uniform(-0.5, 0.5, c).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 2.0, c).astype("float32"))
            layer.weight.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
            layer.bias.set_value(rng.uniform(-0.3, 0.3, c).astype("float32"))
    return model


@pytest.fixture
def randomize_bn():
    """`randomize_bn_stats` as a fixture: apply(model, seed=0) -> model."""
    return randomize_bn_stats
