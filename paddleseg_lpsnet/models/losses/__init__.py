"""Losses of the zoo: importing this registers them in PaddleSeg's LOSSES."""
from paddleseg_lpsnet.models.losses.distillation import *  # noqa: F401,F403
