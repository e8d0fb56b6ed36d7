"""The Cityscapes folder layout, its polygon annotations and PaddleSeg file lists.

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_polygons.json
                                                   _gtFine_labelIds.png
                                                   _gtFine_labelTrainIds.png

Label ids and train ids are cityscapesscripts' (`cityscapesscripts.helpers.labels`),
and label images are drawn by its own `createLabelImage`, so this module holds no
class table of its own.
"""
import glob
import json
import os

import numpy as np

from paddleseg_lpsnet.errors import DataError
from paddleseg_lpsnet.utils.io import atomic_write_text

__all__ = [
    "IMG_DIR", "GT_DIR", "IMG_SUFFIX", "POLYGONS_SUFFIX", "LABEL_IDS_SUFFIX", "TRAIN_IDS_SUFFIX",
    "sample_files", "pair_samples", "file_list_lines", "write_file_lists",
    "annotation_from_dict", "read_annotation", "render_label", "train_id_lut",
    "check_root", "prepare_cityscapes",
]

IMG_DIR, GT_DIR = "leftImg8bit", "gtFine"
IMG_SUFFIX = "_leftImg8bit.png"
POLYGONS_SUFFIX = "_gtFine_polygons.json"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"


def sample_files(root, top, split, suffix):
    """{sample name ("city_seq_frame"): path} of the files `root/top/split/*/*suffix`."""
    paths = glob.glob(os.path.join(root, top, split, "*", "*" + suffix))
    return {os.path.basename(p)[:-len(suffix)]: p for p in sorted(paths)}


def pair_samples(root, split, label_suffix=TRAIN_IDS_SUFFIX):
    """Images of a split matched with their labels by sample name.

    Returns (pairs, images_without_label, labels_without_image): pairs is a sorted
    list of (image_path, label_path); the other two are sorted path lists.
    (PaddleSeg's `Cityscapes` zips the two sorted globs instead, which silently
    mispairs every sample after a missing file.)
    """
    images = sample_files(root, IMG_DIR, split, IMG_SUFFIX)
    labels = sample_files(root, GT_DIR, split, label_suffix)
    pairs = [(images[k], labels[k]) for k in sorted(images) if k in labels]
    lonely_images = [images[k] for k in sorted(images) if k not in labels]
    lonely_labels = [labels[k] for k in sorted(labels) if k not in images]
    return pairs, lonely_images, lonely_labels


def _relative(path, root):
    return os.path.relpath(path, root).replace(os.sep, "/")


def file_list_lines(root, pairs):
    """PaddleSeg file-list lines ("image label", relative to root) for (image, label) pairs."""
    return [f"{_relative(img, root)} {_relative(lbl, root)}" for img, lbl in pairs]


def write_file_lists(root, splits=("train", "val")):
    """Write root/{split}.txt for every split; returns {split: (path, sample count)}.

    Raises DataError naming the first images without a labelTrainIds image (or the
    reverse), since a list with holes would train on a subset without saying so.
    """
    written = {}
    for split in splits:
        pairs, lonely_images, lonely_labels = pair_samples(root, split)
        lonely = lonely_images + lonely_labels
        if lonely:
            shown = ", ".join(lonely[:3]) + (f" and {len(lonely) - 3} more" if len(lonely) > 3 else "")
            raise DataError(f"{len(lonely)} {split} files have no counterpart "
                            f"(image {IMG_SUFFIX} <-> label {TRAIN_IDS_SUFFIX}): {shown}.")
        path = os.path.join(root, f"{split}.txt")
        atomic_write_text("".join(line + "\n" for line in file_list_lines(root, pairs)), path)
        written[split] = (path, len(pairs))
    return written


def _known_label(name):
    """cityscapesscripts' label name for an annotation label ("cargroup" -> "car"), or None."""
    from cityscapesscripts.helpers.labels import name2label
    if name in name2label:
        return name
    if name.endswith("group") and name[:-len("group")] in name2label:
        return name[:-len("group")]
    return None


def annotation_from_dict(data, source="<annotation>"):
    """A cityscapesscripts `Annotation` from a gtFine polygons dict, validated.

    Raises DataError naming `source` for a missing key or an unknown label (where
    cityscapesscripts itself would print and call sys.exit).
    """
    from cityscapesscripts.helpers.annotation import Annotation
    for key in ("imgWidth", "imgHeight", "objects"):
        if key not in data:
            raise DataError(f"{source}: not a Cityscapes polygons file (no {key!r} key).")
    for i, obj in enumerate(data["objects"]):
        if "label" not in obj or "polygon" not in obj:
            raise DataError(f"{source}: object {i} needs 'label' and 'polygon' keys.")
        if not obj.get("deleted") and _known_label(obj["label"]) is None:
            raise DataError(f"{source}: object {i} has label {obj['label']!r}, which "
                            "cityscapesscripts.helpers.labels does not define.")
    annotation = Annotation()
    annotation.fromJsonText(json.dumps(data))
    return annotation


def read_annotation(path):
    """The validated `Annotation` of a *_gtFine_polygons.json file (DataError if bad)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the polygons JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a Cityscapes polygons file (top level is not an object).")
    return annotation_from_dict(data, source=path)


def render_label(annotation, encoding):
    """Label image (uint8 HxW) drawn by cityscapesscripts; encoding "ids" or "trainIds"."""
    from cityscapesscripts.preparation.json2labelImg import createLabelImage
    if encoding not in ("ids", "trainIds"):
        raise ValueError(f"encoding must be 'ids' or 'trainIds', got {encoding!r}.")
    return np.asarray(createLabelImage(annotation, encoding), dtype=np.uint8)


def train_id_lut():
    """uint8[256] lookup id -> trainId from cityscapesscripts (255 for ids it maps to none)."""
    from cityscapesscripts.helpers.labels import labels
    lut = np.full(256, 255, dtype=np.uint8)
    for label in labels:
        if label.id >= 0:
            lut[label.id] = label.trainId if 0 <= label.trainId < 255 else 255
    return lut


def check_root(root, splits=("train", "val")):
    """Raise DataError naming everything missing for a Cityscapes download at `root`."""
    if not os.path.isdir(root):
        raise DataError(f"Cityscapes root {root} does not exist (expected a folder holding "
                        f"{IMG_DIR}/ and {GT_DIR}/).")
    missing = []
    for top, archive in ((IMG_DIR, "leftImg8bit_trainvaltest.zip"), (GT_DIR, "gtFine_trainvaltest.zip")):
        if not os.path.isdir(os.path.join(root, top)):
            missing.append(f"{top}/ (unzip {archive} into the root)")
            continue
        missing += [f"{top}/{split}/" for split in splits if not os.path.isdir(os.path.join(root, top, split))]
    if missing:
        raise DataError(f"{root} is not a Cityscapes root: missing {', '.join(missing)}.")


def _write_label(json_path, dst):
    """Draw the labelTrainIds image of one polygons file; the file appears complete or not at all."""
    from PIL import Image
    label = render_label(read_annotation(json_path), "trainIds")
    tmp = os.path.join(os.path.dirname(dst), ".tmp-" + os.path.basename(dst))
    try:
        Image.fromarray(label).save(tmp, format="PNG")
        os.replace(tmp, dst)
    except OSError as exc:
        raise DataError(f"cannot write {dst}: {exc}.") from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _convert_job(job):
    json_path, dst = job
    try:
        _write_label(json_path, dst)
        return None
    except DataError as exc:
        return str(exc)


def prepare_cityscapes(root, splits=("train", "val"), force=False, num_workers=1, progress=None):
    """Build *_gtFine_labelTrainIds.png from the gtFine polygons and write file lists.

    Labels are drawn by cityscapesscripts (`createLabelImage`, train ids from its
    `labels`). Existing labelTrainIds images are kept unless `force` (each is written
    under a temporary name first, so an interrupted run leaves none half-written).

    Args:
        root (str): The Cityscapes root (leftImg8bit/, gtFine/).
        splits (tuple[str]): Splits to convert and list. Default: ("train", "val").
        force (bool): Redraw labelTrainIds images that exist. Default: False.
        num_workers (int): Processes drawing labels. Default: 1.
        progress (callable, optional): Called with (done, total).

    Returns:
        dict: {"converted": n, "skipped": n, "lists": {split: (path, samples)}}.
    """
    check_root(root, splits)
    jobs = []
    for split in splits:
        polygons = sample_files(root, GT_DIR, split, POLYGONS_SUFFIX)
        if not polygons:
            raise DataError(f"No *{POLYGONS_SUFFIX} under {os.path.join(root, GT_DIR, split)}: "
                            "is gtFine_trainvaltest.zip fully extracted?")
        for path in polygons.values():
            dst = path[:-len(POLYGONS_SUFFIX)] + TRAIN_IDS_SUFFIX
            if force or not os.path.isfile(dst):
                jobs.append((path, dst))
    skipped = sum(len(sample_files(root, GT_DIR, s, POLYGONS_SUFFIX)) for s in splits) - len(jobs)
    errors = []
    for done, error in enumerate(_map(_convert_job, jobs, num_workers), 1):
        if error:
            errors.append(error)
        if progress:
            progress(done, len(jobs))
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise DataError(f"{len(errors)} annotation files could not be converted: "
                        + " | ".join(errors[:5]) + more)
    return {"converted": len(jobs), "skipped": skipped, "lists": write_file_lists(root, splits)}


def _map(fn, items, num_workers):
    """fn over items in order, in num_workers forked processes when > 1."""
    if num_workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(min(num_workers, len(items))) as pool:
        yield from pool.imap(fn, items, chunksize=8)
        pool.close()
        pool.join()
