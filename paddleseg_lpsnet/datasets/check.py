"""Find every problem in the train/val data of a PaddleSeg config before training.

PaddleSeg finds bad data late (hours into a run), one file at a time, and sometimes
not at all: `Cityscapes` zips two sorted globs, so one missing label silently
mispairs every later sample; a colour-coded label or a value outside the classes
crashes a reader thread or trains on garbage. `check_config_data` reads a config's
dataset sections the way PaddleSeg does and reports all problems at once, each
naming the culprit file (or config key):

- cheap (deep=False): dataset root, file lists and their lines, missing files,
  images without labels and back, empty splits, duplicated entries;
- deep (deep=True) also decodes every image and label: unreadable or truncated
  files, formats OpenCV cannot read, channel counts, image/label size mismatch,
  label values outside 0..num_classes-1 that are not ignore_index.

`lpsnet train` runs the cheap check; `lpsnet data check` runs the deep one.
"""
import collections
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from paddleseg_lpsnet.datasets.cityscapes import (GT_DIR, IMG_DIR, POLYGONS_SUFFIX, TRAIN_IDS_SUFFIX,
                                                  pair_samples)
from paddleseg_lpsnet.errors import ConfigError, DataError

__all__ = ["KINDS", "Problem", "Sample", "SplitData", "DataReport", "check_config_data",
           "require_valid_data"]

# Problem kinds, in the order a report lists them.
KINDS = ("config", "missing-root", "missing-list", "list-format", "empty", "duplicate",
         "missing-file", "unreadable", "truncated", "channels", "size-mismatch", "label-values")
SECTIONS = {"train": "train_dataset", "val": "val_dataset"}
# Formats OpenCV's imread (PaddleSeg's image reader) decodes, by PIL's format name.
CV2_FORMATS = {"PNG", "JPEG", "BMP", "DIB", "TIFF", "WEBP", "PPM", "JPEG2000"}
ONE_BAND_MODES = {"1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class Problem:
    """One problem: its kind, the dataset section, the culprit path or key, what is wrong."""
    kind: str
    section: str
    path: str
    detail: str

    def __str__(self):
        return f"{self.section}: [{self.kind}] {self.path}: {self.detail}"


@dataclass
class Sample:
    image: str
    label: Optional[str]
    where: str = ""  # "train.txt:12" for file-list entries


@dataclass
class SplitData:
    """A dataset section resolved to its samples and label space."""
    section: str
    type: str
    root: str = ""
    samples: List[Sample] = field(default_factory=list)
    num_classes: int = 0
    ignore_index: int = 255
    img_channels: int = 3
    source: str = ""  # where the samples come from (folder or file list), for messages


@dataclass
class DataReport:
    """The outcome of a check: problems plus what was checked."""
    problems: List[Problem] = field(default_factory=list)
    splits: List[SplitData] = field(default_factory=list)
    deep: bool = False

    @property
    def ok(self):
        return not self.problems

    def counts(self):
        c = collections.Counter(p.kind for p in self.problems)
        return {k: c[k] for k in KINDS if c[k]}

    def summary(self):
        """One line: what was checked and how many problems of which kinds."""
        checked = " + ".join(f"{s.section} {len(s.samples)}" for s in self.splits) or "no dataset"
        what = "files decoded" if self.deep else "paths and lists only"
        if self.ok:
            return f"OK: {checked} samples checked ({what}): no problems."
        kinds = ", ".join(f"{k} {n}" for k, n in self.counts().items())
        return f"{len(self.problems)} data problems ({kinds}) in {checked} samples ({what})."

    def raise_if_problems(self, config_path="CFG", shown=3):
        """DataError with a one-line digest of the problems, if any."""
        if self.ok:
            return
        listed = "; ".join(str(p).rstrip(".") for p in self.problems[:shown])
        more = f"; and {len(self.problems) - shown} more" if len(self.problems) > shown else ""
        head = "" if len(self.problems) == 1 else f"{len(self.problems)} data problems: "
        raise DataError(f"{head}{listed}{more} (config {config_path}). `lpsnet data check --config "
                        f"{config_path}` lists every problem.")


# --------------------------------------------------------------------------- resolving

def _section_dict(config, section):
    dic = getattr(config, "dic", config)
    value = dic.get(section)
    return value if isinstance(value, dict) and value else None


def _resolve_cityscapes(cfg, split, problems):
    from paddleseg.datasets import Cityscapes
    mode = str(cfg.get("mode", "train")).lower()
    split.num_classes, split.ignore_index = Cityscapes.NUM_CLASSES, Cityscapes.IGNORE_INDEX
    split.img_channels = Cityscapes.IMG_CHANNELS
    split.source = os.path.join(split.root, "{%s,%s}" % (IMG_DIR, GT_DIR), mode)
    missing = [d for d in (os.path.join(split.root, IMG_DIR, mode), os.path.join(split.root, GT_DIR, mode))
               if not os.path.isdir(d)]
    if missing:
        problems.append(Problem("missing-root", split.section, split.root,
                                f"Cityscapes layout needs {' and '.join(missing)} (mode {mode!r})."))
        return
    pairs, lonely_images, lonely_labels = pair_samples(split.root, mode)
    split.samples = [Sample(img, lbl) for img, lbl in pairs]
    for img in lonely_images:
        stem = os.path.basename(img)[:-len("_leftImg8bit.png")]
        city = os.path.basename(os.path.dirname(img))
        label = os.path.join(split.root, GT_DIR, mode, city, stem + TRAIN_IDS_SUFFIX)
        hint = (" (its polygons exist: run `lpsnet data prepare-cityscapes`)"
                if os.path.isfile(label[:-len(TRAIN_IDS_SUFFIX)] + POLYGONS_SUFFIX) else "")
        problems.append(Problem("missing-file", split.section, label,
                                f"label of {img} does not exist{hint}."))
    for lbl in lonely_labels:
        problems.append(Problem("missing-file", split.section, lbl,
                                "label has no image *_leftImg8bit.png of the same name."))


def _resolve_file_list(cfg, split, problems):
    mode = str(cfg.get("mode", "")).lower()
    if mode not in ("train", "val", "test"):
        problems.append(Problem("config", split.section, f"{split.section}.mode",
                                f"is {cfg.get('mode')!r}; Dataset needs 'train', 'val' or 'test'."))
        return
    if "num_classes" not in cfg:
        problems.append(Problem("config", split.section, f"{split.section}.num_classes",
                                "is missing; Dataset needs the number of classes."))
        return
    split.num_classes = int(cfg["num_classes"])
    split.ignore_index = int(cfg.get("ignore_index", 255))
    split.img_channels = int(cfg.get("img_channels", 3))
    key = f"{mode}_path"
    list_path = cfg.get(key)
    if not list_path:
        problems.append(Problem("config", split.section, f"{split.section}.{key}",
                                f"is missing; mode {mode!r} reads its samples from it."))
        return
    split.source = list_path
    if not os.path.isfile(list_path):
        problems.append(Problem("missing-list", split.section, list_path,
                                f"file list ({split.section}.{key}) does not exist."))
        return
    separator = cfg.get("separator", " ")
    with open(list_path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            where = f"{list_path}:{number}"
            items = line.strip().split(separator)
            if len(items) == 2 and all(items):
                split.samples.append(Sample(os.path.join(split.root, items[0]),
                                            os.path.join(split.root, items[1]), where))
            elif mode == "test" and len(items) == 1 and items[0]:
                split.samples.append(Sample(os.path.join(split.root, items[0]), None, where))
            else:
                problems.append(Problem("list-format", split.section, where,
                                        f"line {line.rstrip()!r} is not 'image{separator}label'."))


def _resolve_other(cfg, split, problems, dataset_class):
    """Any other PaddleSeg dataset: build it without transforms and read its file_list."""
    params = {k: v for k, v in cfg.items() if k != "type"}
    params["transforms"] = []
    try:
        dataset = dataset_class(**params)
    except Exception as exc:  # the dataset's own validation; name it and go on
        problems.append(Problem("config", split.section, split.section,
                                f"{split.type} cannot be built: {type(exc).__name__}: {exc}"))
        return
    split.source = split.root
    split.num_classes = int(getattr(dataset, "num_classes", getattr(dataset_class, "NUM_CLASSES", 0)))
    split.ignore_index = int(getattr(dataset, "ignore_index", 255))
    split.img_channels = int(getattr(dataset, "img_channels", getattr(dataset_class, "IMG_CHANNELS", 3)))
    split.samples = [Sample(img, lbl) for img, lbl in getattr(dataset, "file_list", [])]


def resolve_split(config, name, problems):
    """SplitData of split `name` ("train"/"val"), appending problems found on the way."""
    section = SECTIONS[name]
    cfg = _section_dict(config, section)
    if cfg is None:
        problems.append(Problem("config", section, section, "is missing from the config."))
        return None
    split = SplitData(section=section, type=str(cfg.get("type")), root=str(cfg.get("dataset_root", "")))
    from paddleseg_lpsnet.utils.config import find_component
    try:
        dataset_class = find_component(split.type, section)
    except ConfigError as exc:
        problems.append(Problem("config", section, f"{section}.type", str(exc)))
        return split
    if not split.root or not os.path.isdir(split.root):
        # also keeps datasets that download themselves (ADE20K, ...) from doing so here
        problems.append(Problem("missing-root", section, split.root or f"{section}.dataset_root",
                                "dataset_root does not exist (relative paths start at the "
                                f"current folder, {os.getcwd()})."))
        return split
    if split.type == "Cityscapes":
        _resolve_cityscapes(cfg, split, problems)
    elif split.type == "Dataset":
        _resolve_file_list(cfg, split, problems)
    else:
        _resolve_other(cfg, split, problems, dataset_class)
    return split


# --------------------------------------------------------------------------- cheap checks

def list_problems(split):
    """Empty splits, duplicated entries and missing files (no decoding)."""
    problems = []
    if not split.samples:
        problems.append(Problem("empty", split.section, split.source or split.section,
                                f"{split.section} ({split.type}) has no samples."))
    seen = {}
    for s in split.samples:
        key = os.path.normpath(os.path.abspath(s.image))
        if key in seen:
            at = f" (at {seen[key].where} and {s.where})" if s.where else ""
            problems.append(Problem("duplicate", split.section, s.image, f"is listed twice{at}."))
        else:
            seen[key] = s
        for role, path in (("image", s.image), ("label", s.label)):
            if path is not None and not os.path.isfile(path):
                at = f" (listed at {s.where})" if s.where else ""
                problems.append(Problem("missing-file", split.section, path,
                                        f"{role} does not exist{at}."))
    return problems


# --------------------------------------------------------------------------- deep checks

def _open(path):
    """(PIL image fully decoded, None) or (None, (kind, detail))."""
    from PIL import Image, UnidentifiedImageError
    try:
        img = Image.open(path)
        img.load()
        return img, None
    except UnidentifiedImageError:
        size = os.path.getsize(path)
        return None, ("unreadable", f"is not an image file PIL or OpenCV can decode ({size} bytes).")
    except (OSError, SyntaxError, ValueError) as exc:
        kind = "truncated" if "truncat" in str(exc).lower() else "unreadable"
        return None, (kind, f"cannot be decoded: {exc}.")


def _channels(img):
    return len(img.getbands()) if img.mode != "P" else 3


def image_problems(split, path):
    img, err = _open(path)
    if err:
        return None, [Problem(err[0], split.section, path, err[1])]
    problems = []
    if img.format not in CV2_FORMATS:
        problems.append(Problem("unreadable", split.section, path,
                                f"is {img.format}, which OpenCV (PaddleSeg's image reader) cannot "
                                f"read; convert it to PNG or JPEG."))
    channels = _channels(img)
    expected = split.img_channels
    if (expected == 3 and channels < 3) or (expected == 1 and channels != 1):
        problems.append(Problem("channels", split.section, path,
                                f"has {channels} channel(s) ({img.mode}); {split.section} expects "
                                f"{expected} (img_channels), and PaddleSeg would convert it silently."))
    return img.size, problems


def label_problems(split, path):
    img, err = _open(path)
    if err:
        return None, [Problem(err[0], split.section, path, err[1])]
    if img.mode not in ONE_BAND_MODES:
        return img.size, [Problem("channels", split.section, path,
                                  f"label has {len(img.getbands())} channels ({img.mode}); labels must "
                                  "be single-channel class indices (a colour-coded label? use the "
                                  "*labelTrainIds.png / index PNG instead).")]
    values, counts = np.unique(np.asarray(img), return_counts=True)
    bad = (values != split.ignore_index) & ((values < 0) | (values >= split.num_classes))
    if bad.any():
        shown = ", ".join(str(v) for v in values[bad][:8]) + (" ..." if bad.sum() > 8 else "")
        return img.size, [Problem("label-values", split.section, path,
                                  f"values {shown} ({int(counts[bad].sum())} pixels) are outside "
                                  f"0..{split.num_classes - 1} and not ignore_index {split.ignore_index}.")]
    return img.size, []


def sample_problems(split, sample):
    """Decode one sample's image and label and compare them."""
    if not os.path.isfile(sample.image):
        return []  # reported by list_problems
    img_size, problems = image_problems(split, sample.image)
    if sample.label is None or not os.path.isfile(sample.label):
        return problems
    lbl_size, more = label_problems(split, sample.label)
    problems += more
    if img_size and lbl_size and img_size != lbl_size:
        problems.append(Problem("size-mismatch", split.section, sample.label,
                                f"label is {lbl_size[0]}x{lbl_size[1]} (WxH), its image {sample.image} "
                                f"is {img_size[0]}x{img_size[1]}."))
    return problems


# --------------------------------------------------------------------------- entry points

def check_config_data(config, splits=("train", "val"), deep=True, num_workers=4):
    """Check the datasets of a PaddleSeg config.

    Args:
        config (paddleseg.cvlibs.Config | dict): The config (or its `dic`).
        splits (tuple[str]): "train" and/or "val". Default: both.
        deep (bool): Decode every image and label. Default: True.
        num_workers (int): Threads decoding files. Default: 4.

    Returns:
        DataReport: every problem found (problems of one sample stay together, in
        sample order).
    """
    report = DataReport(deep=deep)
    from PIL import ImageFile
    if deep and ImageFile.LOAD_TRUNCATED_IMAGES:
        report.problems.append(Problem("config", "-", "PIL.ImageFile.LOAD_TRUNCATED_IMAGES",
                                       "is True in this process, so truncated files pass unnoticed."))
    for name in splits:
        found = []
        split = resolve_split(config, name, found)
        report.problems += found
        if split is None:
            continue
        report.splits.append(split)
        if found and not split.samples:
            continue  # the reason it has no samples is already reported
        report.problems += list_problems(split)
        if deep and split.samples:
            with ThreadPoolExecutor(max(1, num_workers)) as pool:
                for problems in pool.map(lambda s: sample_problems(split, s), split.samples):
                    report.problems += problems
    return report


def require_valid_data(config, config_path="CFG", splits=("train", "val")):
    """The cheap check for `lpsnet train`: DataError (one line) if anything is wrong."""
    check_config_data(config, splits=splits, deep=False).raise_if_problems(config_path)
