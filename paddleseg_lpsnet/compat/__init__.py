"""Compatibility of the host libraries (PaddleSeg 2.8 on Paddle 3.x); applied by our commands only."""
from paddleseg_lpsnet.compat.paddleseg_fixes import (FIXES, apply_paddleseg_fixes,  # noqa: F401
                                                     applied_fixes, needed_fixes,
                                                     paddleseg_fixes_applied, revert_paddleseg_fixes)
