from paddleseg_lpsnet.models.heads.lpsnet import *  # noqa: F401,F403
