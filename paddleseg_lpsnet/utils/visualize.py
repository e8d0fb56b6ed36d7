"""Colour maps of label images: the Cityscapes palette for 19 classes, a generic one otherwise."""
import numpy as np

__all__ = ["get_palette", "colorize", "cityscapes_palette", "generic_palette"]


def cityscapes_palette():
    """[19, 3] uint8: the colours cityscapesscripts gives the 19 train ids."""
    from cityscapesscripts.helpers.labels import trainId2label
    return np.array([trainId2label[i].color for i in range(19)], np.uint8)


def generic_palette(num_classes):
    """[num_classes, 3] uint8, distinct colours by bit-interleaving the class number.

    Class k takes the pattern of k + 1, so no class is black: black is left for
    pixels outside the palette (ignore_index).
    """
    palette = np.zeros((num_classes, 3), np.uint8)
    for k in range(num_classes):
        code, rgb = k + 1, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        palette[k] = rgb
    return palette


def get_palette(num_classes):
    """The palette for a model of `num_classes` classes: Cityscapes' for 19, else generic."""
    if num_classes == 19:
        return cityscapes_palette()
    return generic_palette(num_classes)


def colorize(label, palette):
    """Colour a label map: [H, W] ints -> [H, W, 3] uint8 RGB.

    Values outside 0..len(palette)-1 (e.g. ignore_index 255) are black.
    """
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if label.ndim != 2:
        raise ValueError(f"colorize expects a [H, W] label map, got shape {list(label.shape)}.")
    palette = np.asarray(palette, np.uint8)
    inside = (label >= 0) & (label < len(palette))
    out = np.zeros(label.shape + (3,), np.uint8)
    out[inside] = palette[label[inside].astype(np.int64)]
    return out
