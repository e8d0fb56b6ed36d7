"""CamVid, 11 classes, in the SegNet layout.

    <root>/train/      *.png      <root>/trainannot/ *.png
    <root>/val/        *.png      <root>/valannot/   *.png
    <root>/test/       *.png      <root>/testannot/  *.png

An image pairs with the label of the same file stem (a label may add CamVid's
"_L" suffix). Two label encodings are read, per file:
- class indices (a one-channel or palette PNG, SegNet's "annot" folders): 0-10, with
  11 ("void") and 255 ignored;
- colours (an RGB PNG, CamVid's own label images and the archive the PMSDSEN
  authors use): the 11 class colours below; every other colour is ignored.
Both give the SegNet class order (sky, building, pole, road, sidewalk, tree, sign,
fence, car, pedestrian, bicyclist), the order of the published per-class tables.
"""
import os

import numpy as np
from paddleseg.cvlibs import manager
from paddleseg.datasets import Dataset
from paddleseg.transforms import Compose
from paddleseg.transforms.functional import mask_to_binary_edge
from PIL import Image

from paddleseg_lpsnet.errors import DataError

__all__ = ["CamVidDataset", "CAMVID_CLASSES", "CAMVID_COLORS"]

CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence",
                  "car", "pedestrian", "bicyclist")
# RGB colour of each class in CamVid's label images, in CAMVID_CLASSES order.
CAMVID_COLORS = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192),
                 (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                 (0, 128, 192))
SPLITS = ("train", "val", "test")
VOID_INDEX = 11  # SegNet's "unlabelled" index
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


def _stem(name, label=False):
    stem = os.path.splitext(name)[0]
    return stem[:-2] if label and stem.endswith("_L") else stem


def _images_in(folder):
    if not os.path.isdir(folder):
        raise DataError(f"CamVid folder {folder} does not exist; expected the SegNet layout "
                        "<root>/{train,val,test} and <root>/{train,val,test}annot.")
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(_IMAGE_EXTS))


def list_split(dataset_root, split):
    """[(image path, label path)] of one split, paired by file stem; DataError if any is unpaired."""
    img_dir, ann_dir = os.path.join(dataset_root, split), os.path.join(dataset_root, split + "annot")
    images = {_stem(f): f for f in _images_in(img_dir)}
    labels = {_stem(f, label=True): f for f in _images_in(ann_dir)}
    lonely = sorted(set(images) ^ set(labels))
    if lonely:
        where = [f"{img_dir}/{images[s]}" if s in images else f"{ann_dir}/{labels[s]}" for s in lonely]
        raise DataError(f"CamVid {split}: {len(lonely)} files without their pair "
                        f"({', '.join(where[:3])}{' ...' if len(where) > 3 else ''}); an image in "
                        f"{split}/ needs a label of the same name in {split}annot/.")
    if not images:
        raise DataError(f"CamVid {split}: no images in {img_dir}.")
    return [(os.path.join(img_dir, images[s]), os.path.join(ann_dir, labels[s])) for s in sorted(images)]


def colors_to_indices(rgb, ignore_index=255):
    """[H, W, 3] CamVid colours -> [H, W] uint8 class indices; other colours -> ignore_index."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(code.shape, ignore_index, dtype=np.uint8)
    for index, (r, g, b) in enumerate(CAMVID_COLORS):
        out[code == (r << 16 | g << 8 | b)] = index
    return out


def read_camvid_label(path, ignore_index=255):
    """A CamVid label file as [H, W] uint8 indices 0-10 or ignore_index, from either encoding."""
    try:
        with Image.open(path) as im:
            label = np.asarray(im.convert("RGB") if im.mode in ("RGBA", "RGB") else im)
    except Exception as exc:  # PIL raises many types for a bad file
        raise DataError(f"Cannot read CamVid label {path}: {type(exc).__name__}: {exc}") from exc
    if label.ndim == 3:
        return colors_to_indices(label, ignore_index)
    label = label.astype(np.uint8)
    bad = np.setdiff1d(np.unique(label), list(range(VOID_INDEX + 1)) + [ignore_index])
    if bad.size:
        raise DataError(f"CamVid label {path} holds values {bad[:5].tolist()}: expected class "
                        f"indices 0-10, {VOID_INDEX} (void) or {ignore_index}.")
    return np.where(label == VOID_INDEX, ignore_index, label).astype(np.uint8)


@manager.DATASETS.add_component
class CamVidDataset(Dataset):
    """CamVid (11 classes) from the SegNet folder layout, class-index or colour labels.

    Args:
        transforms (list): Transforms for image and label.
        dataset_root (str): Folder holding train/, trainannot/, val/, valannot/, test/, testannot/.
        mode (str, optional): 'train' (the label is transformed with the image) or
            'val' (the label keeps its size, for evaluation). Default: 'train'.
        split (str|list[str], optional): The split(s) to read: train, val, test, or a
            list such as [train, val] (the usual CamVid training set). Default: the
            split named like `mode`.
        edge (bool, optional): Also return edges of the label (training). Default: False.
    """
    NUM_CLASSES = len(CAMVID_CLASSES)
    IGNORE_INDEX = 255
    IMG_CHANNELS = 3

    def __init__(self, transforms, dataset_root, mode="train", split=None, edge=False):
        mode = str(mode).lower()
        if mode not in ("train", "val"):
            raise DataError(f"CamVidDataset mode must be 'train' or 'val', got {mode!r}.")
        splits = [mode] if split is None else [split] if isinstance(split, str) else list(split)
        unknown = [s for s in splits if s not in SPLITS]
        if unknown or not splits:
            raise DataError(f"CamVidDataset split must name some of {', '.join(SPLITS)}, got {split!r}.")
        if not os.path.isdir(str(dataset_root)):
            raise DataError(f"CamVid dataset_root {dataset_root} does not exist.")
        self.dataset_root = dataset_root
        self.transforms = Compose(transforms)
        self.mode = mode
        self.splits = splits
        self.num_classes = self.NUM_CLASSES
        self.ignore_index = self.IGNORE_INDEX
        self.img_channels = self.IMG_CHANNELS
        self.edge = edge
        self.file_list = [pair for s in splits for pair in list_split(dataset_root, s)]

    def read_label(self, path):
        """The label of `path` as class indices (what the class-weight tool counts)."""
        return read_camvid_label(path, self.ignore_index)

    def __getitem__(self, idx):
        image_path, label_path = self.file_list[idx]
        data = {"img": image_path, "label": self.read_label(label_path), "trans_info": [],
                "gt_fields": []}
        if self.mode == "val":
            data = self.transforms(data)
            data["label"] = data["label"][np.newaxis, :, :]
            return data
        data["gt_fields"].append("label")
        data = self.transforms(data)
        if self.edge:
            data["edge"] = mask_to_binary_edge(data["label"], radius=2, num_classes=self.num_classes)
        return data

