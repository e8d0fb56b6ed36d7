"""Class-balancing weights for the cross-entropy loss, from a dataset's labels.

ENet's weighting (Paszke et al. 2016): w_c = 1 / ln(c + p_c), with p_c the share of
class c among the labelled pixels and c = 1.1 as in the PMSDSEN, ERFNet and ESPNet
recipes (ENet itself used 1.02). Rare classes get up to 1/ln(c) (10.49 for 1.1).
"""
import numpy as np
from PIL import Image

from paddleseg_lpsnet.errors import DataError

__all__ = ["read_index_label", "count_label_pixels", "enet_class_weights"]


def read_index_label(path):
    """A label image of class indices (one channel or palette) as an [H, W] array."""
    try:
        with Image.open(path) as im:
            label = np.asarray(im)
    except Exception as exc:  # PIL raises many types for a bad file
        raise DataError(f"Cannot read label {path}: {type(exc).__name__}: {exc}") from exc
    if label.ndim != 2:
        raise DataError(f"Label {path} has shape {list(label.shape)}: expected one channel of "
                        "class indices (a colour label needs a dataset that maps its colours).")
    return label


def count_label_pixels(label_paths, num_classes, ignore_index=255, read_label=read_index_label):
    """Pixels per class over `label_paths` (ignore_index skipped): int64 [num_classes].

    Raises DataError naming the file when a label holds a value that is neither a
    class (0 .. num_classes-1) nor ignore_index.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for path in label_paths:
        label = np.asarray(read_label(path)).ravel()
        label = label[label != ignore_index]
        if label.size and (label.min() < 0 or label.max() >= num_classes):
            bad = np.unique(label[(label < 0) | (label >= num_classes)])
            raise DataError(f"Label {path} holds values {bad[:5].tolist()} outside the "
                            f"{num_classes} classes (0-{num_classes - 1}, {ignore_index} ignored).")
        counts += np.bincount(label.astype(np.int64), minlength=num_classes)
    return counts


def enet_class_weights(counts, c=1.1):
    """1 / ln(c + p) for pixel counts per class; DataError when no pixel is labelled."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise DataError("No labelled pixel found: every label is empty or ignore_index.")
    if not c > 1:
        raise ValueError(f"The ENet constant c must be > 1 (weights 1/ln(c + p)), got {c}.")
    return 1.0 / np.log(c + counts / total)
