"""Colour maps of label images: palettes, colourising, overlays and the files predict writes.

A palette is a [256, 3] uint8 RGB array indexed by label value. 19 classes get the
Cityscapes colours of the train ids (taken from cityscapesscripts, the dataset's
own definition); other class counts get a generic palette in which neighbouring
labels differ in every channel. Label 255 (ignore) is black in both.
"""
import os

import cv2
import numpy as np
from PIL import Image

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["get_palette", "cityscapes_palette", "generic_palette", "colorize", "overlay",
           "save_prediction", "label_summary", "PSEUDO_COLOR_DIR", "ADDED_DIR"]

NUM_CITYSCAPES_CLASSES = 19
IGNORE_INDEX = 255
# PaddleSeg's predict.py folder names.
PSEUDO_COLOR_DIR = "pseudo_color_prediction"
ADDED_DIR = "added_prediction"


def cityscapes_palette():
    """The Cityscapes colours of train ids 0..18 (cityscapesscripts' table); 255 black."""
    from cityscapesscripts.helpers.labels import labels
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < NUM_CITYSCAPES_CLASSES:
            palette[label.trainId] = label.color
    return palette


def generic_palette():
    """A 256-entry palette spreading the bits of each label over R, G and B.

    Bit k of the label sets bit 7 - k // 3 of channel k % 3 (the PASCAL VOC
    scheme), so labels 1..7 are saturated primaries and mixtures, and no two
    labels share a colour. Label 0 is black, as is 255 (ignore).
    """
    labels = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            source = 3 * bit + channel
            palette[:, channel] |= ((labels >> source) & 1) << (7 - bit)
    palette[IGNORE_INDEX] = 0
    return palette.astype(np.uint8)


def get_palette(num_classes, custom_color=None):
    """The [256, 3] uint8 RGB palette for `num_classes` classes.

    Args:
        num_classes (int|None): 19 gives the Cityscapes palette; anything else
            (None when unknown) the generic one.
        custom_color (list[int], optional): Flat RGB triples (PaddleSeg's
            `--custom_color`) replacing the colours of labels 0, 1, ... Default: None.
    """
    palette = cityscapes_palette() if num_classes == NUM_CITYSCAPES_CLASSES else generic_palette()
    if custom_color:
        colors = np.asarray(custom_color, dtype=np.int64)
        if colors.size % 3 or colors.size // 3 > 256 or colors.min() < 0 or colors.max() > 255:
            raise ConfigError(f"--custom_color must be R G B triples of 0..255 for at most 256 labels; "
                             f"got {len(custom_color)} values {list(custom_color)[:6]}...")
        palette[:colors.size // 3] = colors.reshape(-1, 3)
    return palette


def colorize(label, palette):
    """RGB [H, W, 3] uint8 image of an integer label map [H, W] (or [1, H, W]) under `palette`."""
    label = np.asarray(label)
    if label.ndim == 3 and label.shape[0] == 1:  # [1, H, W] as a data loader gives it
        label = label[0]
    if label.ndim != 2:
        raise ValueError(f"colorize expects a [H, W] label map, got shape {label.shape}.")
    if label.size and (label.min() < 0 or label.max() >= len(palette)):
        raise ValueError(f"Label values {label.min()}..{label.max()} are outside the palette (0..{len(palette) - 1}).")
    return np.asarray(palette, dtype=np.uint8)[label.astype(np.int64)]


def overlay(image_bgr, label, palette, weight=0.6):
    """BGR uint8 blend: `weight` of the image plus 1 - weight of the colourised label."""
    image = np.clip(np.asarray(image_bgr, dtype=np.float32), 0, 255)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[:2] != label.shape:
        raise ValueError(f"Image {image.shape[:2]} and label {label.shape} sizes differ.")
    color = colorize(label, palette)[:, :, ::-1].astype(np.float32)
    return np.clip(weight * image + (1.0 - weight) * color + 0.5, 0, 255).astype(np.uint8)


def _palette_png(label, palette):
    """A palette-mode PNG image: viewers show colours, the pixel values are the labels."""
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"Label values {label.min()}..{label.max()} do not fit a palette PNG (0..255).")
    image = Image.fromarray(label.astype(np.uint8), mode="P")
    image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    return image


def save_prediction(save_dir, name, label, palette, image_bgr=None, weight=0.6):
    """Write PaddleSeg predict.py's outputs for one image; returns the paths written.

    save_dir/pseudo_color_prediction/<name>.png: the label map as a palette PNG
    (pixel values are the class ids); save_dir/added_prediction/<name>: the image
    blended with the colour map (when `image_bgr` is given), in the image's format.
    """
    stem = os.path.splitext(name)[0]
    color_path = os.path.join(save_dir, PSEUDO_COLOR_DIR, stem + ".png")
    os.makedirs(os.path.dirname(color_path), exist_ok=True)
    _palette_png(np.asarray(label), palette).save(color_path)
    paths = [color_path]
    if image_bgr is not None:
        ext = os.path.splitext(name)[1].lower()
        added_path = os.path.join(save_dir, ADDED_DIR, stem + (ext if ext in (".png", ".jpg", ".jpeg", ".bmp") else ".png"))
        os.makedirs(os.path.dirname(added_path), exist_ok=True)
        ok, data = cv2.imencode(os.path.splitext(added_path)[1], overlay(image_bgr, label, palette, weight))
        if not ok:
            raise OSError(f"OpenCV could not encode {added_path}.")
        data.tofile(added_path)
        paths.append(added_path)
    return paths


def label_summary(label, top=3):
    """One line about a label map: its size and its most frequent classes with their share."""
    label = np.asarray(label)
    ids, counts = np.unique(label, return_counts=True)
    order = np.argsort(-counts)[:top]
    shares = ", ".join(f"{ids[i]} {100.0 * counts[i] / label.size:.0f}%" for i in order)
    return f"{label.shape[0]}x{label.shape[1]}, {len(ids)} classes (most: {shares})"
