"""Bad input to lpsnet train / val: one line naming the culprit, exit 2, no hang, nothing lost."""
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest
from PIL import Image

import tiny_dataset as td
from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.compat import revert_paddleseg_fixes
from paddleseg_lpsnet.core.train import train
from paddleseg_lpsnet.utils.checkpoint import read_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("clean"), num_train=4, num_val=2)


@pytest.fixture
def root(clean_root, tmp_path):
    """A fresh copy of the tiny dataset that a test may damage."""
    return shutil.copytree(clean_root, str(tmp_path / "data"))


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


def _config(tmp_path, root, **changes):
    cfg = td.generic_config(root)
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return td.write_config(tmp_path / "bad.yml", cfg)


def _train_error(capsys, config, tmp_path, *extra):
    rc = main(["train", "--config", config, "--save_dir", str(tmp_path / "out"), "--iters", "2",
               "--save_interval", "1", "--device", "cpu", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert err[-1].startswith("lpsnet train: error: ")
    return err[-1]


def test_missing_dataset_root(tmp_path, root, capsys):
    config = _config(tmp_path, root, **{"train_dataset.dataset_root": str(tmp_path / "nowhere")})
    err = _train_error(capsys, config, tmp_path)
    # `lpsnet train` runs the cheap part of `lpsnet data check` first
    assert f"train_dataset: [missing-root] {tmp_path / 'nowhere'}: dataset_root does not exist" in err
    assert f"lpsnet data check --config {config}" in err


def test_missing_file_list(tmp_path, root, capsys):
    config = _config(tmp_path, root, **{"train_dataset.train_path": str(tmp_path / "missing.txt")})
    err = _train_error(capsys, config, tmp_path)
    assert (f"train_dataset: [missing-list] {tmp_path / 'missing.txt'}: file list "
            "(train_dataset.train_path) does not exist") in err


def test_listed_file_missing(tmp_path, root, capsys):
    os.remove(os.path.join(root, "labels", "train_2.png"))
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert (f"[missing-file] {os.path.join(root, 'labels', 'train_2.png')}: label does not exist "
            f"(listed at {os.path.join(root, 'train.txt')}:3)") in err


def test_empty_cityscapes_root(tmp_path, capsys):
    root = tmp_path / "cityscapes"
    for part in ("leftImg8bit/train", "gtFine/train"):
        (root / part).mkdir(parents=True)
    cfg = td.generic_config(str(root))
    cfg["train_dataset"] = {"type": "Cityscapes", "dataset_root": str(root), "mode": "train",
                            "transforms": [{"type": "Normalize"}]}
    cfg.pop("val_dataset")
    cfg["model"]["num_classes"] = 19
    err = _train_error(capsys, td.write_config(tmp_path / "c.yml", cfg), tmp_path)
    assert f"[empty] {root}/{{leftImg8bit,gtFine}}/train: train_dataset (Cityscapes) has no samples" in err


def test_unreadable_image(tmp_path, root, capsys):
    bad = os.path.join(root, "images", "train_1.png")
    with open(bad, "wb") as f:
        f.write(b"this is not a png")
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert f"Cannot read image {bad}" in err


def test_truncated_image(tmp_path, root, capsys):
    bad = os.path.join(root, "images", "train_3.png")
    with open(bad, "rb") as f:
        head = f.read(200)  # header intact, pixel data cut
    with open(bad, "wb") as f:
        f.write(head)
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert f"the image {bad} cannot be decoded" in err


def test_label_values_out_of_range(tmp_path, root, capsys):
    path = os.path.join(root, "labels", "train_0.png")
    label = np.asarray(Image.open(path)).copy()
    label[5:9, 10:20] = 33  # a Cityscapes labelId, not a train id
    td.write_png(path, label)
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert f"label {path})" in err and "label values 33 are outside 0..3 and are not ignore_index 255" in err


def test_image_label_size_mismatch(tmp_path, root, capsys):
    path = os.path.join(root, "labels", "train_1.png")
    td.write_png(path, np.zeros((32, 128), np.uint8))
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert f"label {path})" in err and "image is 128x64 but label is 128x32" in err


@pytest.mark.parametrize("key,value,suggestion", [
    ("model.type", "LPSNetSeq", "LPSNetSeg"),
    ("model.backbone.type", "LPSNetBackbone_s", "LPSNetBackbone_S"),
    ("train_dataset.transforms.0.type", "RandomHorizontalFlp", "RandomHorizontalFlip"),
    ("loss.types.0.type", "CrossEntropyLos", "CrossEntropyLoss"),
    ("lr_scheduler.type", "PolynomialDecy", "PolynomialDecay"),
])
def test_unknown_component_names_suggest_close_ones(tmp_path, root, capsys, key, value, suggestion):
    config = _config(tmp_path, root, **{key: value})
    err = _train_error(capsys, config, tmp_path)
    assert repr(value) in err and config in err and f"Did you mean {suggestion}" in err


def test_bad_val_sample_is_named(tmp_path, root, capsys):
    bad = os.path.join(root, "images", "val_1.png")
    with open(bad, "wb") as f:
        f.write(b"junk")
    err = _train_error(capsys, _config(tmp_path, root), tmp_path, "--do_eval")
    assert f"Cannot read image {bad}" in err


def test_save_dir_that_is_a_file_fails_before_training(tmp_path, root, capsys):
    (tmp_path / "out").write_text("my notes")
    err = _train_error(capsys, _config(tmp_path, root), tmp_path)
    assert f"--save_dir {tmp_path / 'out'} is a file" in err
    assert (tmp_path / "out").read_text() == "my notes"


def test_a_failing_run_keeps_what_was_written(tmp_path, root):
    config = _config(tmp_path, root)
    save_dir = str(tmp_path / "out")
    train(config, save_dir=save_dir, iters=2, save_interval=2, log_iters=1, use_vdl=True, device="cpu",
          progress=False)
    written = {}
    for name in os.listdir(save_dir):
        if name.startswith("vdlrecords"):
            with open(os.path.join(save_dir, name), "rb") as f:
                written[name] = f.read()
    before = read_state_dict(os.path.join(save_dir, "iter_2"))
    with open(os.path.join(root, "images", "train_0.png"), "wb") as f:
        f.write(b"junk")
    for resume in (None, "auto"):
        with pytest.raises(Exception, match="train_0.png"):
            train(config, save_dir=save_dir, iters=4, save_interval=1, use_vdl=True, device="cpu",
                  progress=False, resume_model=resume)
    after = read_state_dict(os.path.join(save_dir, "iter_2"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert written
    for name, content in written.items():  # a later run in the same second may append, never truncate
        with open(os.path.join(save_dir, name), "rb") as f:
            assert f.read().startswith(content)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bad_sample_with_reader_workers_errors_without_hanging(tmp_path, root, num_workers):
    bad = os.path.join(root, "images", "train_2.png")
    with open(bad, "wb") as f:
        f.write(b"junk")
    cmd = [sys.executable, "-m", "paddleseg_lpsnet", "train", "--config", _config(tmp_path, root),
           "--save_dir", str(tmp_path / "out"), "--iters", "4", "--device", "cpu",
           "--num_workers", str(num_workers)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lpsnet train: error: train_dataset sample ") and f"Cannot read image {bad}" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("key,value,message", [
    ("iter", 100, "Unknown key `iter` in {config}: not a section lpsnet or PaddleSeg reads. Did you mean iters?"),
    ("loss.coefs", [1], "Unknown key `loss.coefs` in {config}: a loss section has `types` and `coef`. "
                        "Did you mean coef?"),
    ("test_config", {"is_slid": True}, "Unknown key `test_config.is_slid` in {config}: not an evaluation option. "
                                       "Did you mean is_slide?"),
    ("model.backbone.chanels", [4, 8, 16, 32, 32], "Unknown key `model.backbone.chanels` in {config}: "
                                                   "LPSNetBackbone takes no such argument. Did you mean channels?"),
    ("train_dataset.transforms.0.prop", 0.5, "Unknown key `train_dataset.transforms[0].prop` in {config}: "
                                             "RandomHorizontalFlip takes no such argument. Did you mean prob?"),
    ("optimizer.weight_decy", 0.1, "Unknown key `optimizer.weight_decy` in {config}: SGD (built as Momentum) takes no "
                                   "such argument. "
                                   "Did you mean weight_decay?"),
    ("lr_scheduler.powr", 0.9, "Unknown key `lr_scheduler.powr` in {config}: paddle.optimizer.lr.PolynomialDecay "
                               "takes no such argument. Did you mean power?"),
])
def test_keys_paddleseg_would_ignore_are_named_with_close_names(tmp_path, root, capsys, key, value, message):
    config = _config(tmp_path, root, **{key: value})
    err = _train_error(capsys, config, tmp_path)
    assert err.startswith(f"lpsnet train: error: {message.format(config=config)}".rstrip("?")), err
    assert " Accepted: " in err


def test_unknown_key_in_a_sgd_with_momentum_names_momentum_arguments(tmp_path, root, capsys):
    config = _config(tmp_path, root, **{"optimizer.use_nestrov": True})
    err = _train_error(capsys, config, tmp_path)
    assert "`optimizer.use_nestrov`" in err and "SGD (built as Momentum) takes no such argument. Did you mean use_nesterov?" in err


@pytest.mark.parametrize("changes,message", [
    ({"model.num_classes": 19}, "`model.num_classes` is 19 but `train_dataset.num_classes` is 4 in {config}"),
    ({"val_dataset.num_classes": 5}, "`model.num_classes` is 4 but `val_dataset.num_classes` is 5 in {config}"),
    ({"train_dataset": {"type": "Cityscapes", "dataset_root": "data/cityscapes", "transforms": []}},
     "`model.num_classes` is 4 but `train_dataset (Cityscapes.NUM_CLASSES)` is 19 in {config}"),
    ({"model.num_classes": "four"}, "`model.num_classes` in {config} must be a positive integer, not 'four'"),
])
def test_num_classes_disagreeing_with_the_dataset_names_both_keys(tmp_path, root, capsys, changes, message):
    config = _config(tmp_path, root, **changes)
    assert message.format(config=config) in _train_error(capsys, config, tmp_path)


@pytest.mark.parametrize("loss,message", [
    ({"types": [{"type": "CrossEntropyLoss"}] * 2, "coef": [1, 0.4, 0.4]},
     "`loss.types` has 2 entries but `loss.coef` has 3 in {config}: give one type (used for every coef) or one "
     "type per coef."),
    ({"types": [{"type": "CrossEntropyLoss", "weight": [1.0, 2.0, 1.0]}], "coef": [1]},
     "`loss.types[0].weight` has 3 values but `model.num_classes` is 4 in {config}: give one weight per class."),
    ({"types": [{"type": "CrossEntropyLoss"}], "coef": 1}, "`loss.coef` in {config} must be a non-empty list, not 1."),
])
def test_loss_section_mistakes_name_the_key(tmp_path, root, capsys, loss, message):
    config = _config(tmp_path, root, loss=loss)
    assert message.format(config=config) in _train_error(capsys, config, tmp_path)


def test_shipped_configs_pass_the_key_checks():
    from paddleseg_lpsnet.core.config_check import check_config_dict, read_config_dict
    import glob
    configs = [p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.yml"))
               if not os.path.basename(p).startswith("_") and not p.endswith("metafile.yml")]
    assert len(configs) >= 6
    for path in configs:
        check_config_dict(read_config_dict(path), path)


# ------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def trained(clean_root, tmp_path_factory):
    """A checkpoint directory of the tiny model (1 iteration) and its config."""
    base = tmp_path_factory.mktemp("trained")
    config = td.write_config(base / "tiny.yml", td.generic_config(clean_root))
    train(config, save_dir=str(base / "out"), iters=1, save_interval=1, device="cpu", progress=False)
    return config, str(base / "out" / "iter_1")


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _torch_file(path):
    import torch
    torch.save({"conv.weight": torch.zeros(2, 3)}, path)


def _foreign_file(kind, tmp_path, checkpoint):
    path = str(tmp_path / f"{kind}.pdparams")
    if kind == "optimizer state":
        shutil.copy(os.path.join(checkpoint, "model.pdopt"), path)
    elif kind == "torch":
        _torch_file(path)
    elif kind == "truncated":
        shutil.copy(os.path.join(checkpoint, "model.pdparams"), path)
        _truncate(path)
    elif kind == "random":
        with open(path, "wb") as f:
            f.write(np.random.RandomState(0).bytes(1000))
    elif kind == "empty":
        open(path, "wb").close()
    return path


FOREIGN = {
    "optimizer state": "holds an optimizer state (keys such as '",
    "torch": "it is a PyTorch checkpoint (torch.save); convert it with `lpsnet convert",
    "truncated": "it is truncated or corrupt (",
    "random": "it is not a paddle.save file (it starts with ",
    "empty": "it is empty (0 bytes)",
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_val_model_path_that_is_not_model_weights_says_what_it_is(trained, tmp_path, capsys, kind):
    config, checkpoint = trained
    path = _foreign_file(kind, tmp_path, checkpoint)
    rc = main(["val", "--config", config, "--model_path", path, "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and err.startswith(f"lpsnet val: error: ") and path in err
    assert FOREIGN[kind] in err and "Expected model weights saved with paddle.save (.pdparams)" in err


def _other_architecture_weights(clean_root, tmp_path):
    from paddleseg_lpsnet.core.builder import load_checked_config
    from paddleseg_lpsnet.utils.config import build_model
    other = td.tiny_lpsnet()
    other["backbone"]["channels"] = [8, 8, 16, 32, 32]
    other_cfg = td.write_config(tmp_path / "other.yml", td.generic_config(clean_root, model=other))
    path = str(tmp_path / "other.pdparams")
    paddle.save(build_model(load_checked_config(other_cfg)).state_dict(), path)
    return path


def _resume_dir(kind, trained, tmp_path, clean_root):
    """A copy of the trained checkpoint directory, damaged as `kind` says; (path to resume, culprit)."""
    _, checkpoint = trained
    target = str(tmp_path / "iter_1")
    shutil.copytree(checkpoint, target)
    model, opt = os.path.join(target, "model.pdparams"), os.path.join(target, "model.pdopt")
    if kind == "a file":
        return model, model
    if kind == "truncated weights":
        _truncate(model)
        return target, model
    if kind == "truncated optimizer":
        _truncate(opt)
        return target, opt
    if kind == "weights as optimizer":
        shutil.copy(model, opt)
        return target, opt
    if kind == "torch weights":
        _torch_file(model)
        return target, model
    if kind == "another architecture":
        shutil.copy(_other_architecture_weights(clean_root, tmp_path), model)
        return target, model
    raise AssertionError(kind)


RESUME = {
    "a file": "is a file; expected a checkpoint directory (holding model.pdparams and model.pdopt)",
    "truncated weights": "it is truncated or corrupt (",
    "truncated optimizer": "Cannot read optimizer state {culprit}: it is truncated or corrupt (",
    "weights as optimizer": "{culprit} holds model weights (keys such as '",
    "torch weights": "it is a PyTorch checkpoint",
    "another architecture": "Checkpoint {culprit} does not fit LPSNetSeg (",
}


@pytest.mark.parametrize("kind", sorted(RESUME))
def test_resume_model_that_is_not_a_checkpoint_of_this_model_says_what_it_is(trained, clean_root, tmp_path,
                                                                            capsys, kind):
    config, _ = trained
    path, culprit = _resume_dir(kind, trained, tmp_path, clean_root)
    err = _train_error(capsys, config, tmp_path, "--resume_model", path)
    assert culprit in err and RESUME[kind].format(culprit=culprit) in err
    assert not os.path.exists(tmp_path / "out" / "iter_2")  # nothing trained from a partial load


def test_pretrained_of_our_model_that_is_an_optimizer_state(trained, clean_root, tmp_path, capsys):
    _, checkpoint = trained
    pdopt = os.path.join(checkpoint, "model.pdopt")
    config = _config(tmp_path, clean_root, **{"model.pretrained": pdopt})
    err = _train_error(capsys, config, tmp_path)
    assert f"Cannot build `model` of {config} (LPSNetSeg): Checkpoint {pdopt} holds an optimizer state" in err


def test_pretrained_of_our_backbone_from_another_architecture(clean_root, tmp_path, capsys):
    other = _other_architecture_weights(clean_root, tmp_path)
    config = _config(tmp_path, clean_root, **{"model.backbone.pretrained": other})
    err = _train_error(capsys, config, tmp_path)
    assert f"Cannot build `model` of {config} (LPSNetBackbone): Checkpoint {other} does not fit LPSNetBackbone (" \
        in err and "mis-shaped" in err


UPSTREAM_LPSNET = {"type": "LPSNet", "num_classes": td.NUM_CLASSES, "depths": [1, 1, 1, 1, 1],
                   "channels": [4, 8, 16, 32, 32], "scale_ratios": [1.0, 0.5]}


def test_pretrained_of_an_upstream_model_is_loaded_strictly(clean_root, tmp_path, capsys):
    """PaddleSeg's load_entire_model would skip the mis-shaped tensors with a warning."""
    from paddleseg.models import LPSNet
    other = dict(UPSTREAM_LPSNET, channels=[8, 8, 16, 32, 32])
    path = str(tmp_path / "upstream_other.pdparams")
    paddle.save(LPSNet(**{k: v for k, v in other.items() if k != "type"}).state_dict(), path)
    config = td.write_config(tmp_path / "up.yml", td.generic_config(
        clean_root, model=dict(UPSTREAM_LPSNET, pretrained=path)))
    err = _train_error(capsys, config, tmp_path)
    assert err.startswith(f"lpsnet train: error: `model.pretrained` in {config}: Checkpoint {path} does not fit "
                          "LPSNet (") and "mis-shaped" in err


PPLITESEG = {"type": "PPLiteSeg", "num_classes": td.NUM_CLASSES, "backbone": {"type": "STDC1"},
             "arm_out_chs": [16, 24, 32], "seg_head_inter_chs": [16, 16, 16], "cm_out_ch": 32}


@pytest.fixture(scope="module")
def stdc1_weights(tmp_path_factory):
    from paddleseg.models.backbones import STDC1
    return STDC1().state_dict()


def test_pretrained_of_an_upstream_backbone_must_fill_every_tensor(clean_root, tmp_path, capsys, stdc1_weights):
    from paddleseg.cvlibs import SegBuilder

    from paddleseg_lpsnet.core.builder import build_model_checked, load_checked_config
    state = dict(stdc1_weights)
    state["fc.weight"] = paddle.zeros([4, 4])  # an ImageNet classifier: dropped, listed in the log
    complete = str(tmp_path / "stdc1.pdparams")
    paddle.save(state, complete)
    config = td.write_config(tmp_path / "ok.yml", td.generic_config(clean_root, model=dict(
        PPLITESEG, backbone={"type": "STDC1", "pretrained": complete})))
    model = build_model_checked(SegBuilder(load_checked_config(config)), config)
    key = next(iter(stdc1_weights))
    np.testing.assert_array_equal(model.backbone.state_dict()[key].numpy(), stdc1_weights[key].numpy())
    missing = dict(state)
    missing.pop(key)
    partial = str(tmp_path / "stdc1_partial.pdparams")
    paddle.save(missing, partial)
    config = td.write_config(tmp_path / "bad.yml", td.generic_config(clean_root, model=dict(
        PPLITESEG, backbone={"type": "STDC1", "pretrained": partial})))
    err = _train_error(capsys, config, tmp_path)
    assert err.startswith(f"lpsnet train: error: `model.backbone.pretrained` in {config}: Checkpoint {partial} "
                          f"does not fit STDCNet (") and f"1 missing ({key})" in err
