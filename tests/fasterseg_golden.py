"""Synthetic weights in the authors' FasterSeg layout, shared by the golden test and its generator.

tests/data/fasterseg_authors_<arch>.json records, for the authors' own network
(VITA-Group/FasterSeg, run by tests/data/make_fasterseg_golden.py): every state-dict
key with its shape, which keys are the second copy of a shared cell, and sampled
outputs for the input below when every tensor holds `synthetic_value(key)`.
"""
import zlib

import numpy as np

INPUT_SHAPE = (1, 3, 96, 160)  # sides multiples of 32 (the authors' code needs them); 1/32 is 3x5
SAMPLE_STRIDE = 32


def synthetic_value(key, shape):
    """A deterministic tensor for `key`: BN statistics and affine in sane ranges, convs He-scaled."""
    rng = np.random.RandomState(zlib.crc32(key.encode()))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return np.array(0, dtype="int64")
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, shape).astype("float32")
    if leaf in ("running_mean", "bias"):
        return rng.uniform(-0.2, 0.2, shape).astype("float32")
    if len(shape) == 1:  # BN weight
        return rng.uniform(0.5, 1.5, shape).astype("float32")
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32")


def synthetic_state(keys, aliases):
    """{key: array} for the recorded keys; an alias (second copy of a shared cell) repeats its original."""
    return {k: synthetic_value(aliases.get(k, k), tuple(shape)) for k, shape in keys.items()}


def synthetic_input():
    return np.random.RandomState(0).normal(size=INPUT_SHAPE).astype("float32")


def summarise(logits):
    """What the fixture keeps of an [N, K, H, W] output: a strided sample and per-class means."""
    logits = np.asarray(logits, dtype="float64")
    return {"sample": logits[:, :, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE].round(6).tolist(),
            "class_mean": logits.mean(axis=(0, 2, 3)).round(6).tolist()}
