"""The ImageNet pretraining stage: shipped PaddleClas configs, `lpsnet pretrain`, resume, hand-off.

The end-to-end tests train a tiny LPS-Net (one block per stage, channels 8..64, one
path) on a generated 4-class set of 48 px images (`lpsnet data synth-imagenet`).
"""
import glob
import importlib.util
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddleseg_lpsnet.datasets.synth_imagenet import write_synth_imagenet
from paddleseg_lpsnet.errors import CheckpointError, ConfigError, DataError
from paddleseg_lpsnet.models.backbones import LPSNET_ARCHS, LPSNetBackbone
from paddleseg_lpsnet.pretrain.config import check_trainer_config, load_ppcls_config
from paddleseg_lpsnet.pretrain.optim import build_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "pretrain_imagenet")
VARIANT_EPOCHS = {"S": 120, "M": 100, "L": 120}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TINY = dict(depths=[1, 1, 1, 1, 1], channels=[8, 16, 32, 64, 64], scale_ratios=[1.0])
NUM_CLASSES, SIZE = 4, 48
EPOCHS, DECAY, VALUES = 12, [9, 11], [0.05, 0.005, 0.0005]
RESUME_FROM = 9


def _config_path(variant):
    return os.path.join(CONFIG_DIR, f"LPSNet_{variant}.yaml")


def _list(values):
    return "[" + ",".join(str(v) for v in values) + "]"


def tiny_overrides(data, out, epochs=EPOCHS):
    """-o options that point a shipped config at the generated set and a tiny LPS-Net."""
    opts = {
        "Global.device": "cpu", "Global.epochs": epochs, "Global.output_dir": out, "Global.seed": 0,
        "Global.print_batch_step": 1,
        "Arch.name": "LPSNet", "Arch.class_num": NUM_CLASSES,
        "Arch.depths": _list(TINY["depths"]), "Arch.channels": _list(TINY["channels"]),
        "Arch.scale_ratios": _list(TINY["scale_ratios"]),
        "Optimizer.lr.decay_epochs": _list(DECAY), "Optimizer.lr.values": _list(VALUES),
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size": SIZE,
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.scale": "[0.5,1.0]",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short": SIZE,
        "DataLoader.Eval.dataset.transform_ops.2.CropImage.size": SIZE,
    }
    for mode, split in (("Train", "train"), ("Eval", "val")):
        opts[f"DataLoader.{mode}.dataset.image_root"] = data
        opts[f"DataLoader.{mode}.dataset.cls_label_path"] = os.path.join(data, f"{split}_list.txt")
        opts[f"DataLoader.{mode}.sampler.batch_size"] = 16
        opts[f"DataLoader.{mode}.loader.num_workers"] = 0
    return [f"{k}={v}" for k, v in opts.items()]


def run_pretrain(overrides, *extra, launcher=(), env=None):
    """`python [launcher] -m paddleseg_lpsnet pretrain -c LPSNet_S.yaml extra -o ...` in the repo root."""
    entry = list(launcher) if launcher else ["-m", "paddleseg_lpsnet"]
    args = [sys.executable, *entry, "pretrain", "-c", _config_path("S"), *extra]
    for opt in overrides:
        args += ["-o", opt]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env)


def _trainer(synth, tmp_path, *extra):
    from paddleseg_lpsnet.pretrain.trainer import PretrainTrainer
    return PretrainTrainer(load_ppcls_config(_config_path("S"),
                                             tiny_overrides(synth, str(tmp_path / "o"), 1) + list(extra)))


def vdl_scalars(out, tag):
    """{step: value} of a VisualDL scalar tag written under `out`."""
    from visualdl import LogReader
    files = glob.glob(os.path.join(out, "vdlrecords.*.log"))
    assert len(files) == 1, files
    return {r.id: r.value for r in LogReader(file_path=files[0]).get_data("scalar", tag)}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth") / "imagenet")
    write_synth_imagenet(out, num_classes=NUM_CLASSES, per_class=60, val_per_class=25, size=SIZE, seed=0)
    return out


@pytest.fixture(scope="module")
def trained(synth, tmp_path_factory):
    """One run of `lpsnet pretrain` with the project's trainer: (output dir, process result)."""
    out = str(tmp_path_factory.mktemp("pretrain") / "run")
    res = run_pretrain(tiny_overrides(synth, out), "--engine", "lpsnet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out, res


# -- the shipped configs --------------------------------------------------------------
@pytest.mark.parametrize("variant", ["S", "M", "L"])
def test_shipped_config_is_the_published_recipe(variant):
    cfg = load_ppcls_config(_config_path(variant))
    assert set(cfg) == {"Global", "Arch", "Loss", "Optimizer", "DataLoader", "Infer", "Metric"}
    assert cfg["Global"]["epochs"] == VARIANT_EPOCHS[variant]
    assert cfg["Arch"] == {"name": f"LPSNet_{variant}", "class_num": 1000}
    opt = cfg["Optimizer"]
    assert (opt["name"], opt["momentum"], opt["use_nesterov"]) == ("Momentum", 0.9, True)
    assert opt["lr"] == {"name": "Piecewise", "decay_epochs": [30, 60, 90],
                         "values": [0.1, 0.01, 0.001, 0.0001]}
    assert opt["regularizer"] == {"name": "L2", "coeff": 0.0001}
    train_ops = cfg["DataLoader"]["Train"]["dataset"]["transform_ops"]
    assert [next(iter(op)) for op in train_ops] == ["DecodeImage", "RandCropImage", "RandFlipImage",
                                                    "NormalizeImage"]
    assert train_ops[1]["RandCropImage"]["size"] == 224
    assert train_ops[2]["RandFlipImage"]["flip_code"] == 1  # horizontal
    eval_ops = cfg["DataLoader"]["Eval"]["dataset"]["transform_ops"]
    assert eval_ops[1]["ResizeImage"]["resize_short"] == 256 and eval_ops[2]["CropImage"]["size"] == 224
    for ops in (train_ops, eval_ops, cfg["Infer"]["transforms"]):
        norm = next(op["NormalizeImage"] for op in ops if "NormalizeImage" in op)
        assert (norm["mean"], norm["std"]) == (IMAGENET_MEAN, IMAGENET_STD)
    for mode in ("Train", "Eval"):
        assert cfg["DataLoader"][mode]["dataset"]["name"] == "ImageNetDataset"
        assert cfg["Metric"][mode] == [{"TopkAcc": {"topk": [1, 5]}}]
    check_trainer_config(cfg)  # our trainer honours every key


@pytest.mark.parametrize("variant", ["S", "M", "L"])
def test_shipped_arch_is_the_backbone_variant_with_an_fc(variant):
    from paddleseg_lpsnet.pretrain.trainer import build_classifier
    model = build_classifier(load_ppcls_config(_config_path(variant)))
    seg = LPSNetBackbone(**LPSNET_ARCHS[variant])
    own = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v for k, v in own.items() if not k.startswith("fc.")} == \
        {k: v.shape for k, v in seg.state_dict().items()}
    assert own["fc.weight"] == [sum(seg.feat_channels), 1000]


# -- the optimizer --------------------------------------------------------------------
def test_optimizer_is_nesterov_momentum_with_piecewise_epochs_and_l2():
    cfg = load_ppcls_config(_config_path("M"))
    steps = 7
    w0 = np.array([1.0, -2.0, 3.0], "float32")
    layer = paddle.nn.Linear(3, 1, bias_attr=False)
    layer.weight.set_value(w0.reshape(3, 1))
    opt, sched = build_optimizer(cfg["Optimizer"], cfg["Global"]["epochs"], steps, layer)
    assert isinstance(opt, paddle.optimizer.Momentum)
    assert opt._use_nesterov is True and opt._momentum == 0.9
    assert isinstance(sched, paddle.optimizer.lr.PiecewiseDecay) and not sched.by_epoch
    assert sched.boundaries == [30 * steps, 60 * steps, 90 * steps]
    assert sched.values == [0.1, 0.01, 0.001, 0.0001]
    assert opt._regularization_method == "l2_decay" and opt._regularization_coeff == 0.0001
    # Two real steps against Nesterov momentum with L2 written out.
    x = paddle.to_tensor([[0.5, 1.0, -1.0]])
    w, v, grad = w0.astype("float64"), np.zeros(3), np.array([0.5, 1.0, -1.0])
    for _ in range(2):
        layer(x).sum().backward()
        opt.step()
        opt.clear_grad()
        g = grad + 0.0001 * w
        v = 0.9 * v + g
        w = w - 0.1 * (g + 0.9 * v)
    np.testing.assert_allclose(layer.weight.numpy().ravel(), w, rtol=1e-6)


def test_warmup_wraps_the_schedule_in_epochs():
    cfg = load_ppcls_config(_config_path("M"), ["Optimizer.lr.warmup_epoch=2",
                                                "Optimizer.lr.warmup_start_lr=0.0"])
    steps = 5
    _, sched = build_optimizer(cfg["Optimizer"], 100, steps, paddle.nn.Linear(2, 2))
    lrs = []
    for _ in range(2 * steps + 30 * steps + 1):
        lrs.append(sched.get_lr())
        sched.step()
    np.testing.assert_allclose(lrs[:2 * steps + 1], np.linspace(0.0, 0.1, 2 * steps + 1), atol=1e-7)
    # PaddleClas (Paddle's LinearWarmup) starts the piecewise schedule after the warm-up.
    assert lrs[2 * steps + 30 * steps - 1] == pytest.approx(0.1)
    assert lrs[2 * steps + 30 * steps] == pytest.approx(0.01)


def test_piecewise_learning_rate_key_follows_paddleclas_rule():
    cfg = load_ppcls_config(_config_path("M"), ["Optimizer.lr.learning_rate=0.2"])
    _, sched = build_optimizer(cfg["Optimizer"], 65, 3, paddle.nn.Linear(2, 2))
    assert sched.boundaries == [30 * 3, 60 * 3]
    np.testing.assert_allclose(sched.values, [0.2, 0.02, 0.002])


# -- the generated set ----------------------------------------------------------------
def test_synth_imagenet_tree_and_lists(tmp_path):
    import cv2
    out = str(tmp_path / "set")
    counts = write_synth_imagenet(out, num_classes=3, per_class=4, val_per_class=2, size=32, seed=1)
    assert counts == {"train": 12, "val": 6}
    for split, n in (("train", 4), ("val", 2)):
        lines = open(os.path.join(out, f"{split}_list.txt")).read().split("\n")[:-1]
        labels = [int(line.split(" ")[1]) for line in lines]
        assert sorted(labels) == sorted([0, 1, 2] * n)
        for line in lines:
            path, label = line.split(" ")
            assert path.startswith(f"{split}/c{int(label):03d}_")
            assert cv2.imread(os.path.join(out, path)).shape == (32, 32, 3)
    assert open(os.path.join(out, "labels.txt")).read().split("\n")[0] == "0 c000_disk_hstripes"
    again = str(tmp_path / "again")
    write_synth_imagenet(again, num_classes=3, per_class=4, val_per_class=2, size=32, seed=1)
    first = "train/c001_square_vstripes/c001_square_vstripes_00002.JPEG"
    np.testing.assert_array_equal(cv2.imread(os.path.join(out, first)), cv2.imread(os.path.join(again, first)))
    with pytest.raises(DataError, match="not an empty directory"):
        write_synth_imagenet(out, num_classes=3)
    with pytest.raises(DataError, match="2 to 30 classes"):
        write_synth_imagenet(str(tmp_path / "x"), num_classes=31)


def test_cli_synth_imagenet(tmp_path, capsys):
    from paddleseg_lpsnet.cli import main
    out = str(tmp_path / "cli")
    assert main(["data", "synth-imagenet", "--out", out, "--classes", "2", "--per_class", "3",
                 "--val_per_class", "1", "--size", "24"]) == 0
    assert "Wrote 6 training and 2 validation images of 2 classes" in capsys.readouterr().out
    assert len(open(os.path.join(out, "val_list.txt")).read().split("\n")) == 3
    assert main(["data", "synth-imagenet", "--out", out]) == 2  # never writes into a used directory
    assert "is not an empty directory" in capsys.readouterr().err


# -- lpsnet pretrain --------------------------------------------------------------------
def test_pretrain_learns_and_writes_checkpoints_and_logs(trained):
    out, res = trained
    best = paddle.load(os.path.join(out, "best_model.pdstates"))
    # 4 classes: chance is 0.25. Measured here (seed 0, CPU): 0.70 at epoch 11, 0.69 at 12.
    assert best["metric"] >= 0.5, best
    assert f"best top-1 {best['metric']:.4f}" in res.stdout
    for prefix in ["best_model", "latest"] + [f"epoch_{e}" for e in range(1, EPOCHS + 1)]:
        for ext in (".pdparams", ".pdopt", ".pdstates"):
            assert os.path.isfile(os.path.join(out, prefix + ext)), prefix + ext
    assert paddle.load(os.path.join(out, "latest.pdstates"))["epoch"] == EPOCHS
    best_params = paddle.load(os.path.join(out, "best_model.pdparams"))
    copy = paddle.load(os.path.join(out, "best_model", "model.pdparams"))
    assert all(np.array_equal(best_params[k].numpy(), copy[k].numpy()) for k in best_params)
    assert not glob.glob(os.path.join(out, ".tmp-*"))  # atomic writes left nothing behind
    eval_acc = vdl_scalars(out, "eval_acc")
    assert sorted(eval_acc) == list(range(1, EPOCHS + 1))
    assert max(eval_acc.values()) == pytest.approx(best["metric"], abs=1e-6)
    assert len(vdl_scalars(out, "train_loss")) == len(vdl_scalars(out, "lr(PiecewiseDecay)")) > EPOCHS


def test_resume_continues_from_the_saved_epoch_with_the_same_lr(trained, synth, tmp_path):
    out, _ = trained
    resumed = str(tmp_path / "resumed")
    res = run_pretrain(tiny_overrides(synth, resumed) + [f"Global.checkpoints={out}/epoch_{RESUME_FROM}"],
                       "--engine", "lpsnet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"at epoch {RESUME_FROM} (lr 0.005" in res.stdout
    assert sorted(vdl_scalars(resumed, "eval_acc")) == list(range(RESUME_FROM + 1, EPOCHS + 1))
    assert not os.path.exists(os.path.join(resumed, "epoch_1.pdparams"))
    full, cont = vdl_scalars(out, "lr(PiecewiseDecay)"), vdl_scalars(resumed, "lr(PiecewiseDecay)")
    steps_per_epoch = max(full) // EPOCHS
    assert min(cont) == RESUME_FROM * steps_per_epoch + 1  # the global step carries on
    assert cont == {s: v for s, v in full.items() if s > RESUME_FROM * steps_per_epoch}
    assert set(np.round(list(cont.values()), 7)) == {0.005, 0.0005}
    # the best metric survives the resume: best_model is only written by a better epoch
    states = paddle.load(os.path.join(out, f"epoch_{RESUME_FROM}.pdstates"))
    assert paddle.load(os.path.join(resumed, "latest.pdstates"))["best_metric"] >= states["best_metric"]


def test_handoff_segmentation_backbone_gets_the_classifier_weights(trained, tmp_path, capsys):
    from paddleseg_lpsnet.convert import convert_state, read_source
    from paddleseg_lpsnet.utils.config import build_model, load_config
    out, _ = trained
    ckpt = os.path.join(out, "best_model.pdparams")
    cfg = tmp_path / "seg.yml"
    cfg.write_text(  # the shipped Cityscapes config, with the tiny backbone and its pretraining
        f"_base_: {os.path.join(ROOT, 'configs', 'lpsnet', 'lpsnet_s.yml')}\n"
        "model:\n  backbone:\n    type: LPSNetBackbone\n"
        f"    depths: {TINY['depths']}\n    channels: {TINY['channels']}\n"
        f"    scale_ratios: {TINY['scale_ratios']}\n    pretrained: {ckpt}\n")
    model = build_model(load_config(str(cfg)), pretrained=True)
    classifier = paddle.load(ckpt)
    backbone = model.backbone.state_dict()
    assert set(backbone) == {k for k in classifier if not k.startswith("fc.")}
    for key, value in backbone.items():
        np.testing.assert_array_equal(value.numpy(), classifier[key].numpy(), err_msg=key)
    n = len(backbone)
    assert (f"Loaded {n} of {n} backbone tensors of LPSNetBackbone from classification checkpoint "
            f"{ckpt}; dropped 2 tensors not in the backbone (fc.weight, fc.bias)") in capsys.readouterr().out
    # `lpsnet convert` maps the same checkpoint into a whole segmentation model.
    _, report = convert_state(read_source(ckpt), model, source=ckpt)
    assert (report.format, report.mapped, report.dropped) == ("lpsnet-imagenet", n, ["fc.bias", "fc.weight"])
    # another architecture does not load silently
    with pytest.raises(CheckpointError, match="mis-shaped|missing"):
        LPSNetBackbone(**LPSNET_ARCHS["S"], pretrained=ckpt)


def test_global_pretrained_model_loads_the_whole_classifier(trained, synth, tmp_path):
    out, _ = trained
    trainer = _trainer(synth, tmp_path, f"Global.pretrained_model={out}/best_model")  # a prefix, as in PaddleClas
    saved = paddle.load(os.path.join(out, "best_model.pdparams"))
    for key, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved[key].numpy(), err_msg=key)
    assert trainer.start_epoch == 0  # weights only: training starts over


def test_resume_maps_optimizer_state_onto_renamed_parameters(tmp_path):
    """Paddle names parameters by build order; a resumed optimizer must still match them."""
    from paddleseg_lpsnet.pretrain.checkpoint import load_checkpoint, save_checkpoint
    cfg = load_ppcls_config(_config_path("S"))

    def build():
        model = LPSNetBackbone(depths=[1, 1, 1], channels=[4, 8, 8], scale_ratios=[1.0], class_num=3)
        return model, build_optimizer(cfg["Optimizer"], 120, 2, model)[0]

    model, opt = build()
    model(paddle.randn([2, 3, 16, 16])).sum().backward()
    opt.step()
    trainable = [p for p in model.parameters() if not p.stop_gradient]  # not BN statistics
    velocity = {p.name: opt._accumulators["velocity"][p.name].numpy() for p in trainable}
    save_checkpoint(model, opt, {"metric": 0.5, "epoch": 3}, str(tmp_path), "latest")
    paddle.nn.Conv2D(3, 3, 3), paddle.nn.BatchNorm2D(3)  # shift Paddle's generated names
    model2, opt2 = build()
    assert [p.name for p in model2.parameters()] != [p.name for p in model.parameters()]
    assert load_checkpoint(str(tmp_path / "latest"), model2, opt2)["epoch"] == 3
    # A step with zero gradients: v' = 0.9 v + 1e-4 w (L2), from the loaded v and w.
    (model2(paddle.randn([2, 3, 16, 16])) * 0).sum().backward()
    weights = {p.name: p.numpy() for p in model2.parameters()}
    opt2.step()
    for p, p2 in zip(trainable, [p for p in model2.parameters() if not p.stop_gradient]):
        np.testing.assert_allclose(opt2._accumulators["velocity"][p2.name].numpy(),
                                   0.9 * velocity[p.name] + 1e-4 * weights[p2.name], rtol=1e-5, atol=1e-9)


# -- errors a user can act on ---------------------------------------------------------
@pytest.mark.parametrize("extra, error, match", [
    (["Arch.name=LPSNet_X"], ConfigError, r"Arch.name 'LPSNet_X'.*Did you mean"),
    (["Global.epoch=3"], ConfigError, r"Global.epoch is not honoured.*Did you mean epochs"),
    (["Arch.class_num=3"], DataError, r"label 3 of .* outside \[0, 3\)"),
    (["DataLoader.Eval.dataset.cls_label_path=/nonexistent/val.txt"], DataError, r"/nonexistent/val.txt does not exist"),
    (["DataLoader.Train.dataset.transform_ops.2={'RandomErasing':{}}"], ConfigError,
     r"RandomErasing is not among the paddleclas wheel's operators"),
    (["Optimizer.lr.name=OneCycle"], ConfigError, r"Optimizer.lr.name 'OneCycle'.*Piecewise"),
    (["Global.checkpoints=/nonexistent/latest"], CheckpointError, r"/nonexistent/latest.pdparams does not exist"),
    (["Optimizer.lr.values=[0.1,0.01]"], ConfigError, r"one more entry than decay_epochs"),
])
def test_bad_config_names_the_problem(synth, tmp_path, extra, error, match):
    with pytest.raises(error, match=match):
        _trainer(synth, tmp_path, *extra)


def test_cli_reports_bad_override_in_one_line(capsys):
    from paddleseg_lpsnet.cli import main
    assert main(["pretrain", "-c", _config_path("S"), "--engine", "lpsnet", "-o", "Global.epochs"]) == 2
    assert capsys.readouterr().err.strip() == (
        "lpsnet pretrain: error: Override 'Global.epochs' must be Key.path=value with a single '=' "
        "(PaddleClas's -o syntax), e.g. Global.epochs=10.")


@pytest.mark.skipif(paddle.is_compiled_with_cuda(), reason="this Paddle has CUDA")
def test_gpu_device_without_cuda_says_what_to_do(synth, tmp_path):
    with pytest.raises(ConfigError, match="pass -o Global.device=cpu"):
        _trainer(synth, tmp_path, "Global.device=gpu")


# -- multi-process and PaddleClas's Engine ----------------------------------------------
def run_launched(tmp_path, overrides, *extra, pythonpath=""):
    """`lpsnet pretrain` in 2 CPU processes under paddle.distributed.launch: (result, worker logs)."""
    # launch runs a script file (as users do with `$(which lpsnet)`); this one imports the checkout.
    script = tmp_path / "lpsnet_entry.py"
    script.write_text("import sys\nfrom paddleseg_lpsnet.cli import main\nsys.exit(main())\n")
    launcher = ["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                str(tmp_path / "log"), str(script)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, pythonpath or os.environ.get("PYTHONPATH", "")]))
    res = run_pretrain(overrides, *extra, launcher=launcher, env=env)
    return res, "".join(open(f).read() for f in glob.glob(str(tmp_path / "log" / "*")))


def test_two_cpu_processes_under_paddle_distributed_launch(synth, tmp_path):
    """Gloo on CPU: each process trains on its shard; rank 0 alone writes; eval covers the set once."""
    from paddleseg_lpsnet.pretrain.trainer import build_classifier
    out = str(tmp_path / "dist")
    res, logs = run_launched(tmp_path, tiny_overrides(synth, out, epochs=2), "--engine", "lpsnet")
    assert res.returncode == 0, res.stdout[-2000:] + logs[-4000:]
    assert sorted(os.listdir(out)) == sorted(
        ["best_model", "train.log"] + [f"{p}.{e}" for p in ("best_model", "latest", "epoch_1", "epoch_2")
                                       for e in ("pdparams", "pdopt", "pdstates")]
        + [os.path.basename(f) for f in glob.glob(os.path.join(out, "vdlrecords.*.log"))])
    assert len(glob.glob(os.path.join(out, "vdlrecords.*.log"))) == 1
    # Steps per epoch: 240 images / 2 ranks / batch 16 = 8 (not 15 as in one process).
    assert max(vdl_scalars(out, "lr(PiecewiseDecay)")) == 2 * 8
    # The reported accuracy is that of the saved weights on the whole val set.
    cfg = load_ppcls_config(_config_path("S"), tiny_overrides(synth, out, epochs=2))
    model = build_classifier(cfg)
    model.set_state_dict(paddle.load(os.path.join(out, "latest.pdparams")))
    model.eval()
    from paddleseg_lpsnet.pretrain.data import build_dataloader
    correct = total = 0
    with paddle.no_grad():
        for img, label in build_dataloader(cfg["DataLoader"], "Eval", NUM_CLASSES):
            correct += int((model(img).argmax(-1) == label).sum())
            total += img.shape[0]
    assert total == 100
    assert paddle.load(os.path.join(out, "latest.pdstates"))["metric"] == pytest.approx(correct / total)


def _ppcls_pythonpath():
    """PYTHONPATH for a PaddleClas source tree: $PADDLECLAS_ROOT, or one already importable."""
    root = os.environ.get("PADDLECLAS_ROOT")
    if root and os.path.isfile(os.path.join(root, "ppcls", "engine", "engine.py")):
        return os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    if importlib.util.find_spec("ppcls") is not None:
        return os.environ.get("PYTHONPATH", "")
    return None


def test_paddleclas_engine_path(synth, tmp_path):
    pythonpath = _ppcls_pythonpath()
    if pythonpath is None:
        pytest.skip("no PaddleClas source tree (the paddleclas wheel has no Engine); set "
                    "PADDLECLAS_ROOT=/path/to/PaddleClas to exercise PaddleClas's Engine path")
    out = str(tmp_path / "engine")
    res = run_pretrain(tiny_overrides(synth, out, epochs=2), env=dict(os.environ, PYTHONPATH=pythonpath))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "training with PaddleClas's Engine" in res.stdout
    state = paddle.load(os.path.join(out, "best_model.pdparams"))
    backbone = LPSNetBackbone(**TINY, pretrained=os.path.join(out, "best_model.pdparams"))
    for key, value in backbone.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key].numpy(), err_msg=key)
    # Our trainer resumes the Engine's checkpoint (same layout).
    res = run_pretrain(tiny_overrides(synth, str(tmp_path / "ours"), epochs=2)
                       + [f"Global.checkpoints={out}/epoch_1"], "--engine", "lpsnet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Resumed from" in res.stdout and "at epoch 1 (lr 0.05" in res.stdout


def test_paddleclas_engine_under_launch(synth, tmp_path):
    pythonpath = _ppcls_pythonpath()
    if pythonpath is None:
        pytest.skip("no PaddleClas source tree; set PADDLECLAS_ROOT=/path/to/PaddleClas")
    out = str(tmp_path / "engine_dist")
    # Without evaluation: PaddleClas's classification_eval reads ParallelEnv().device_id, which
    # Paddle 3.3.1 leaves unset on CPU (it works on GPUs).
    res, logs = run_launched(tmp_path, tiny_overrides(synth, out, epochs=2) + ["Global.eval_during_train=False"],
                             pythonpath=pythonpath)
    assert res.returncode == 0, res.stdout[-2000:] + logs[-4000:]
    assert logs.count("training with PaddleClas's Engine") == 2  # both ranks
    assert len(glob.glob(os.path.join(out, "vdlrecords.*.log"))) == 1  # rank 0 alone writes
    assert sorted(os.listdir(out)) == sorted(
        ["train.log"] + [f"{p}.{e}" for p in ("latest", "epoch_1", "epoch_2") for e in ("pdparams", "pdopt", "pdstates")]
        + [os.path.basename(f) for f in glob.glob(os.path.join(out, "vdlrecords.*.log"))])


def test_failed_checkpoint_write_is_a_checkpoint_error(tmp_path, monkeypatch):
    from paddleseg_lpsnet.pretrain import checkpoint
    model = LPSNetBackbone(depths=[1, 1, 1], channels=[4, 8, 8], scale_ratios=[1.0], class_num=3)
    opt = paddle.optimizer.Momentum(parameters=model.parameters())
    checkpoint.save_checkpoint(model, opt, {"metric": 0.1, "epoch": 1}, str(tmp_path), "latest")
    before = open(tmp_path / "latest.pdparams", "rb").read()

    def disk_full(obj, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_paddle_save", disk_full)
    with pytest.raises(CheckpointError, match=r"latest.pdparams: .*No space left.*unchanged"):
        checkpoint.save_checkpoint(model, opt, {"metric": 0.2, "epoch": 2}, str(tmp_path), "latest")
    assert open(tmp_path / "latest.pdparams", "rb").read() == before
