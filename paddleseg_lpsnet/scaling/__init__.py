"""Progressive scaling of LPS-Net (the paper's search), see search.py."""
from paddleseg_lpsnet.scaling.arch import MOVES, TINY_ARCH, Arch, Move, parse_arch  # noqa: F401
from paddleseg_lpsnet.scaling.search import Candidate, ProgressiveScaler, SearchLog, slope  # noqa: F401
