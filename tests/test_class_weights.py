"""ENet class weights: the computation, and `lpsnet data class-weights` on a config's labels."""
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from paddleseg_lpsnet.errors import DataError
from paddleseg_lpsnet.utils.class_weights import count_label_pixels, enet_class_weights
from test_camvid import make_camvid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_enet_weights_formula():
    counts = np.array([700, 200, 100, 0])
    w = enet_class_weights(counts, c=1.1)
    np.testing.assert_allclose(w, 1 / np.log(1.1 + np.array([0.7, 0.2, 0.1, 0.0])))
    assert w[3] == pytest.approx(1 / np.log(1.1))  # an absent class gets the largest weight
    with pytest.raises(DataError, match="No labelled pixel"):
        enet_class_weights([0, 0])


def test_counting_skips_ignore_and_names_a_bad_label(tmp_path):
    good, bad = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    Image.fromarray(np.array([[0, 1, 255], [1, 1, 2]], np.uint8)).save(good)
    Image.fromarray(np.array([[0, 7]], np.uint8)).save(bad)
    np.testing.assert_array_equal(count_label_pixels([good], 3), [1, 3, 1])
    with pytest.raises(DataError, match=r"b.png holds values \[7\] outside the 3 classes"):
        count_label_pixels([good, bad], 3)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "data", "class-weights", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_cli_prints_the_configs_loss_with_weights_of_the_train_labels(tmp_path):
    root = str(tmp_path / "camvid")
    truth = make_camvid(root)
    res = _run("--config", "configs/pmsdsen/pmsdsen_camvid.yml",
               "--opts", f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}")
    assert res.returncode == 0, res.stderr
    counts = np.zeros(11, np.int64)
    for (split, _), label in truth.items():
        if split in ("train", "val"):  # the config trains on train + val
            counts += np.bincount(label[label != 255], minlength=11)
    expected = [round(float(w), 4) for w in 1 / np.log(1.1 + counts / counts.sum())]
    snippet = yaml.safe_load(res.stdout)
    loss = snippet["loss"]
    assert loss["coef"] == [1, 0.1, 0.1]
    assert [t["type"] for t in loss["types"]] == ["CrossEntropyLoss"] * 3
    for t in loss["types"]:
        assert t["weight"] == expected
    assert res.stdout.startswith("# ENet class weights 1/ln(1.1 + p_c) from 5 labels of CamVidDataset")


def test_cli_reads_a_paddleseg_file_list_dataset(tmp_path):
    os.makedirs(tmp_path / "ann")
    lines = []
    for i, label in enumerate([np.array([[0, 0, 1]], np.uint8), np.array([[1, 255, 0]], np.uint8)]):
        Image.fromarray(np.zeros((1, 3, 3), np.uint8)).save(tmp_path / f"im{i}.png")
        Image.fromarray(label).save(tmp_path / "ann" / f"im{i}.png")
        lines.append(f"im{i}.png ann/im{i}.png")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "cfg.yml"
    dataset = {"type": "Dataset", "dataset_root": str(tmp_path), "num_classes": 2, "mode": "train",
               "train_path": str(tmp_path / "train.txt"), "val_path": str(tmp_path / "train.txt"),
               "transforms": [{"type": "Normalize"}]}
    cfg.write_text(yaml.safe_dump({
        "_base_": os.path.join(ROOT, "configs", "_base_", "cityscapes.yml"),
        "train_dataset": dataset, "val_dataset": dict(dataset, mode="val"),
        "loss": {"types": [{"type": "OhemCrossEntropyLoss"}], "coef": [1]},
        "model": {"type": "PMSDSENet", "num_classes": 2}}))
    res = _run("--config", str(cfg), "--enet_c", "1.02")
    assert res.returncode == 0, res.stderr
    loss = yaml.safe_load(res.stdout)["loss"]
    # no CrossEntropyLoss to weight in the config: a weighted one is proposed
    assert loss == {"types": [{"type": "CrossEntropyLoss",
                               "weight": [round(1 / np.log(1.02 + 3 / 5), 4), round(1 / np.log(1.02 + 2 / 5), 4)]}],
                    "coef": [1]}


def test_cli_missing_dataset_is_one_line(tmp_path):
    res = _run("--config", "configs/pmsdsen/pmsdsen_camvid.yml",
               "--opts", f"train_dataset.dataset_root={tmp_path / 'nowhere'}")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("lpsnet data: error: CamVid dataset_root") and "nowhere" in last
    assert "Traceback" not in res.stderr
