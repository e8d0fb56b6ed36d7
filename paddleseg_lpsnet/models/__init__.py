"""Model zoo: importing this registers every backbone, head and model."""
from paddleseg_lpsnet.models import backbones, heads, losses  # noqa: F401
from paddleseg_lpsnet.models.heads import *  # noqa: F401,F403
from paddleseg_lpsnet.models.lpsnet import *  # noqa: F401,F403
from paddleseg_lpsnet.models.pmsdsen import *  # noqa: F401,F403
from paddleseg_lpsnet.models.deploy import to_deploy  # noqa: F401
from paddleseg_lpsnet.models.fasterseg import *  # noqa: F401,F403
