"""LPS-Net head: resize every path to the first (largest), concatenate, Conv1x1."""
import paddle
import paddle.nn as nn
from paddleseg.cvlibs import manager

from paddleseg_lpsnet.models.layers import resize_to

__all__ = ["LPSNetHead"]


@manager.MODELS.add_component
class LPSNetHead(nn.Layer):
    """The LPS-Net segmentation head.

    Input: the per-path features of LPSNetBackbone, largest first. Output: logits
    at the size of the first path's features (1/16 of its input).

    Args:
        in_channels (list[int]): Channels of each path's features.
        num_classes (int): Number of classes.
    """

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        self.classifier = nn.Conv2D(sum(self.in_channels), num_classes, 1)

    def forward(self, feats):
        if len(feats) != len(self.in_channels):
            raise ValueError(f"LPSNetHead expects {len(self.in_channels)} paths, got {len(feats)}.")
        # The first path is the reference size: it is never resized.
        feats = [feats[0]] + [resize_to(f, feats[0]) for f in feats[1:]]
        return self.classifier(paddle.concat(feats, axis=1))
