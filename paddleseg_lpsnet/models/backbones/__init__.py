from paddleseg_lpsnet.models.backbones.lpsnet import *  # noqa: F401,F403
