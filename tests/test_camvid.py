"""CamVidDataset: the SegNet layout, both label encodings, pairing and bad input."""
import os

import numpy as np
import pytest
from PIL import Image

from paddleseg_lpsnet.datasets.camvid import CAMVID_COLORS, CamVidDataset, read_camvid_label
from paddleseg_lpsnet.errors import DataError

H, W = 24, 32


def _write_image(path, seed):
    rgb = np.random.RandomState(seed).randint(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def _index_label(seed):
    label = np.random.RandomState(seed).randint(0, 11, (H, W)).astype(np.uint8)
    label[0, :4] = 11  # SegNet's void
    return label


def _color_label(index):
    rgb = np.zeros((H, W, 3), np.uint8)
    for c, color in enumerate(CAMVID_COLORS):
        rgb[index == c] = color
    return rgb


def make_camvid(root, n=(3, 2, 2), color_splits=("val",)):
    """A tiny CamVid in SegNet's layout; `color_splits` get RGB colour labels named *_L.png."""
    truth = {}
    for split, count in zip(("train", "val", "test"), n):
        os.makedirs(os.path.join(root, split))
        os.makedirs(os.path.join(root, split + "annot"))
        for i in range(count):
            name = f"0001TP_{split}_{i:03d}"
            seed = 100 * ("train", "val", "test").index(split) + i
            _write_image(os.path.join(root, split, name + ".png"), seed)
            index = _index_label(seed)
            if split in color_splits:
                rgb = _color_label(index)
                rgb[1, 1] = (10, 20, 30)  # a colour of none of the 11 classes
                Image.fromarray(rgb).save(os.path.join(root, split + "annot", name + "_L.png"))
                index = index.copy()
                index[1, 1] = 255
            else:
                Image.fromarray(index).save(os.path.join(root, split + "annot", name + ".png"))
            truth[(split, i)] = np.where(index == 11, 255, index)
    return truth


@pytest.fixture
def camvid(tmp_path):
    root = str(tmp_path / "camvid")
    return root, make_camvid(root)


def _dataset(root, **kwargs):
    from paddleseg.transforms import Normalize
    return CamVidDataset([Normalize()], root, **kwargs)


def test_index_and_color_labels_give_segnet_classes(camvid):
    root, truth = camvid
    train = _dataset(root, mode="train", split=["train", "val"])
    assert len(train) == 5 and train.num_classes == 11 and train.ignore_index == 255
    for i, (split, j) in enumerate([("train", 0), ("train", 1), ("train", 2), ("val", 0), ("val", 1)]):
        label = train.read_label(train.file_list[i][1])
        np.testing.assert_array_equal(label, truth[(split, j)])


def test_modes_follow_paddleseg_contract(camvid):
    root, truth = camvid
    train = _dataset(root, mode="train")
    item = train[0]
    assert item["img"].shape == (3, H, W) and item["label"].shape == (H, W)
    test = _dataset(root, mode="val", split="test")
    item = test[1]
    assert item["label"].shape == (1, H, W)  # evaluation keeps the label's size, with a channel axis
    np.testing.assert_array_equal(item["label"][0], truth[("test", 1)])


def test_unpaired_image_is_named(camvid):
    root, _ = camvid
    os.remove(os.path.join(root, "trainannot", "0001TP_train_001.png"))
    with pytest.raises(DataError, match=r"train: 1 files without their pair .*0001TP_train_001.png"):
        _dataset(root, mode="train")


def test_out_of_range_index_label_is_named(camvid, tmp_path):
    root, _ = camvid
    bad = np.full((H, W), 3, np.uint8)
    bad[2, 2] = 40
    path = os.path.join(root, "trainannot", "0001TP_train_000.png")
    Image.fromarray(bad).save(path)
    with pytest.raises(DataError, match=r"0001TP_train_000.png holds values \[40\]"):
        read_camvid_label(path)


def test_missing_layout_and_bad_arguments_are_refused(tmp_path, camvid):
    root, _ = camvid
    with pytest.raises(DataError, match="does not exist"):
        _dataset(str(tmp_path / "nowhere"))
    os.rename(os.path.join(root, "testannot"), os.path.join(root, "testlabels"))
    with pytest.raises(DataError, match=r"testannot does not exist; expected the SegNet layout"):
        _dataset(root, mode="val", split="test")
    with pytest.raises(DataError, match="mode must be 'train' or 'val'"):
        _dataset(root, mode="test")
    with pytest.raises(DataError, match="split must name some of train, val, test"):
        _dataset(root, split=["train", "trainval"])


def test_builds_from_the_pmsdsen_camvid_config(camvid):
    from paddleseg.cvlibs import SegBuilder

    from paddleseg_lpsnet.utils.config import load_config
    root, _ = camvid
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(root_dir, "configs", "pmsdsen", "pmsdsen_camvid.yml"),
                      opts=[f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}"])
    builder = SegBuilder(cfg)
    train, val = builder.train_dataset, builder.val_dataset
    assert (train.splits, train.mode, len(train)) == (["train", "val"], "train", 5)
    assert (val.splits, val.mode, len(val)) == (["test"], "val", 2)
    item = train[0]
    assert item["img"].shape == (3, 360, 480) and item["label"].shape == (360, 480)
