"""`lpsnet data prepare-cityscapes` on a tiny fake download in the real format."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from paddleseg_lpsnet.datasets.cityscapes import prepare_cityscapes
from paddleseg_lpsnet.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 64, 128


def _obj(label, polygon, i, deleted=0):
    # every key a real gtFine *_polygons.json object carries
    return {"date": "28-Jan-2016 13:37:00", "deleted": deleted, "draw": True, "id": i,
            "label": label, "polygon": polygon, "user": "annotator", "verified": 0}


def _box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


OBJECTS = [  # back to front, as in the real files
    ("sky", _box(0, 0, 127, 20)),
    ("building", _box(0, 21, 127, 39)),
    ("road", _box(0, 40, 127, 63)),
    ("cargroup", _box(10, 45, 40, 60)),                 # "<label>group" -> car
    ("person", _box(60, 45, 70, 60)),                    # deleted below: not drawn
    ("license plate", _box(20, 50, 30, 55)),             # id -1: not drawn
    ("ego vehicle", _box(90, 56, 127, 63)),              # trainId 255
    ("rail track", _box(100, 41, 110, 45)),              # trainId 255
]


def make_download(root, samples=(("train", "aachen", 2), ("val", "lindau", 1)), objects=OBJECTS):
    for split, city, count in samples:
        for i in range(count):
            stem = f"{city}_{i:06d}_000019"
            img_dir = os.path.join(root, "leftImg8bit", split, city)
            gt_dir = os.path.join(root, "gtFine", split, city)
            os.makedirs(img_dir, exist_ok=True)
            os.makedirs(gt_dir, exist_ok=True)
            Image.fromarray(np.full((H, W, 3), 90 + i, np.uint8)).save(
                os.path.join(img_dir, stem + "_leftImg8bit.png"))
            objs = [_obj(label, poly, k, deleted=int(label == "person")) for k, (label, poly) in enumerate(objects)]
            with open(os.path.join(gt_dir, stem + "_gtFine_polygons.json"), "w") as f:
                json.dump({"imgHeight": H, "imgWidth": W, "objects": objs}, f, indent=4)
    return root


def _label(root, split, city, i=0):
    return np.asarray(Image.open(os.path.join(root, "gtFine", split, city,
                                              f"{city}_{i:06d}_000019_gtFine_labelTrainIds.png")))


def test_builds_train_ids_and_file_lists(tmp_path):
    root = make_download(str(tmp_path / "cityscapes"))
    result = prepare_cityscapes(root, num_workers=1)
    assert result["converted"] == 3 and result["skipped"] == 0
    label = _label(root, "train", "aachen")
    assert label.shape == (H, W) and label.dtype == np.uint8
    assert label[10, 64] == 10 and label[30, 64] == 2 and label[50, 5] == 0   # sky, building, road
    assert label[50, 25] == 13                                                # cargroup -> car (plate skipped)
    assert label[50, 65] == 0                                                 # deleted person: road shows
    assert label[60, 100] == 255 and label[43, 105] == 255                    # ego vehicle, rail track
    with open(os.path.join(root, "train.txt")) as f:
        lines = f.read().splitlines()
    assert lines == [f"leftImg8bit/train/aachen/aachen_{i:06d}_000019_leftImg8bit.png "
                     f"gtFine/train/aachen/aachen_{i:06d}_000019_gtFine_labelTrainIds.png" for i in range(2)]
    assert len(open(os.path.join(root, "val.txt")).read().splitlines()) == 1


def test_same_labels_as_cityscapesscripts_own_tool(tmp_path):
    from cityscapesscripts.preparation.json2labelImg import json2labelImg
    root = make_download(str(tmp_path / "cs"))
    prepare_cityscapes(root, num_workers=2)
    src = os.path.join(root, "gtFine", "val", "lindau", "lindau_000000_000019_gtFine_polygons.json")
    json2labelImg(src, str(tmp_path / "ref.png"), "trainIds")
    np.testing.assert_array_equal(_label(root, "val", "lindau"), np.asarray(Image.open(tmp_path / "ref.png")))


def test_keeps_existing_labels_unless_forced(tmp_path):
    root = make_download(str(tmp_path / "cs"))
    prepare_cityscapes(root)
    path = os.path.join(root, "gtFine", "train", "aachen", "aachen_000000_000019_gtFine_labelTrainIds.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(path)
    assert prepare_cityscapes(root)["skipped"] == 3
    assert _label(root, "train", "aachen").max() == 0
    prepare_cityscapes(root, force=True)
    assert _label(root, "train", "aachen")[10, 64] == 10


def test_wrong_root_names_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_cityscapes(str(tmp_path / "nowhere"))
    root = make_download(str(tmp_path / "cs"), samples=(("train", "aachen", 1),))
    with pytest.raises(DataError, match=r"missing leftImg8bit/val/, gtFine/val/"):
        prepare_cityscapes(root)
    os.rename(os.path.join(root, "gtFine"), os.path.join(root, "gtFine_old"))
    with pytest.raises(DataError, match=r"gtFine/ \(unzip gtFine_trainvaltest.zip"):
        prepare_cityscapes(root, splits=("train",))


def test_unknown_label_names_the_file(tmp_path):
    root = make_download(str(tmp_path / "cs"), objects=OBJECTS + [("spaceship", _box(0, 0, 5, 5))])
    with pytest.raises(DataError, match=r"aachen_000000_000019_gtFine_polygons.json: object 8 has label 'spaceship'"):
        prepare_cityscapes(root)


def test_image_without_annotation_is_named(tmp_path):
    root = make_download(str(tmp_path / "cs"))
    os.remove(os.path.join(root, "gtFine", "train", "aachen", "aachen_000001_000019_gtFine_polygons.json"))
    with pytest.raises(DataError, match="aachen_000001_000019_leftImg8bit.png"):
        prepare_cityscapes(root)


def test_cli_prepare(tmp_path):
    root = make_download(str(tmp_path / "cs"))
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "data", "prepare-cityscapes",
                          "--root", root, "--num_workers", "1"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "drew 3 labelTrainIds images" in res.stdout and "train.txt (2 samples)" in res.stdout
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "data", "prepare-cityscapes",
                          "--root", str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "nope does not exist" in res.stderr
