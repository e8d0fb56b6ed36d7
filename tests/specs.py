"""How the registry-driven tests build each component of ours, small and fast.

Every name this project registers must appear here (tests/test_registry.py checks
it), so no new component escapes the shared tests.
"""
import paddleseg_lpsnet  # noqa: F401
from paddleseg_lpsnet.models import (FasterSegNet, FasterSegStudent, FasterSegTeacher, LPSNetHead,
                                     LPSNetSeg, PMSDSENet)
from paddleseg_lpsnet.models.backbones import (LPSNET_TINY, LPSNetBackbone, LPSNetBackbone_L,
                                               LPSNetBackbone_M, LPSNetBackbone_S)

NUM_CLASSES = 5

# Every FasterSeg op, both kinds of stride-2 cell, in a network of a few thousand weights.
FASTERSEG_TINY = dict(
    stem=(4, 8, 8), shared=(("conv_2x_downup", 8),),
    branch32=(("conv", 8, 2), ("conv_2x_downup", 16, 2), ("conv_downup", 16)),
    branch16=(("conv_downup", 8, 2), ("conv_2x", 12)),
    head_channels=(8, 12, 16))

# Segmentation models: name -> f(num_classes, in_channels) -> model.
SEG_MODELS = {
    "LPSNetSeg": lambda num_classes, in_channels=3: LPSNetSeg(
        num_classes, LPSNetBackbone_S(in_channels=in_channels)),
    "FasterSegNet": lambda num_classes, in_channels=3: FasterSegNet(
        num_classes, arch=FASTERSEG_TINY, in_channels=in_channels),
    "FasterSegStudent": lambda num_classes, in_channels=3: FasterSegStudent(
        num_classes, in_channels=in_channels),
    "FasterSegTeacher": lambda num_classes, in_channels=3: FasterSegTeacher(
        num_classes, in_channels=in_channels),
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

# Built in full only by `-m slow` runs of the registry-driven tests (their code is
# shared with a faster entry: the teacher is the student's network at 6.5x the size).
SLOW = {"FasterSegTeacher"}

# Other registered components (datasets, transforms, losses): tested in their own files.
OTHERS = {"KLDistillationLoss", "CamVidDataset"}  # tests/test_distillation_loss.py, tests/test_camvid.py


def param_names(components):
    """Sorted names as pytest params; those in SLOW run only with `-m slow`."""
    import pytest
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(components)]

ALL = set(SEG_MODELS) | set(BACKBONES) | set(HEADS) | OTHERS
