"""Counting multiply-accumulates (MACs) of a model's convolutions and linear layers.

The papers of the zoo count MACs over convolutions (LPS-Net, PMSDSEN, FasterSeg);
`count_macs` returns the total per layer type so a report can say what it counted.
"""
from collections import defaultdict

import numpy as np
import paddle
import paddle.nn as nn

__all__ = ["count_macs", "count_params"]

_COUNTED = (nn.Conv1D, nn.Conv2D, nn.Conv2DTranspose, nn.Linear)


def _layer_macs(layer, inputs, output):
    if isinstance(layer, nn.Linear):
        return int(np.prod(output.shape[:-1])) * layer.weight.shape[0] * layer.weight.shape[1]
    weight = layer.weight.shape  # conv: [out, in/g, k...]; transposed: [in, out/g, k...]
    kernel = int(np.prod(weight[2:]))
    if isinstance(layer, nn.Conv2DTranspose):
        # every input pixel is multiplied into out/g * k*k outputs
        x = inputs[0]
        return int(np.prod(x.shape)) * weight[1] * kernel
    return int(np.prod(output.shape)) * weight[1] * kernel


def count_macs(model, input_shape, train_mode=False):
    """MACs of one forward pass at `input_shape` (e.g. [1, 3, 1024, 2048]).

    Returns {"total": int, "by_type": {layer type name: int}}. Only Conv1D, Conv2D,
    Conv2DTranspose and Linear are counted (the convention of the papers); biases,
    normalisation, activations and resizes are not. The forward runs in eval mode
    (what inference costs) unless `train_mode`, which also counts the layers only
    training runs, such as auxiliary heads (some papers count those).
    """
    by_type = defaultdict(int)
    hooks = []

    def hook(layer, inputs, output):
        by_type[type(layer).__name__] += _layer_macs(layer, inputs, output)

    for layer in model.sublayers(include_self=True):
        if isinstance(layer, _COUNTED):
            hooks.append(layer.register_forward_post_hook(hook))
    was_training = model.training
    if train_mode:
        model.train()
    else:
        model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(input_shape, dtype="float32"))
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            model.train()
        else:
            model.eval()
    return {"total": int(sum(by_type.values())), "by_type": dict(by_type)}


def count_params(model, trainable_only=False, include_bn_stats=False):
    """Number of parameters, BN affine included.

    By default BN running statistics are not counted (the convention of torch and of
    the papers' "params"). Paddle 3 lists them among a layer's parameters, so
    `paddle.summary` and PaddleSeg's reports count them: `include_bn_stats=True`
    gives that figure. With `trainable_only`, frozen parameters are left out too.
    """
    stats = set() if include_bn_stats else {
        id(t) for layer in model.sublayers(include_self=True)
        if isinstance(layer, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm))
        for t in (layer._mean, layer._variance)}
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()
                   if id(p) not in stats and not (trainable_only and p.stop_gradient)))
