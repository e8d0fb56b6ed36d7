"""How the registry-driven tests build each component of ours, small and fast.

Every name this project registers must appear here (tests/test_registry.py checks
it), so no new component escapes the shared tests.
"""
import paddleseg_lpsnet  # noqa: F401
from paddleseg_lpsnet.models import LPSNetHead, LPSNetSeg, PMSDSENet
from paddleseg_lpsnet.models.backbones import (LPSNET_TINY, LPSNetBackbone, LPSNetBackbone_L,
                                               LPSNetBackbone_M, LPSNetBackbone_S)

NUM_CLASSES = 5

# Segmentation models: name -> f(num_classes, in_channels) -> model.
SEG_MODELS = {
    "LPSNetSeg": lambda num_classes, in_channels=3: LPSNetSeg(
        num_classes, LPSNetBackbone_S(in_channels=in_channels)),
    # the published widths (every ECA kernel size) with one unit per level: every
    # block type, half the ops to trace in the jit test
    "PMSDSENet": lambda num_classes, in_channels=3: PMSDSENet(
        num_classes, in_channels=in_channels, blocks=(1, 1, 1, 1, 1)),
}

# Backbones: name -> f(in_channels) -> backbone.
BACKBONES = {
    "LPSNetBackbone": lambda in_channels=3: LPSNetBackbone(**LPSNET_TINY, in_channels=in_channels),
    "LPSNetBackbone_S": lambda in_channels=3: LPSNetBackbone_S(in_channels=in_channels),
    "LPSNetBackbone_M": lambda in_channels=3: LPSNetBackbone_M(in_channels=in_channels),
    "LPSNetBackbone_L": lambda in_channels=3: LPSNetBackbone_L(in_channels=in_channels),
}

# Heads registered in MODELS: name -> (f() -> head, f(batch) -> list of input features).
def _lpsnet_head_inputs(batch=1):
    import paddle
    return [paddle.randn([batch, 16, 9, 13]), paddle.randn([batch, 16, 4, 5])]


HEADS = {
    "LPSNetHead": (lambda: LPSNetHead([16, 16], NUM_CLASSES), _lpsnet_head_inputs),
}

# Other registered components (datasets, transforms, losses): tested in their own files.
OTHERS = {"CamVidDataset"}  # tests/test_camvid.py

ALL = set(SEG_MODELS) | set(BACKBONES) | set(HEADS) | OTHERS
