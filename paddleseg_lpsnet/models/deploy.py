"""Deploy form of a model: BatchNorm folded into the convolutions, eval mode.

Every layer that defines `fuse_bn()` (ConvBNAct, and family blocks that own a
conv followed by a BN) is folded. The result computes the same function as the
train form in eval mode, with fewer ops; export uses it.
"""
import copy

__all__ = ["to_deploy", "count_unfolded_bn"]


def to_deploy(model, inplace=False):
    """Return the deploy form of `model` (a copy unless `inplace`), in eval mode."""
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for layer in model.sublayers(include_self=True):
        fuse = getattr(layer, "fuse_bn", None)
        if callable(fuse):
            fuse()
    return model


def count_unfolded_bn(model):
    """Number of BatchNorm layers still in `model` (0 for a fully folded LPS-Net)."""
    from paddle import nn
    return sum(isinstance(l, (nn.BatchNorm2D, nn.SyncBatchNorm, nn.BatchNorm))
               for l in model.sublayers())
