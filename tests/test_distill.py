"""Distillation in lpsnet train: the logged loss, a frozen teacher, learning from it, resume, config errors.

Tiny teacher/student pairs of both families (LPS-Net wide -> narrow, FasterSeg
larger -> smaller arch) on tests/tiny_dataset.py's generated bands.
"""
import copy
import glob
import os

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

import tiny_dataset as td
from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.compat import revert_paddleseg_fixes
from paddleseg_lpsnet.core import distill as distill_mod
from paddleseg_lpsnet.core import train as train_mod
from paddleseg_lpsnet.core.distill import DistillTerm, FrozenTeacher
from paddleseg_lpsnet.errors import CheckpointError, ConfigError
from paddleseg_lpsnet.models.losses import KLDistillationLoss
from paddleseg_lpsnet.utils.checkpoint import read_state_dict, strict_load
from paddleseg_lpsnet.utils.config import build_model, load_config
from specs import FASTERSEG_TINY
from test_train import _crash_at

FAST = dict(device="cpu", progress=False, log_iters=1)


def _lpsnet(channels, scale_ratios):
    return {"type": "LPSNetSeg", "num_classes": td.NUM_CLASSES,
            "backbone": {"type": "LPSNetBackbone", "depths": [1, 1, 1, 1, 1], "channels": channels,
                         "scale_ratios": scale_ratios}}


def _fasterseg(arch):
    as_lists = {k: [list(c) if isinstance(c, tuple) else c for c in v] for k, v in arch.items()}
    return {"type": "FasterSegNet", "num_classes": td.NUM_CLASSES, "arch": as_lists}


FASTERSEG_SMALLER = dict(
    stem=(4, 8, 8), shared=(("conv", 8),),
    branch32=(("conv", 8, 2), ("conv_downup", 12, 2), ("conv", 16)),
    branch16=(("conv", 8, 2), ("conv", 12)),
    head_channels=(8, 12, 16))

# name -> (teacher model, student model, student loss coef)
PAIRS = {
    "lpsnet_wide_to_narrow": (_lpsnet([4, 8, 16, 32, 32], [1.0, 0.5]), _lpsnet([4, 8, 8, 16, 16], [1.0]), [1]),
    "fasterseg_teacher_to_student": (_fasterseg(FASTERSEG_TINY), _fasterseg(FASTERSEG_SMALLER), [1, 0.2, 0.2]),
}


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("tiny"))


def _teacher_files(folder, data_root, model, seed=0):
    """A teacher config and a checkpoint of it with random weights and BN statistics."""
    os.makedirs(folder, exist_ok=True)
    config = td.write_config(os.path.join(folder, "teacher.yml"), td.generic_config(data_root, model=model))
    paddle.seed(seed)
    teacher = build_model(load_config(config))
    rng = np.random.RandomState(seed)
    for layer in teacher.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer._mean.set_value(rng.uniform(-0.5, 0.5, c).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 2.0, c).astype("float32"))
    checkpoint = os.path.join(folder, "teacher.pdparams")
    paddle.save(teacher.state_dict(), checkpoint)
    return config, checkpoint


def _distill(config, checkpoint, coef=(0.5,), temperature=2.0, **extra):
    section = {"teacher": {"config": config, "checkpoint": checkpoint},
               "loss": {"types": [{"type": "KLDistillationLoss", "temperature": temperature}],
                        "coef": list(coef)}}
    section.update(extra)
    return section


@pytest.fixture(scope="module")
def trained_teacher(data_root, tmp_path_factory):
    """The tiny LPS-Net trained on the bands (mIoU ~0.7): (config, checkpoint directory)."""
    folder = tmp_path_factory.mktemp("teacher")
    config = td.write_config(folder / "teacher.yml", td.generic_config(data_root))
    train_mod.train(config, save_dir=str(folder / "out"), iters=40, save_interval=40, seed=0,
                    learning_rate=0.1, **FAST)
    revert_paddleseg_fixes()
    return config, str(folder / "out" / "iter_40")


@pytest.fixture
def lpsnet_pair(data_root, tmp_path):
    """(student config dict with a distill section, teacher config, teacher checkpoint)."""
    teacher, student, coef = PAIRS["lpsnet_wide_to_narrow"]
    config, checkpoint = _teacher_files(str(tmp_path), data_root, teacher)
    cfg = td.generic_config(data_root, model=student, distill=_distill(config, checkpoint))
    return cfg, config, checkpoint


def _spy_teacher(monkeypatch):
    built = []
    original = distill_mod.build_teacher

    def spy(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]
    monkeypatch.setattr(distill_mod, "build_teacher", spy)
    return built


def _vdl_scalars(save_dir, tag):
    from visualdl import LogReader
    (path,) = glob.glob(os.path.join(save_dir, "vdlrecords.*.log"))
    return {r.id: r.value for r in LogReader(file_path=path).get_data("scalar", tag)}


# -- the numbers of one step, computed apart from the trainer ---------------------------
def _train_batch(root):
    """Every training sample as PaddleSeg reads it (RGB, Normalize 0.5/0.5, CHW) and its labels."""
    images, labels = [], []
    with open(os.path.join(root, "train.txt")) as f:
        for line in f:
            image_rel, label_rel = line.split()
            rgb = cv2.imread(os.path.join(root, image_rel))[..., ::-1].astype("float64")
            images.append(((rgb / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
            labels.append(np.asarray(Image.open(os.path.join(root, label_rel))))
    return np.stack(images).astype("float32"), np.stack(labels)


def _log_softmax(x, axis=1):
    x = x.astype("float64")
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _cross_entropy(logits, labels):
    valid = labels != td.IGNORE
    picked = np.take_along_axis(_log_softmax(logits), np.where(valid, labels, 0)[:, None].astype("int64"), axis=1)
    return -(picked[:, 0] * valid).sum() / valid.sum()


def _kl(student, teacher, temperature):
    log_s, log_t = _log_softmax(student / temperature), _log_softmax(teacher / temperature)
    return temperature ** 2 * (np.exp(log_t) * (log_t - log_s)).sum(axis=1).mean()


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_logged_loss_is_ce_plus_weighted_kl_to_the_teacher(pair, data_root, tmp_path):
    """One step on the whole train set (batch 8 of 8, no augmentation): the logged loss_i,
    distill and total equal sum coef_i CE(out_i) + sum w_j KL(teacher || out_j) computed
    here with numpy from the student's start weights and the teacher's checkpoint."""
    teacher_model, student_model, ce_coef = PAIRS[pair]
    teacher_cfg, checkpoint = _teacher_files(str(tmp_path), data_root, teacher_model)
    paddle.seed(1)
    start = os.path.join(str(tmp_path), "student_start.pdparams")
    paddle.save(build_model(load_config(td.write_config(tmp_path / "s.yml", td.generic_config(
        data_root, model=student_model)))).state_dict(), start)
    distill_coef = [0.3, 0.1] if len(ce_coef) > 1 else [0.5]  # FasterSeg: main and aux16 distilled
    cfg = td.generic_config(data_root, model=dict(student_model, pretrained=start), batch_size=8,
                            loss={"types": [{"type": "CrossEntropyLoss"}], "coef": ce_coef},
                            distill=_distill(teacher_cfg, checkpoint, coef=distill_coef, temperature=2.0))
    cfg["train_dataset"]["transforms"] = [{"type": "Normalize"}]
    config = td.write_config(tmp_path / "student.yml", cfg)
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=1, save_interval=1, use_vdl=True, seed=0, **FAST)

    images, labels = _train_batch(data_root)
    x = paddle.to_tensor(images)
    student = build_model(load_config(config), pretrained=True)
    student.train()
    outs = [o.numpy() for o in student(x)]
    teacher = build_model(load_config(teacher_cfg))
    strict_load(teacher, read_state_dict(checkpoint), checkpoint)
    teacher.eval()
    with paddle.no_grad():
        target = teacher(x)[0].numpy()
    ce = [c * _cross_entropy(out, labels) for c, out in zip(ce_coef, outs)]
    kl = sum(w * _kl(out, target, 2.0) for w, out in zip(distill_coef, outs))
    for i, value in enumerate(ce):
        assert _vdl_scalars(save_dir, f"Train/loss_{i}")[1] == pytest.approx(value, rel=1e-4)
    assert _vdl_scalars(save_dir, "Train/distill")[1] == pytest.approx(kl, rel=1e-4)
    assert _vdl_scalars(save_dir, "Train/loss")[1] == pytest.approx(sum(ce) + kl, rel=1e-4)
    assert kl > 1e-3 * sum(ce)  # the term is not negligible: the test can tell it is there


def test_teacher_stays_frozen_and_the_checkpoints_hold_the_student_alone(lpsnet_pair, tmp_path, monkeypatch):
    """Several iterations with evaluations between them: the teacher's tensors, BN
    running statistics included, stay bitwise equal to its checkpoint; it stays in eval
    mode and gets no gradient; the student's checkpoints have only the student's keys."""
    cfg, _, checkpoint = lpsnet_pair
    config = td.write_config(tmp_path / "student.yml", cfg)
    built = _spy_teacher(monkeypatch)
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=6, save_interval=2, do_eval=True, seed=0,
                    learning_rate=0.1, **FAST)
    (teacher,) = built
    saved = read_state_dict(checkpoint)
    now = {k: v.numpy() for k, v in teacher.model.state_dict().items()}
    assert set(now) == set(saved)
    assert any("_mean" in k for k in saved) and any("_variance" in k for k in saved)
    for key in saved:
        np.testing.assert_array_equal(now[key], saved[key], err_msg=key)
    assert not teacher.training and not any(layer.training for layer in teacher.sublayers())
    assert all(p.stop_gradient and p.grad is None for p in teacher.parameters())
    student_keys = set(read_state_dict(os.path.join(save_dir, "iter_6")))
    student = build_model(load_config(config))
    assert student_keys == set(student.state_dict())
    assert not any(k.startswith("teacher") or k.startswith("model.") for k in student_keys)


def test_frozen_teacher_ignores_train_calls(randomize_bn, data_root, tmp_path):
    """train() on the wrapper or on the wrapped model: still eval-mode outputs, BN still."""
    config = td.write_config(tmp_path / "t.yml", td.generic_config(data_root, model=PAIRS["lpsnet_wide_to_narrow"][0]))
    model = randomize_bn(build_model(load_config(config)))
    model.eval()
    x = paddle.randn([2, 3, 32, 48])
    with paddle.no_grad():
        expected = model(x)[0].numpy()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    teacher = FrozenTeacher(model)
    teacher.train()
    model.train()  # what a careless caller could do
    out = teacher(x)
    np.testing.assert_array_equal(out.numpy(), expected)
    assert out.stop_gradient
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key], err_msg=key)
    assert not teacher.training and not model.training


def test_student_learns_from_the_teacher_alone(trained_teacher, data_root, tmp_path):
    """With the config's CE weighted 0, only the teacher teaches: a student starting from
    scratch reaches mIoU > 0.45 on the bands (a constant guess scores below 0.25; the
    teacher 0.70)."""
    config, checkpoint = trained_teacher
    cfg = td.generic_config(data_root, model=PAIRS["lpsnet_wide_to_narrow"][1],
                            loss={"types": [{"type": "CrossEntropyLoss"}], "coef": [0]},
                            distill=_distill(config, checkpoint, coef=[1.0], temperature=2.0))
    student = td.write_config(tmp_path / "student.yml", cfg)
    result = train_mod.train(student, save_dir=str(tmp_path / "out"), iters=40, save_interval=40,
                             do_eval=True, seed=0, learning_rate=0.1, **FAST)
    assert result.best_miou > 0.45, result.last_eval


def test_resume_with_a_teacher_continues_exactly(lpsnet_pair, tmp_path, monkeypatch):
    cfg, _, _ = lpsnet_pair
    config = td.write_config(tmp_path / "student.yml", cfg)
    args = dict(iters=6, save_interval=3, seed=3, **FAST)
    straight = str(tmp_path / "straight")
    train_mod.train(config, save_dir=straight, **args)
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "train_step", _crash_at(4))
        with pytest.raises(KeyboardInterrupt):
            train_mod.train(config, save_dir=resumed, **args)
    result = train_mod.train(config, save_dir=resumed, resume_model="auto", **args)
    assert result.iteration == 6
    a = read_state_dict(os.path.join(straight, "iter_6"))
    b = read_state_dict(os.path.join(resumed, "iter_6"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_distillation_changes_training(lpsnet_pair, data_root, tmp_path):
    """The same run without the section ends elsewhere: the term reaches the gradients."""
    cfg, _, _ = lpsnet_pair
    plain = {k: v for k, v in cfg.items() if k != "distill"}
    ends = []
    for name, c in (("distill", cfg), ("plain", plain)):
        config = td.write_config(tmp_path / f"{name}.yml", c)
        train_mod.train(config, save_dir=str(tmp_path / name), iters=2, save_interval=2, seed=0, **FAST)
        ends.append(read_state_dict(str(tmp_path / name / "iter_2")))
    assert any(not np.allclose(ends[0][k], ends[1][k]) for k in ends[0])


# -- the term on its own -------------------------------------------------------------
class _HalfSizeTeacher(paddle.nn.Layer):
    """Logits at half the input size, as some models return them."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, num_classes, 3, stride=2, padding=1)

    def forward(self, x):
        return [self.conv(x)]


def test_teacher_logits_of_another_size_are_resized_to_the_students():
    paddle.seed(0)
    model = _HalfSizeTeacher(4)
    term = DistillTerm(FrozenTeacher(model), [KLDistillationLoss(temperature=1.5)], [0.7])
    images = paddle.randn([2, 3, 16, 24])
    student = paddle.randn([2, 4, 16, 24])
    got = float(term([student], {"img": images}))
    with paddle.no_grad():
        small = model(images)[0]  # [2, 4, 8, 12]
    big = paddle.nn.functional.interpolate(small, size=[16, 24], mode="bilinear", align_corners=False)
    assert got == pytest.approx(0.7 * _kl(student.numpy(), big.numpy(), 1.5), rel=1e-5)


def test_term_errors_on_class_count_and_too_many_coef():
    term = DistillTerm(FrozenTeacher(_HalfSizeTeacher(5)), [KLDistillationLoss()], [1.0])
    with pytest.raises(ConfigError, match="teacher gives 5 class scores per pixel, the student 4"):
        term([paddle.randn([1, 4, 8, 8])], {"img": paddle.randn([1, 3, 8, 8])})
    term = DistillTerm(FrozenTeacher(_HalfSizeTeacher(4)), [KLDistillationLoss()] * 2, [1.0, 1.0])
    with pytest.raises(ConfigError, match="2 coef but the student returns 1 outputs"):
        term([paddle.randn([1, 4, 8, 8])], {"img": paddle.randn([1, 3, 8, 8])})


# -- config errors ---------------------------------------------------------------------
def _edit(section, path, value):
    section = copy.deepcopy(section)
    *parents, last = path
    node = section
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return section


_DELETE = object()
BAD_SECTIONS = {
    "unknown top key": ((("teachr",), {"config": "x"}), ConfigError,
                        r"Unknown key `distill.teachr` in .*student.yml: `distill` takes teacher, loss"),
    "unknown teacher key": ((("teacher", "checkpiont"), "x"), ConfigError,
                            r"Unknown key `distill.teacher.checkpiont`.* Did you mean `distill.teacher.checkpoint`"),
    "unknown loss key": ((("loss", "loss_weight"), 0.1), ConfigError,
                         r"Unknown key `distill.loss.loss_weight`.*takes types, coef"),
    "no checkpoint": ((("teacher", "checkpoint"), _DELETE), ConfigError,
                      r"`distill.teacher` in .*student.yml has no `checkpoint`"),
    "types and coef": ((("loss", "types"), [{"type": "KLDistillationLoss"}] * 2), ConfigError,
                       r"`distill.loss` .* has 2 types and 1 coef"),
    "negative coef": ((("loss", "coef"), [-1.0]), ConfigError, r"`distill.loss.coef` .* weights >= 0"),
    "unknown loss type": ((("loss", "types"), [{"type": "KLDistilationLoss"}]), ConfigError,
                          r"Unknown component type 'KLDistilationLoss' in distill.loss.types\[0\] of .*student.yml\. "
                          r"Did you mean KLDistillationLoss"),
    "bad loss argument": ((("loss", "types"), [{"type": "KLDistillationLoss", "temprature": 2}]), ConfigError,
                          r"Cannot build `distill.loss.types\[0\]` \(KLDistillationLoss\).*temprature"),
    "missing teacher config": ((("teacher", "config"), "nowhere/teacher.yml"), ConfigError,
                               r"distill.teacher.config \(nowhere/teacher.yml\) of .*student.yml: "
                               r"Config file nowhere/teacher.yml does not exist"),
    "missing checkpoint": ((("teacher", "checkpoint"), "nowhere/model.pdparams"), CheckpointError,
                           r"distill.teacher.checkpoint of .*student.yml: Checkpoint nowhere/model.pdparams "
                           r"does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_SECTIONS))
def test_bad_distill_section_is_an_error_naming_the_key(case, lpsnet_pair, tmp_path):
    cfg, _, _ = lpsnet_pair
    (path, value), error, message = BAD_SECTIONS[case]
    cfg = dict(cfg, distill=_edit(cfg["distill"], path, value))
    config = td.write_config(tmp_path / "student.yml", cfg)
    with pytest.raises(error, match=message):
        train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, **FAST)
    assert not os.path.exists(tmp_path / "out" / "iter_1")


def test_foreign_and_other_architecture_checkpoints_are_refused(lpsnet_pair, data_root, tmp_path):
    cfg, _, checkpoint = lpsnet_pair
    optimizer_state = tmp_path / "model.pdopt"
    paddle.save({"conv2d_0.w_0_velocity_0": paddle.zeros([2]),
                 "LR_Scheduler": {"last_epoch": 1, "last_lr": 0.05}}, str(optimizer_state))
    text = tmp_path / "notes.pdparams"
    text.write_text("not a checkpoint")
    _, other_checkpoint = _teacher_files(str(tmp_path / "other"), data_root, _fasterseg(FASTERSEG_TINY))
    cases = [(str(optimizer_state), r"distill.teacher.checkpoint of .*: .*optimizer state"),
             (str(text), r"distill.teacher.checkpoint of .*: Cannot read checkpoint .*notes.pdparams"),
             (other_checkpoint, r"distill.teacher.checkpoint of .*: Checkpoint .* does not fit LPSNetSeg "
                                r"\(\d+ tensors\): \d+ missing .*\d+ unexpected")]
    for path, message in cases:
        config = td.write_config(tmp_path / "student.yml",
                                 dict(cfg, distill=_edit(cfg["distill"], ("teacher", "checkpoint"), path)))
        with pytest.raises(CheckpointError, match=message):
            train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, **FAST)


def test_teacher_of_other_classes_is_a_config_error(lpsnet_pair, data_root, tmp_path):
    cfg, _, checkpoint = lpsnet_pair
    five = td.generic_config(data_root, model=dict(td.tiny_lpsnet(), num_classes=5))
    for section in ("train_dataset", "val_dataset"):
        five[section]["num_classes"] = 5
    teacher = td.write_config(tmp_path / "teacher5.yml", five)
    cfg = dict(cfg, distill=_edit(cfg["distill"], ("teacher", "config"), teacher))
    config = td.write_config(tmp_path / "student.yml", cfg)
    with pytest.raises(ConfigError, match=r"The teacher of .*student.yml \(.*teacher5.yml\) has 5 classes "
                                          r"but the student has 4"):
        train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, **FAST)


def test_paddleseg_distill_loss_key_is_refused(data_root, tmp_path):
    cfg = td.generic_config(data_root, distill_loss={"types": [{"type": "KLLoss"}], "coef": [1]})
    config = td.write_config(tmp_path / "c.yml", cfg)
    with pytest.raises(ConfigError, match=r"has `distill_loss`, PaddleSeg slim's key.*`distill.loss`"):
        train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, **FAST)


def test_cli_prints_a_distill_error_on_one_line(lpsnet_pair, tmp_path, capsys):
    cfg, _, _ = lpsnet_pair
    config = td.write_config(tmp_path / "student.yml",
                             dict(cfg, distill=_edit(cfg["distill"], ("teacher", "checkpoint"), "gone.pdparams")))
    rc = main(["train", "--config", config, "--save_dir", str(tmp_path / "o"), "--iters", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert err == (f"lpsnet train: error: distill.teacher.checkpoint of {config}: "
                   "Checkpoint gone.pdparams does not exist.")


def test_checkpoint_given_with_opts(lpsnet_pair, tmp_path):
    """--opts distill.teacher.checkpoint=PATH points a shipped config at a trained teacher."""
    cfg, _, checkpoint = lpsnet_pair
    config = td.write_config(tmp_path / "student.yml",
                             dict(cfg, distill=_edit(cfg["distill"], ("teacher", "checkpoint"), "gone.pdparams")))
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, save_interval=1,
                             opts=[f"distill.teacher.checkpoint={checkpoint}"], **FAST)
    assert result.iteration == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fasterseg/fasterseg_student_distill.yml", "lpsnet/lpsnet_s_distill_from_l.yml"])
def test_shipped_distill_configs_train_on_the_cityscapes_layout(name, tmp_path, monkeypatch):
    """The shipped pairs at full size (FasterSeg teacher -> student, LPS-Net-L -> S), one
    iteration on a tiny Cityscapes-layout set, teacher weights from a fresh teacher."""
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(root_dir)  # the configs name their teacher config from the repo root
    config = os.path.join("configs", name)
    spec = distill_mod.read_distill_section(load_config(config).dic, config)
    paddle.seed(0)
    checkpoint = str(tmp_path / "teacher.pdparams")
    paddle.save(build_model(load_config(spec.teacher_config)).state_dict(), checkpoint)
    data = td.write_cityscapes(tmp_path / "cityscapes", num_train=2, num_val=1)
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, batch_size=1, save_interval=1,
                             use_vdl=True, seed=0, opts=[f"train_dataset.dataset_root={data}",
                                                         f"val_dataset.dataset_root={data}",
                                                         f"distill.teacher.checkpoint={checkpoint}"], **FAST)
    assert result.iteration == 1
    assert _vdl_scalars(str(tmp_path / "out"), "Train/distill")[1] > 0
