"""Datasets: importing this registers them in PaddleSeg's DATASETS manager."""
from paddleseg_lpsnet.datasets.camvid import CamVidDataset  # noqa: F401
