"""What a training run reports: PaddleSeg-style log lines, a progress bar, VisualDL records.

Only the writing rank (rank 0) reports; the others get a silent TrainLog.
"""
import sys
import time

import numpy as np

__all__ = ["TrainLog", "to_display_image", "to_display_label"]


def _stamp(level, message):
    return f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{level}]\t{message}"


def to_display_image(chw, max_width=1024):
    """An image tensor as the model saw it (CHW, normalised) -> HWC uint8 for viewing.

    Each channel is stretched to 0..255 (the normalisation is undone up to an affine
    map per channel), and wide images are subsampled to at most `max_width` columns.
    """
    img = np.asarray(chw, np.float32)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img.transpose(1, 2, 0)
    lo = img.min(axis=(0, 1), keepdims=True)
    hi = img.max(axis=(0, 1), keepdims=True)
    img = (img - lo) / np.maximum(hi - lo, 1e-6) * 255.0
    return _shrink(np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img, max_width).astype(np.uint8)


def to_display_label(label, palette, max_width=1024):
    """Colour map of a [H, W] label, subsampled to at most `max_width` columns."""
    from paddleseg_lpsnet.utils.visualize import colorize
    return colorize(_shrink(np.asarray(label), max_width), palette)


def _shrink(hwc, max_width):
    step = int(np.ceil(hwc.shape[1] / max_width))
    return hwc[::step, ::step] if step > 1 else hwc


class TrainLog:
    """Log lines (stdout), a tqdm bar with ETA (stderr) and an optional VisualDL writer.

    Args:
        save_dir (str): VisualDL writes its records here.
        iters (int): Total iterations (the bar's end).
        start_iter (int): Iterations already done (a resumed run).
        use_vdl (bool): Write VisualDL records.
        enabled (bool): False on ranks that must not write.
        progress (bool, optional): Show the bar; None: when stderr is a terminal.
    """

    def __init__(self, save_dir, iters, start_iter=0, use_vdl=False, enabled=True, progress=None):
        from tqdm import tqdm
        self.enabled = enabled
        show = sys.stderr.isatty() if progress is None else progress
        self.bar = tqdm(total=iters, initial=start_iter, desc="train", unit="it", file=sys.stderr,
                        dynamic_ncols=True, mininterval=1.0, disable=not (enabled and show))
        self.writer = None
        if enabled and use_vdl:
            from visualdl import LogWriter
            self.writer = LogWriter(logdir=save_dir)

    def info(self, message):
        if self.enabled:
            self.bar.write(_stamp("INFO", message), file=sys.stdout)

    def warning(self, message):
        if self.enabled:
            self.bar.write(_stamp("WARNING", message), file=sys.stdout)

    def advance(self, loss=None):
        self.bar.update(1)
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def scalar(self, tag, value, step):
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)

    def image(self, tag, hwc_uint8, step):
        if self.writer is not None:
            self.writer.add_image(tag, np.ascontiguousarray(hwc_uint8), step)

    def close(self):
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
