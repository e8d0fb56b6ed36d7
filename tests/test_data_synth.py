"""`lpsnet data synth`: deterministic street scenes in the real Cityscapes layout."""
import filecmp
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from paddleseg_lpsnet.datasets import synth_cityscapes as synth
from paddleseg_lpsnet.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (128, 256)
NUM_TRAIN, NUM_VAL = 10, 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth") / "cs")
    meta = synth.generate_dataset(root, NUM_TRAIN, NUM_VAL, SIZE, seed=7)
    return root, meta


def _files(root):
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "**", "*"), recursive=True)
                  if os.path.isfile(p))


def test_layout_and_names_follow_cityscapes(dataset):
    root, _ = dataset
    images = sorted(glob.glob(os.path.join(root, "leftImg8bit", "*", "*", "*_leftImg8bit.png")))
    assert len(images) == NUM_TRAIN + NUM_VAL
    for img in images:
        split, city = img.split(os.sep)[-3:-1]
        stem = os.path.basename(img)[:-len("_leftImg8bit.png")]
        c, seq, frame = stem.split("_")
        assert c == city and city in synth.CITIES[split] and len(seq) == 6 and len(frame) == 6
        for suffix in ("_gtFine_polygons.json", "_gtFine_labelIds.png", "_gtFine_labelTrainIds.png"):
            assert os.path.isfile(os.path.join(root, "gtFine", split, city, stem + suffix))
        assert Image.open(img).size == (SIZE[1], SIZE[0]) and Image.open(img).mode == "RGB"
    with open(os.path.join(root, "train.txt")) as f:
        lines = f.read().splitlines()
    assert len(lines) == NUM_TRAIN
    img, lbl = lines[0].split(" ")
    assert img.startswith("leftImg8bit/train/") and lbl.endswith("_gtFine_labelTrainIds.png")
    assert os.path.isfile(os.path.join(root, img)) and os.path.isfile(os.path.join(root, lbl))


def test_label_ids_and_train_ids_agree_through_cityscapesscripts(dataset):
    from cityscapesscripts.helpers.labels import id2label
    root, _ = dataset
    for ids_path in glob.glob(os.path.join(root, "gtFine", "*", "*", "*_labelIds.png")):
        ids = np.asarray(Image.open(ids_path))
        train = np.asarray(Image.open(ids_path.replace("_labelIds", "_labelTrainIds")))
        for i in np.unique(ids):
            assert id2label[int(i)].name in synth.SCENE_LABELS
            expected = id2label[int(i)].trainId
            assert np.all(train[ids == i] == (expected if 0 <= expected < 255 else 255)), id2label[int(i)].name


def test_polygons_are_real_cityscapes_annotations(dataset, tmp_path):
    """cityscapesscripts' own json2labelImg redraws the shipped labelIds from the JSON."""
    from cityscapesscripts.preparation.json2labelImg import json2labelImg
    root, _ = dataset
    path = sorted(glob.glob(os.path.join(root, "gtFine", "val", "*", "*_polygons.json")))[0]
    with open(path) as f:
        data = json.load(f)
    assert (data["imgHeight"], data["imgWidth"]) == SIZE and data["objects"][0]["label"] == "sky"
    json2labelImg(path, str(tmp_path / "ids.png"), "ids")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ids.png")),
                                  np.asarray(Image.open(path.replace("_polygons.json", "_labelIds.png"))))


def test_image_regions_are_exactly_the_labelled_pixels():
    """The pixels each shape paints in the image are the pixels cityscapesscripts labels with it."""
    from cityscapesscripts.helpers.labels import name2label
    from paddleseg_lpsnet.datasets.cityscapes import annotation_from_dict, render_label
    for i in range(3):
        _, shapes = synth.compose_scene(np.random.default_rng([1, 1, i]), *SIZE)
        owner = synth.owner_map(shapes, *SIZE)
        ids = np.array([0] + [name2label[s.label].id if s.label else 0 for s in shapes])[owner]
        objects = [{"label": s.label, "polygon": s.polygon.tolist()} for s in shapes if s.label]
        annotation = annotation_from_dict({"imgHeight": SIZE[0], "imgWidth": SIZE[1], "objects": objects})
        assert (owner > 0).all()   # every pixel belongs to some region
        np.testing.assert_array_equal(ids, render_label(annotation, "ids"))


def test_same_seed_same_bytes_other_seed_other_images(dataset, tmp_path):
    root, _ = dataset
    again = str(tmp_path / "again")
    synth.generate_dataset(again, NUM_TRAIN, NUM_VAL, SIZE, seed=7)
    files = _files(root)
    assert files == _files(again)
    match, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert not mismatch and not errors
    # sample i does not depend on how many samples were asked for
    fewer = str(tmp_path / "fewer")
    synth.generate_dataset(fewer, 2, 1, SIZE, seed=7)
    first = sorted(glob.glob(os.path.join(fewer, "leftImg8bit", "train", "*", "*.png")))[0]
    assert filecmp.cmp(first, os.path.join(root, os.path.relpath(first, fewer)), shallow=False)
    other = str(tmp_path / "other")
    synth.generate_dataset(other, 2, 1, SIZE, seed=8)
    a = np.asarray(Image.open(first), np.int16)
    b = np.asarray(Image.open(os.path.join(other, os.path.relpath(first, fewer))), np.int16)
    assert np.abs(a - b).mean() > 10


def test_paddleseg_cityscapes_reads_the_folder(dataset):
    import paddleseg.transforms as T
    from paddleseg.datasets import Cityscapes
    root, _ = dataset
    train = Cityscapes([T.RandomPaddingCrop(crop_size=(64, 64)), T.Normalize()], root, mode="train")
    val = Cityscapes([T.Normalize()], root, mode="val")
    assert len(train) == NUM_TRAIN and len(val) == NUM_VAL
    sample = train[0]
    assert sample["img"].shape == (3, 64, 64) and sample["label"].shape == (64, 64)
    sample = val[0]
    assert sample["img"].shape == (3, *SIZE) and sample["label"].shape == (1, *SIZE)
    assert set(np.unique(sample["label"])) <= set(range(19)) | {255}


def test_every_scene_class_is_present_and_big_ones_dominate(dataset):
    from cityscapesscripts.helpers.labels import name2label
    _, meta = dataset
    stats = meta["classes"]["train"]
    scene = [n for n in synth.SCENE_LABELS if 0 <= name2label[n].trainId < 255]
    for name in scene:   # each class in most images, so every crop teaches several
        assert stats[name]["images"] >= 0.5, (name, stats[name])
    for name in set(stats) - set(scene):
        assert stats[name]["pixels"] == 0
    big = sum(stats[n]["pixels"] for n in ("road", "building", "vegetation", "sky", "sidewalk"))
    assert 0.6 < big < 0.98
    assert all(stats[n]["pixels"] < 0.5 for n in scene)   # no class swamps the rest
    assert meta["classes"]["val"]["car"]["images"] > 0


def test_images_are_varied(dataset):
    root, _ = dataset
    images = [np.asarray(Image.open(p), np.float32) for p in
              sorted(glob.glob(os.path.join(root, "leftImg8bit", "train", "*", "*.png")))]
    brightness = [img.mean() for img in images]
    assert np.std(brightness) > 5
    assert min(img.std() for img in images) > 20      # textured, not flat


def test_refuses_to_overwrite_foreign_or_existing_output(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="was not written by"):
        synth.generate_dataset(str(foreign), 1, 1, SIZE, force=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = str(tmp_path / "gen")
    synth.generate_dataset(out, 3, 1, SIZE)
    with pytest.raises(DataError, match="--force"):
        synth.generate_dataset(out, 1, 1, SIZE)
    synth.generate_dataset(out, 1, 1, SIZE, force=True)  # no stale samples left behind
    assert len(glob.glob(os.path.join(out, "leftImg8bit", "train", "*", "*.png"))) == 1
    assert json.load(open(os.path.join(out, synth.MARKER)))["complete"] is True


def test_an_interrupted_generation_can_be_replaced(tmp_path, monkeypatch):
    out = str(tmp_path / "gen")

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "generate_sample", fail)
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(out, 2, 1, SIZE)
    assert json.load(open(os.path.join(out, synth.MARKER)))["complete"] is False
    monkeypatch.undo()
    synth.generate_dataset(out, 2, 1, SIZE, force=True)
    assert json.load(open(os.path.join(out, synth.MARKER)))["complete"] is True


def test_cli_synth(tmp_path):
    out = str(tmp_path / "cli")
    cmd = [sys.executable, "-m", "paddleseg_lpsnet", "data", "synth", "--out", out,
           "--num_train", "2", "--num_val", "1", "--size", "64", "128", "--seed", "3"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Wrote 2 train + 1 val images of 64x128" in res.stdout and "sky" in res.stdout
    assert json.load(open(os.path.join(out, synth.MARKER)))["seed"] == 3
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "--force" in res.stderr


def test_demo_config_reads_generated_data_cleanly(dataset):
    """configs/demo/lpsnet_s_synth.yml trains on `lpsnet data synth` output as it is."""
    from paddleseg_lpsnet.datasets.check import check_config_data
    from paddleseg_lpsnet.utils.config import load_config
    root, _ = dataset
    cfg = load_config(os.path.join(ROOT, "configs", "demo", "lpsnet_s_synth.yml"),
                      opts=[f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}"])
    report = check_config_data(cfg)
    assert report.ok, [str(p) for p in report.problems]
    assert [len(s.samples) for s in report.splits] == [NUM_TRAIN, NUM_VAL]
    assert cfg.dic["model"]["backbone"]["type"] == "LPSNetBackbone_S" and cfg.dic["model"]["num_classes"] == 19
