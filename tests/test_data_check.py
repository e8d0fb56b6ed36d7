"""`lpsnet data check`: every problem kind is found and names its culprit."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from paddleseg_lpsnet.datasets.check import KINDS, check_config_data, require_valid_data
from paddleseg_lpsnet.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 32, 64


def _image(path, size=(H, W), mode="RGB", seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = size + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)
    return path


def _label(path, size=(H, W), values=(0, 1, 2, 18, 255), seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.choice(np.array(values, np.uint8), size)).save(path)
    return path


def make_cityscapes(root, counts=(("train", 3), ("val", 2))):
    for split, n in counts:
        for i in range(n):
            stem = os.path.join(split, "city", f"city_{i:06d}_000019")
            _image(os.path.join(root, "leftImg8bit", stem + "_leftImg8bit.png"), seed=i)
            _label(os.path.join(root, "gtFine", stem + "_gtFine_labelTrainIds.png"), seed=i)
    return root


def cs_path(root, split, i, kind):
    stem = f"city_{i:06d}_000019"
    if kind == "image":
        return os.path.join(root, "leftImg8bit", split, "city", stem + "_leftImg8bit.png")
    return os.path.join(root, "gtFine", split, "city", stem + "_gtFine_labelTrainIds.png")


def cs_config(root):
    return {"train_dataset": {"type": "Cityscapes", "dataset_root": root, "mode": "train", "transforms": []},
            "val_dataset": {"type": "Cityscapes", "dataset_root": root, "mode": "val", "transforms": []}}


def make_file_list_dataset(root, lines_train=None):
    """A generic `Dataset` (file lists); returns its config dict."""
    for i in range(3):
        _image(os.path.join(root, "img", f"{i}.jpg"), seed=i)
        _label(os.path.join(root, "ann", f"{i}.png"), values=(0, 1, 2, 255), seed=i)
    lines_train = lines_train or [f"img/{i}.jpg ann/{i}.png" for i in range(2)]
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("\n".join(lines_train) + "\n")
    with open(os.path.join(root, "val.txt"), "w") as f:
        f.write("img/2.jpg ann/2.png\n")
    common = {"type": "Dataset", "dataset_root": root, "num_classes": 3, "transforms": [],
              "train_path": os.path.join(root, "train.txt"), "val_path": os.path.join(root, "val.txt")}
    return {"train_dataset": dict(common, mode="train"), "val_dataset": dict(common, mode="val")}


def write_config(tmp_path, cfg):
    """A full PaddleSeg config (the demo's) with these dataset sections."""
    path = tmp_path / "cfg.yml"
    path.write_text(yaml.safe_dump(dict(cfg, _base_=os.path.join(ROOT, "configs", "demo", "lpsnet_s_synth.yml"))))
    return str(path)


def problems(cfg, **kw):
    return check_config_data(cfg, num_workers=2, **kw).problems


def only(cfg, kind, **kw):
    found = problems(cfg, **kw)
    assert [p.kind for p in found] == [kind], [str(p) for p in found]
    return str(found[0])


@pytest.fixture
def cs(tmp_path):
    root = make_cityscapes(str(tmp_path / "cs"))
    return root, cs_config(root)


@pytest.fixture
def fl(tmp_path):
    root = str(tmp_path / "fl")
    return root, make_file_list_dataset(root)


def test_clean_datasets_have_no_problems(cs, fl):
    for _, cfg in (cs, fl):
        report = check_config_data(cfg)
        assert report.ok, [str(p) for p in report.problems]
        assert report.summary().startswith("OK:")
    assert [len(s.samples) for s in check_config_data(cs[1]).splits] == [3, 2]


def test_missing_root(cs, tmp_path):
    _, cfg = cs
    cfg["val_dataset"]["dataset_root"] = str(tmp_path / "gone")
    assert "gone" in only(cfg, "missing-root") and "val_dataset" in only(cfg, "missing-root")


def test_missing_file_list(fl):
    root, cfg = fl
    os.remove(os.path.join(root, "val.txt"))
    assert f"{root}/val.txt" in only(cfg, "missing-list")


def test_bad_list_line_names_file_and_line(fl, tmp_path):
    root = str(tmp_path / "bad")
    cfg = make_file_list_dataset(root, ["img/0.jpg ann/0.png", "img/1.jpg"])
    assert f"{root}/train.txt:2" in only(cfg, "list-format")


def test_empty_split(cs):
    root, cfg = cs
    for i in range(2):
        os.remove(cs_path(root, "val", i, "image"))
        os.remove(cs_path(root, "val", i, "label"))
    assert "val_dataset (Cityscapes) has no samples" in only(cfg, "empty")


def test_duplicate_entry_names_both_lines(tmp_path):
    root = str(tmp_path / "dup")
    cfg = make_file_list_dataset(root, ["img/0.jpg ann/0.png", "img/1.jpg ann/1.png", "img/0.jpg ann/0.png"])
    msg = only(cfg, "duplicate")
    assert "img/0.jpg" in msg and "train.txt:1" in msg and "train.txt:3" in msg


def test_missing_file_in_list(fl):
    root, cfg = fl
    os.remove(os.path.join(root, "ann", "1.png"))
    msg = only(cfg, "missing-file")
    assert "ann/1.png" in msg and "train.txt:2" in msg


def test_cityscapes_image_without_label_is_not_silently_mispaired(cs):
    root, cfg = cs
    label = cs_path(root, "train", 1, "label")
    os.remove(label)
    with open(label.replace("_labelTrainIds.png", "_polygons.json"), "w") as f:
        f.write("{}")
    msg = only(cfg, "missing-file")
    assert label in msg and "prepare-cityscapes" in msg
    # the other samples stay correctly paired
    pairs = check_config_data(cfg, deep=False).splits[0].samples
    assert [os.path.basename(s.image)[:18] for s in pairs] == [os.path.basename(s.label)[:18] for s in pairs]


def test_unreadable_image(cs):
    root, cfg = cs
    path = cs_path(root, "train", 2, "image")
    with open(path, "w") as f:
        f.write("not a png")
    assert path in only(cfg, "unreadable")


def test_truncated_image(cs):
    root, cfg = cs
    path = cs_path(root, "val", 0, "image")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    assert path in only(cfg, "truncated")


def test_colour_label_has_wrong_channel_count(cs):
    root, cfg = cs
    path = cs_path(root, "train", 0, "label")
    _image(path)  # an RGB "colour" label
    msg = only(cfg, "channels")
    assert path in msg and "single-channel" in msg


def test_grayscale_image_in_rgb_dataset(cs):
    root, cfg = cs
    path = _image(cs_path(root, "train", 1, "image"), mode="L")
    msg = only(cfg, "channels")
    assert path in msg and "expects 3" in msg


def test_image_label_size_mismatch(cs):
    root, cfg = cs
    path = _label(cs_path(root, "val", 1, "label"), size=(H, W + 2))
    msg = only(cfg, "size-mismatch")
    assert path in msg and "66x32" in msg and "64x32" in msg


def test_label_values_out_of_range(fl):
    root, cfg = fl
    path = _label(os.path.join(root, "ann", "0.png"), values=(0, 1, 3, 200, 255))
    msg = only(cfg, "label-values")
    assert path in msg and "values 3, 200" in msg and "outside 0..2" in msg


def test_unknown_dataset_type_suggests_names(cs):
    _, cfg = cs
    cfg["train_dataset"]["type"] = "Cityscape"
    assert "Did you mean Cityscapes" in only(cfg, "config", splits=("train",))


def test_every_problem_reported_at_once_and_cli_exit_code(cs, tmp_path):
    root, cfg = cs
    os.remove(cs_path(root, "train", 0, "label"))
    _label(cs_path(root, "train", 1, "label"), values=(0, 77))
    open(cs_path(root, "val", 0, "image"), "w").close()
    report = check_config_data(cfg)
    assert sorted(p.kind for p in report.problems) == ["label-values", "missing-file", "unreadable"]
    config = write_config(tmp_path, cfg)
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "data", "check", "--config", config],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1
    for culprit in (cs_path(root, "train", 0, "label"), cs_path(root, "train", 1, "label"),
                    cs_path(root, "val", 0, "image")):
        assert culprit in res.stdout
    assert "3 data problems (missing-file 1, unreadable 1, label-values 1)" in res.stderr


def test_cli_clean_is_one_line(cs, tmp_path):
    _, cfg = cs
    config = write_config(tmp_path, cfg)
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "data", "check", "--config", config,
                          "--split", "val"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines() == [
        f"{config}: OK: val_dataset 2 samples checked (files decoded): no problems."]


def test_quick_mode_for_train_checks_paths_without_decoding(cs):
    root, cfg = cs
    open(cs_path(root, "val", 0, "image"), "w").close()        # only decoding finds this
    assert check_config_data(cfg, deep=False).ok
    shutil.rmtree(os.path.join(root, "gtFine", "val"))
    with pytest.raises(DataError) as err:
        require_valid_data(cfg, "my.yml")
    msg = str(err.value)
    assert "\n" not in msg and "missing-root" in msg and "lpsnet data check --config my.yml" in msg


def test_kinds_are_all_tested():
    tested = {"config", "missing-root", "missing-list", "list-format", "empty", "duplicate", "missing-file",
              "unreadable", "truncated", "channels", "size-mismatch", "label-values"}
    assert tested == set(KINDS)


def test_other_paddleseg_dataset_types_are_read_through_paddleseg(fl):
    """Any other dataset type is built (without transforms) to get its file list and classes."""
    root, _ = fl
    os.rename(os.path.join(root, "train.txt"), os.path.join(root, "train_list.txt"))
    cfg = {"train_dataset": {"type": "OpticDiscSeg", "dataset_root": root, "mode": "train", "transforms": []}}
    found = problems(cfg, splits=("train",))       # OpticDiscSeg has 2 classes; both labels hold a 2
    assert [p.kind for p in found] == ["label-values"] * 2
    assert os.path.join(root, "ann", "1.png") in str(found[1]) and "outside 0..1" in str(found[1])
