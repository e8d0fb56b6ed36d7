"""Every shipped config builds offline into this project's classes (mmseg's test_config)."""
import glob
import os

import pytest

from paddleseg_lpsnet.utils.config import build_model, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Model configs: every .yml under configs/<family>/ except partial bases (_*.yml) and metafiles.
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.yml"))
                 if not os.path.basename(p).startswith(("_", "metafile")) and "_base_" not in p)


def test_configs_are_found():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_builds_offline_into_our_classes(path):
    cfg = load_config(path)
    model = build_model(cfg)
    assert type(model).__module__.startswith("paddleseg_lpsnet"), type(model)
    for layer in model.sublayers():
        assert not type(layer).__module__.startswith("paddleseg.models"), (
            f"{path}: built upstream's {type(layer).__name__}")
    num_classes = cfg.dic["model"]["num_classes"]
    assert model.num_classes == num_classes
    head = getattr(model, "head", None)
    if head is not None and hasattr(model, "backbone"):
        assert head.in_channels == list(model.backbone.feat_channels)
        assert head.num_classes == num_classes


LPSNET_EXPECTED = {
    "lpsnet_s.yml": ((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (0.75, 0.25)),
    "lpsnet_m.yml": ((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (1.0, 0.25)),
    "lpsnet_l.yml": ((1, 3, 3, 10, 10), (8, 24, 64, 160, 160), (1.0, 0.25)),
}


@pytest.mark.parametrize("name", sorted(LPSNET_EXPECTED))
def test_lpsnet_configs_follow_paddleseg_recipe(name):
    cfg = load_config(os.path.join(ROOT, "configs", "lpsnet", name))
    model = build_model(cfg)
    b = model.backbone
    assert (b.depths, b.channels, b.scale_ratios) == LPSNET_EXPECTED[name]
    assert model.head.classifier.weight.shape == [19, 96 * 2 if "_l" not in name else 160 * 2, 1, 1]
    d = cfg.dic
    assert d["batch_size"] == 4 and d["iters"] == 200000
    crop = [t for t in d["train_dataset"]["transforms"] if t["type"] == "RandomPaddingCrop"]
    assert crop and crop[0]["crop_size"] == [1536, 768]
    scaling = [t for t in d["train_dataset"]["transforms"] if t["type"] == "ResizeStepScaling"][0]
    assert (scaling["min_scale_factor"], scaling["max_scale_factor"], scaling["scale_step_size"]) == (0.5, 2.0, 0.25)
    distort = [t for t in d["train_dataset"]["transforms"] if t["type"] == "RandomDistort"][0]
    assert distort["brightness_range"] == distort["contrast_range"] == distort["saturation_range"] == 0.4
    assert d["optimizer"] == {"type": "SGD", "momentum": 0.9, "weight_decay": 5.0e-4}
    assert d["lr_scheduler"] == {"type": "PolynomialDecay", "learning_rate": 0.01, "end_lr": 0.0, "power": 0.9}
    assert d["loss"]["types"] == [{"type": "OhemCrossEntropyLoss", "thresh": 0.7, "min_kept": 10000}]
    assert d["train_dataset"]["type"] == d["val_dataset"]["type"] == "Cityscapes"
