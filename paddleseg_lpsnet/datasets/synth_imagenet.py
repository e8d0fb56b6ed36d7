"""A small generated ImageNet-style classification set, for testing the pretraining stage.

Each class is one (shape, texture) pair: a disk, square, triangle, cross, ring or bar
filled with horizontal, vertical or diagonal stripes, a checkerboard or dots. Colours,
position, size, stripe period and background vary per image, so only shape and
texture tell the classes apart. Classes k and k' share a shape when k = k' (mod 6) and
a texture when k = k' (mod 5), so up to 5 classes differ in both, and all 30 differ
in at least one.

The tree follows PaddleClas's ImageNetDataset layout:

    OUT/train/<class>/<image>.JPEG, OUT/val/<class>/<image>.JPEG
    OUT/train_list.txt, OUT/val_list.txt   "train/<class>/<image>.JPEG <label>" lines
    OUT/labels.txt                         "<label> <class name>" (PaddleClas class_id_map_file)
"""
import os

import cv2
import numpy as np

from paddleseg_lpsnet.errors import DataError

__all__ = ["SHAPES", "TEXTURES", "MAX_CLASSES", "class_names", "render_image", "write_synth_imagenet"]

SHAPES = ("disk", "square", "triangle", "cross", "ring", "bar")
TEXTURES = ("hstripes", "vstripes", "dstripes", "checker", "dots")
MAX_CLASSES = len(SHAPES) * len(TEXTURES)  # 6 and 5 are coprime: 30 distinct pairs
MIN_SIZE = 16


def class_names(num_classes):
    """The folder name of each class: c<k>_<shape>_<texture>."""
    return [f"c{k:03d}_{SHAPES[k % len(SHAPES)]}_{TEXTURES[k % len(TEXTURES)]}"
            for k in range(num_classes)]


def _shape_mask(shape, size, rng):
    """A uint8 mask (255 inside) of `shape` at a random place, scale and rotation."""
    mask = np.zeros((size, size), np.uint8)
    radius = rng.uniform(0.3, 0.45) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    angle = rng.uniform(0, 2 * np.pi)

    def polygon(points):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = np.asarray(points, np.float64) @ rot.T * radius + [cx, cy]
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)

    if shape == "disk":
        cv2.circle(mask, (round(cx), round(cy)), round(radius), 255, -1)
    elif shape == "ring":
        cv2.circle(mask, (round(cx), round(cy)), round(radius), 255, -1)
        cv2.circle(mask, (round(cx), round(cy)), round(radius * 0.5), 0, -1)
    elif shape == "square":
        polygon([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)])
    elif shape == "triangle":
        polygon([(0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)])
    elif shape == "cross":
        polygon([(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)])
        polygon([(-0.3, -1), (0.3, -1), (0.3, 1), (-0.3, 1)])
    elif shape == "bar":
        polygon([(-1, -0.35), (1, -0.35), (1, 0.35), (-1, 0.35)])
    return mask


def _texture(texture, size, rng):
    """A {0, 1} pattern of `texture` with a random period and phase."""
    period = rng.uniform(0.1, 0.2) * size
    phase = rng.uniform(0, period)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + phase
    if texture == "hstripes":
        return (y // (period / 2)) % 2
    if texture == "vstripes":
        return (x // (period / 2)) % 2
    if texture == "dstripes":
        return ((x + y) // (period / 1.4)) % 2
    if texture == "checker":
        return ((x // (period / 2)) + (y // (period / 2))) % 2
    # dots on a grid
    dx = (x % period) - period / 2
    dy = (y % period) - period / 2
    return (dx * dx + dy * dy < (period * 0.3) ** 2).astype(np.float64)


def _colour(rng, avoid=()):
    """A random RGB colour at least 120 away (L1) from every colour in `avoid`."""
    while True:
        c = rng.randint(0, 256, 3)
        if all(np.abs(c - a).sum() >= 120 for a in avoid):
            return c


def render_image(label, size, rng):
    """One RGB uint8 image [size, size, 3] of class `label`."""
    shape, texture = SHAPES[label % len(SHAPES)], TEXTURES[label % len(TEXTURES)]
    background = _colour(rng)
    img = np.empty((size, size, 3), np.float64)
    img[:] = background
    img += rng.normal(0, 12, (size, size, 1))  # grey noise, same on all channels
    fg = _colour(rng, avoid=[background])
    fg2 = _colour(rng, avoid=[background, fg])
    pattern = _texture(texture, size, rng)[..., None]
    filled = fg * pattern + fg2 * (1 - pattern)
    inside = (_shape_mask(shape, size, rng) > 0)[..., None]
    img = np.where(inside, filled, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def _check_args(out, num_classes, per_class, val_per_class, size):
    if not 2 <= num_classes <= MAX_CLASSES:
        raise DataError(f"--classes {num_classes}: the generator makes 2 to {MAX_CLASSES} classes "
                        f"({len(SHAPES)} shapes x {len(TEXTURES)} textures).")
    if per_class < 1 or val_per_class < 1:
        raise DataError(f"--per_class {per_class} / --val_per_class {val_per_class}: need at least 1 image.")
    if size < MIN_SIZE:
        raise DataError(f"--size {size}: images must be at least {MIN_SIZE} pixels.")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise DataError(f"--out {out} exists and is not an empty directory; choose a new path "
                        "(nothing is overwritten).")


def write_synth_imagenet(out, num_classes=4, per_class=40, val_per_class=10, size=48, seed=0):
    """Write the tree described in the module docstring; returns {"train": n, "val": n}.

    Raises DataError for out-of-range arguments or when `out` holds anything.
    """
    _check_args(out, num_classes, per_class, val_per_class, size)
    rng = np.random.RandomState(seed)
    names = class_names(num_classes)
    counts = {}
    for split, n in (("train", per_class), ("val", val_per_class)):
        lines = []
        for label, name in enumerate(names):
            folder = os.path.join(out, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                rel = f"{split}/{name}/{name}_{i:05d}.JPEG"
                rgb = render_image(label, size, rng)
                if not cv2.imwrite(os.path.join(out, rel), rgb[:, :, ::-1],
                                   [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise DataError(f"Cannot write image {os.path.join(out, rel)}.")
                lines.append(f"{rel} {label}")
        with open(os.path.join(out, f"{split}_list.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        counts[split] = len(lines)
    with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{k} {name}\n" for k, name in enumerate(names)))
    return counts
