"""Every shipped config builds offline into this project's classes (mmseg's test_config)."""
import glob
import os

import paddle
import pytest

from paddleseg_lpsnet.utils.config import build_model, find_component, load_config

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
    # every family (with or without a backbone): eval logits of num_classes at input size
    model.eval()
    with paddle.no_grad():
        out = model(paddle.zeros([1, cfg.dic["model"].get("in_channels", 3), 40, 56]))
    assert len(out) == 1 and list(out[0].shape) == [1, num_classes, 40, 56]


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


FASTERSEG = ["fasterseg_student.yml", "fasterseg_teacher.yml", "fasterseg_student_distill.yml"]


@pytest.mark.parametrize("name", FASTERSEG)
def test_fasterseg_configs_follow_the_authors_recipe(name):
    from paddleseg.cvlibs import SegBuilder
    cfg = load_config(os.path.join(ROOT, "configs", "fasterseg", name))
    d = cfg.dic
    assert d["model"]["type"] == ("FasterSegTeacher" if "teacher" in name else "FasterSegStudent")
    assert d["batch_size"] == 12 and d["iters"] == 600 * 1000
    types = [t["type"] for t in d["train_dataset"]["transforms"]]
    assert types == ["ResizeStepScaling", "RandomPaddingCrop", "RandomHorizontalFlip", "Normalize"]
    scaling, crop, _, norm = d["train_dataset"]["transforms"]
    assert (scaling["min_scale_factor"], scaling["max_scale_factor"], scaling["scale_step_size"]) == (0.75, 1.25, 0.25)
    assert crop["crop_size"] == [1024, 512]
    assert norm["mean"] == [0.485, 0.456, 0.406] and norm["std"] == [0.229, 0.224, 0.225]
    assert d["optimizer"] == {"type": "SGD", "momentum": 0.9, "weight_decay": 5.0e-4}
    builder = SegBuilder(cfg)
    lr = builder.lr_scheduler
    assert type(lr).__name__ == "StepDecay" and (lr.base_lr, lr.step_size, lr.gamma) == (0.01, 1000, 0.992)
    # OHEM with min_kept = 12 x 512 x 1024 / 16 on main, aux16, aux32 with coefs 1, 0.2, 0.2
    loss = builder.loss
    assert loss["coef"] == [1, 0.2, 0.2]
    assert [(type(l).__name__, l.thresh, l.min_kept) for l in loss["types"]] == [
        ("OhemCrossEntropyLoss", 0.7, 12 * 512 * 1024 // 16)] * 3


def _distill_configs():
    import yaml
    found = []
    for path in CONFIGS:
        with open(path) as f:
            if "distill" in (yaml.safe_load(f) or {}):
                found.append(path)
    return found


def test_distill_configs_are_shipped_for_both_families():
    names = {os.path.relpath(p, ROOT) for p in _distill_configs()}
    assert names == {os.path.join("configs", "fasterseg", "fasterseg_student_distill.yml"),
                     os.path.join("configs", "lpsnet", "lpsnet_s_distill_from_l.yml")}


DISTILL_PAIRS = {"fasterseg_student_distill.yml": ("FasterSegStudent", "FasterSegTeacher"),
                 "lpsnet_s_distill_from_l.yml": ("LPSNetBackbone_S", "LPSNetBackbone_L")}


@pytest.mark.parametrize("path", _distill_configs(), ids=lambda p: os.path.relpath(p, ROOT))
def test_distill_section_names_a_teacher_with_the_same_classes(path):
    """The section reads (core/distill.py); its teacher config (from the repo root) builds a
    bigger model of the student's classes; its loss is the authors' KL, weight 1/19."""
    from paddleseg.cvlibs import SegBuilder

    from paddleseg_lpsnet.core.distill import read_distill_section
    cfg = load_config(path)
    spec = read_distill_section(cfg.dic, path)
    student_name, teacher_name = DISTILL_PAIRS[os.path.basename(path)]
    model_cfg = cfg.dic["model"]
    assert student_name in (model_cfg["type"], model_cfg.get("backbone", {}).get("type"))
    teacher_cfg = load_config(os.path.join(ROOT, spec.teacher_config))
    teacher_model = teacher_cfg.dic["model"]
    assert teacher_name in (teacher_model["type"], teacher_model.get("backbone", {}).get("type"))
    assert teacher_model["num_classes"] == model_cfg["num_classes"]
    assert spec.teacher_checkpoint.startswith("output/") and spec.teacher_checkpoint.endswith(".pdparams")
    assert spec.coef == (1 / 19,)
    (loss,) = [SegBuilder(cfg).build_component(t) for t in spec.loss_types]
    assert (type(loss).__name__, loss.temperature, loss.loss_weight) == ("KLDistillationLoss", 1.0, 1.0)
