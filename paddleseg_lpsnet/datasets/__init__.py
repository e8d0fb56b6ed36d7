"""Datasets and dataset tooling.

Importing this registers the dataset components (CamVidDataset) in PaddleSeg's
DATASETS manager. The other modules write or verify data layouts: the Cityscapes
layout (cityscapes.py), generated street scenes (synth_cityscapes.py) and ImageNet-style
sets (synth_imagenet.py), and data checks (check.py).
"""
from paddleseg_lpsnet.datasets.camvid import CamVidDataset  # noqa: F401
