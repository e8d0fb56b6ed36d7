"""paddleseg-lpsnet: LPS-Net and other lightweight segmentation models for PaddleSeg.

Importing the package registers its components in `paddleseg.cvlibs.manager` and
does nothing else: no downloads, no device selection, no patching of paddleseg.
The `lpsnet` command applies the fixes PaddleSeg 2.8 needs on Paddle 3.x.
"""
from paddleseg_lpsnet import datasets, models  # noqa: F401

__version__ = "0.1.0"
