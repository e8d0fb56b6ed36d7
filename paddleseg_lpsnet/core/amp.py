"""Automatic mixed precision as PaddleSeg uses it (fp16 autocast; resize kept in fp32)."""
import contextlib

import paddle

__all__ = ["amp_context"]


def amp_context(precision, amp_level):
    """paddle.amp.auto_cast for precision "fp16" (level O1/O2); a no-op context for "fp32"."""
    if precision != "fp16":
        return contextlib.nullcontext()
    return paddle.amp.auto_cast(enable=True, level=amp_level,
                                custom_white_list={"elementwise_add", "batch_norm", "sync_batch_norm"},
                                custom_black_list={"bilinear_interp_v2"})
