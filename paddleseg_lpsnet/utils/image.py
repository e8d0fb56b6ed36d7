"""Reading the images a user points `predict` and `infer` at.

`read_image` accepts what users actually have -- 8- and 16-bit, grayscale, gray +
alpha, RGB, RGBA -- and returns the 8-bit-range BGR (or grayscale) float32 array
that PaddleSeg's transforms expect; anything it cannot decode is a DataError naming
the file. `list_images` expands an image, a directory or a file list, as PaddleSeg's
predict.py does.
"""
import os

import cv2
import numpy as np

from paddleseg_lpsnet.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "read_image", "list_images", "output_name"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _decode(path):
    """The decoded pixels of `path` as stored (any depth and channel count)."""
    if not os.path.exists(path):
        raise DataError(f"Image {path} does not exist.")
    if not os.path.isfile(path):
        raise DataError(f"Image {path} is not a file.")
    try:
        raw = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode: non-ASCII paths work
    except OSError as exc:
        raise DataError(f"Image {path} cannot be read: {exc.strerror or exc}.") from exc
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        what = "is empty" if raw.size == 0 else "is not an image OpenCV can decode"
        raise DataError(f"Image {path} {what} (expected PNG, JPEG, BMP, TIFF or WebP).")
    return image


def _to_8bit_range(image, path):
    """float32 pixels in 0..255 from 8-bit, 16-bit or float images."""
    if image.dtype == np.uint8:
        return image.astype("float32")
    if image.dtype == np.uint16:
        return image.astype("float32") * (255.0 / 65535.0)
    if image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise DataError(f"Image {path} holds NaN or infinite pixels.")
        peak = float(image.max()) if image.size else 0.0
        # Floating-point images are either 0..1 or already 0..255.
        return image.astype("float32") * (255.0 if peak <= 1.0 else 1.0)
    raise DataError(f"Image {path} has {image.dtype} pixels; expected 8-bit, 16-bit or float.")


def read_image(path, channels=3):
    """Read `path` as a float32 array of 0..255 values, ready for PaddleSeg's Compose.

    Args:
        path (str): Image file.
        channels (int, optional): 3 for a BGR [H, W, 3] array (gray is replicated,
            alpha is dropped), 1 for a grayscale [H, W] array. Default: 3.

    Raises DataError naming the file when it is missing, not decodable, or of a
    pixel type or channel count that cannot be mapped to `channels`.
    """
    if channels not in (1, 3):
        raise DataError(f"Images can be read with 1 or 3 channels, not {channels}.")
    image = _decode(path)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"Image {path} has shape {image.shape}; expected H x W [x C].")
    image = _to_8bit_range(image, path)
    n = 1 if image.ndim == 2 else image.shape[2]
    if n == 2:  # gray + alpha: the alpha plane is dropped
        image, n = image[:, :, 0], 1
    elif n == 4:  # colour + alpha: the alpha plane is dropped
        image, n = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), 3
    if n not in (1, 3):
        raise DataError(f"Image {path} has {n} channels; expected 1 (gray), 2 (gray + alpha), "
                        "3 (colour) or 4 (colour + alpha).")
    if n == 1 and channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if n == 3 and channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def _read_file_list(path):
    """Image paths listed one per line (first token), relative to the list's folder."""
    root = os.path.dirname(os.path.abspath(path))
    images = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if parts:
                images.append(parts[0] if os.path.isabs(parts[0]) else os.path.join(root, parts[0]))
    return images, root


def list_images(path):
    """The images behind `--image_path`, and the folder that output names are relative to.

    `path` is an image file, a directory (searched recursively, hidden entries
    skipped) or a text file listing images one per line (PaddleSeg's file-list
    format; further tokens on a line, such as a label, are ignored).

    Returns (sorted list of image paths, root directory or None for a single image).
    Raises DataError when `path` does not exist or yields no image.
    """
    if not os.path.exists(path):
        raise DataError(f"--image_path {path} does not exist; expected an image, a directory "
                        "of images or a file list.")
    if os.path.isdir(path):
        images = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            images += [os.path.join(root, f) for f in files
                       if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
        if not images:
            raise DataError(f"Directory {path} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
        return sorted(images), path
    if path.lower().endswith(IMAGE_SUFFIXES):
        return [path], None
    if path.lower().endswith((".txt", ".lst", ".list")):
        images, root = _read_file_list(path)
        if not images:
            raise DataError(f"File list {path} names no image.")
        return images, root
    raise DataError(f"--image_path {path} is neither an image ({', '.join(IMAGE_SUFFIXES)}), "
                    "a directory nor a file list (.txt).")


def output_name(image_path, root):
    """Name of an image's outputs: its path relative to `root`, or its file name."""
    if root is None:
        return os.path.basename(image_path)
    rel = os.path.relpath(image_path, root)
    return os.path.basename(image_path) if rel.startswith("..") else rel
