"""lpsnet train: PaddleSeg's layout and logs, exact resume, safe checkpoints, any model, the loss hook."""
import glob
import json
import os

import numpy as np
import paddle
import pytest

import tiny_dataset as td
from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.compat import applied_fixes, revert_paddleseg_fixes
from paddleseg_lpsnet.core import train as train_mod
from paddleseg_lpsnet.core.checkpoints import CheckpointManager
from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.utils.checkpoint import read_state_dict

FAST = dict(device="cpu", progress=False, log_iters=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def config(data_root, tmp_path):
    return td.write_config(tmp_path / "tiny.yml", td.generic_config(data_root))


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


def _vdl_tags(save_dir):
    from visualdl import LogReader
    (path,) = glob.glob(os.path.join(save_dir, "vdlrecords.*.log"))
    return LogReader(file_path=path), LogReader(file_path=path).get_tags()


def _decode(record):
    import cv2
    return cv2.imdecode(np.frombuffer(record.image.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)


def test_cli_train_writes_paddleseg_layout_logs_and_visualdl(config, tmp_path, capsys):
    save_dir = str(tmp_path / "out")
    rc = main(["train", "--config", config, "--save_dir", save_dir, "--iters", "4", "--save_interval", "2",
               "--log_iters", "2", "--do_eval", "--use_vdl", "--keep_checkpoint_max", "1",
               "--seed", "0", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[TRAIN] epoch: 1, iter: 2/4, loss: " in out and "| ETA 00:00:0" in out
    assert "[EVAL] #Images: 3 mIoU: " in out
    # keep_checkpoint_max 1: iter_2 gone once iter_4 is complete; best_model stays
    assert sorted(os.listdir(save_dir)) == ["best_model", "iter_4", os.path.basename(
        glob.glob(os.path.join(save_dir, "vdlrecords.*.log"))[0])]
    assert sorted(os.listdir(os.path.join(save_dir, "iter_4"))) == [
        "model.pdopt", "model.pdparams", "train_state.json", "train_state.pkl"]
    with open(os.path.join(save_dir, "iter_4", "train_state.json")) as f:
        state = json.load(f)
    assert state["iteration"] == 4 and state["best_iter"] in (2, 4) and 0 <= state["best_miou"] <= 1
    best = read_state_dict(os.path.join(save_dir, "best_model", "model.pdparams"))
    assert set(best) == set(read_state_dict(os.path.join(save_dir, "iter_4")))
    reader, tags = _vdl_tags(save_dir)
    for tag in ("Train/loss", "Train/lr", "Train/batch_cost", "Train/reader_cost", "Evaluate/mIoU", "Evaluate/Acc"):
        assert tag in tags["scalar"], tag
    assert [r.id for r in reader.get_data("scalar", "Train/loss")] == [2, 4]
    assert [r.id for r in reader.get_data("scalar", "Evaluate/mIoU")] == [2, 4]
    mious = [r.value for r in reader.get_data("scalar", "Evaluate/mIoU")]
    assert state["best_miou"] == pytest.approx(max(mious), abs=1e-6)
    for k in range(3):
        for kind in ("image", "label", "prediction"):
            records = reader.get_data("image", f"Evaluate/sample_{k}_{kind}")
            assert [r.id for r in records] == [2, 4]
            assert _decode(records[-1]).shape == (64, 128, 3)


def test_progress_bar_shows_iterations_and_eta(config, tmp_path, capsys):
    train_mod.train(config, save_dir=str(tmp_path / "out"), iters=3, save_interval=3, device="cpu",
                    progress=True, log_iters=10)
    err = capsys.readouterr().err
    assert "train: 100%" in err and "3/3 [" in err and "<00:00" in err  # elapsed<remaining


def test_vdl_label_image_is_the_palette_colouring_of_the_val_label(config, data_root, tmp_path):
    from PIL import Image

    from paddleseg_lpsnet.utils.visualize import colorize, get_palette
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=1, save_interval=1, do_eval=True, use_vdl=True, **FAST)
    reader, _ = _vdl_tags(save_dir)
    got = _decode(reader.get_data("image", "Evaluate/sample_1_label")[0])[..., ::-1]  # BGR -> RGB
    label = np.asarray(Image.open(os.path.join(data_root, "labels", "val_1.png")))
    np.testing.assert_array_equal(got, colorize(label, get_palette(td.NUM_CLASSES)))


def _crash_at(iteration):
    original = train_mod.Trainer.train_step

    def step(self, batch):
        if self.state.iteration == iteration:
            raise KeyboardInterrupt("simulated crash")
        return original(self, batch)
    return step


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_exactly(config, tmp_path, monkeypatch, num_workers):
    """10 iterations in one go == 5, a crash at 7, resume auto from iter_5 to 10 (8 samples: epochs cross)."""
    args = dict(iters=10, save_interval=5, seed=3, num_workers=num_workers, **FAST)
    straight = str(tmp_path / "straight")
    train_mod.train(config, save_dir=straight, **args)
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "train_step", _crash_at(7))
        with pytest.raises(KeyboardInterrupt):
            train_mod.train(config, save_dir=resumed, **args)
    assert os.listdir(resumed) == ["iter_5"]
    result = train_mod.train(config, save_dir=resumed, resume_model="auto", **args)
    assert result.iteration == 10
    a = read_state_dict(os.path.join(straight, "iter_10"))
    b = read_state_dict(os.path.join(resumed, "iter_10"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    opt_a = paddle.load(os.path.join(straight, "iter_10", "model.pdopt"))
    opt_b = paddle.load(os.path.join(resumed, "iter_10", "model.pdopt"))
    assert opt_a["LR_Scheduler"] == opt_b["LR_Scheduler"]


def test_resume_restores_momentum(config, tmp_path):
    """Without the optimizer state the resumed weights differ: the test above can fail."""
    args = dict(iters=4, save_interval=2, seed=3, **FAST)
    straight = str(tmp_path / "a")
    train_mod.train(config, save_dir=straight, **args)
    manager = CheckpointManager(straight)
    opt_path = os.path.join(straight, "iter_2", "model.pdopt")
    paddle.save({"LR_Scheduler": paddle.load(opt_path)["LR_Scheduler"]}, opt_path)  # drop the momenta
    assert manager.latest().endswith("iter_4")
    result = train_mod.train(config, save_dir=str(tmp_path / "b"), resume_model=os.path.join(straight, "iter_2"),
                             **args)
    assert result.iteration == 4
    a = read_state_dict(os.path.join(straight, "iter_4"))
    b = read_state_dict(os.path.join(str(tmp_path / "b"), "iter_4"))
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_failed_save_leaves_earlier_checkpoints_and_no_partial_directory(config, tmp_path, monkeypatch):
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=2, save_interval=2, seed=0, **FAST)
    before = read_state_dict(os.path.join(save_dir, "iter_2"))
    real_save = paddle.save

    def failing_save(obj, path, *a, **k):
        if "pdopt" in path:
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *a, **k)
    monkeypatch.setattr(paddle, "save", failing_save)
    with pytest.raises(CheckpointError, match=r"Cannot write checkpoint .*iter_4: .*No space left.*"
                                              r"the newest complete checkpoint is .*iter_2"):
        train_mod.train(config, save_dir=save_dir, iters=4, save_interval=2, seed=0,
                        resume_model="auto", **FAST)
    assert sorted(os.listdir(save_dir)) == ["iter_2"]  # no iter_4, no hidden partial directory
    after = read_state_dict(os.path.join(save_dir, "iter_2"))
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_ema_checkpoints(config, tmp_path):
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=2, save_interval=2, do_eval=True, use_ema=True, seed=0, **FAST)
    assert os.path.isfile(os.path.join(save_dir, "iter_2", "ema_model.pdparams"))
    assert os.path.isfile(os.path.join(save_dir, "ema_best_model", "ema_model.pdparams"))
    ema = read_state_dict(os.path.join(save_dir, "iter_2", "ema_model.pdparams"))
    model = read_state_dict(os.path.join(save_dir, "iter_2", "model.pdparams"))
    assert set(ema) == set(model) and any(not np.allclose(ema[k], model[k]) for k in model)


def test_training_learns_the_tiny_task(config, tmp_path):
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=40, save_interval=40, do_eval=True,
                             seed=0, learning_rate=0.1, **FAST)
    # bands of 4 colours; a constant guess scores below 0.25 mIoU
    assert result.best_miou > 0.6, result.last_eval


UPSTREAM_MODELS = {
    "PPLiteSeg": ({"type": "PPLiteSeg", "num_classes": td.NUM_CLASSES, "backbone": {"type": "STDC1"},
                   "arm_out_chs": [16, 24, 32], "seg_head_inter_chs": [16, 16, 16], "cm_out_ch": 32},
                  {"types": [{"type": "OhemCrossEntropyLoss", "min_kept": 100}], "coef": [1, 1, 1]}),
    "LPSNet": ({"type": "LPSNet", "num_classes": td.NUM_CLASSES, "depths": [1, 1, 1, 1, 1],
                "channels": [4, 8, 16, 32, 32], "scale_ratios": [1.0, 0.5]},
               {"types": [{"type": "CrossEntropyLoss", "weight": [1.0, 1.0, 2.0, 1.0]}], "coef": [1]}),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_MODELS))
def test_upstream_paddleseg_models_train_with_upstream_losses(name, data_root, tmp_path):
    model, loss = UPSTREAM_MODELS[name]
    config = td.write_config(tmp_path / "c.yml", td.generic_config(data_root, model=model, loss=loss))
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=2, save_interval=2, do_eval=True,
                             seed=0, **FAST)
    assert result.iteration == 2 and 0 <= result.best_miou <= 1
    assert os.path.isfile(os.path.join(tmp_path, "out", "best_model", "model.pdparams"))
    assert applied_fixes() == []  # the run undid the fixes it applied


class _Constant:
    name = "constant"

    def __call__(self, logits_list, batch):
        return paddle.mean(logits_list[0]) * 0.0 + 0.25


def test_extra_loss_terms_are_added_and_logged(config, tmp_path, capsys):
    save_dir = str(tmp_path / "out")
    train_mod.train(config, save_dir=save_dir, iters=2, save_interval=2, use_vdl=True, seed=0,
                    extra_loss_terms=[_Constant()], **FAST)
    reader, tags = _vdl_tags(save_dir)
    assert {"Train/loss_0", "Train/constant"} <= set(tags["scalar"])
    total = [r.value for r in reader.get_data("scalar", "Train/loss")]
    part = [r.value for r in reader.get_data("scalar", "Train/loss_0")]
    extra = [r.value for r in reader.get_data("scalar", "Train/constant")]
    np.testing.assert_allclose(extra, [0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(total, np.add(part, extra), rtol=1e-5)


def test_loss_count_not_matching_the_model_outputs_is_a_config_error(data_root, tmp_path, capsys):
    model, _ = UPSTREAM_MODELS["PPLiteSeg"]  # 3 outputs in training
    loss = {"types": [{"type": "CrossEntropyLoss"}, {"type": "CrossEntropyLoss"}], "coef": [1, 1]}
    config = td.write_config(tmp_path / "c.yml", td.generic_config(data_root, model=model, loss=loss))
    rc = main(["train", "--config", config, "--save_dir", str(tmp_path / "o"), "--iters", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert err.startswith("lpsnet train: error: The model returns 3 outputs") and config in err


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["s", "m", "l"])
def test_shipped_configs_train_and_evaluate_on_the_cityscapes_layout(variant, tmp_path):
    """configs/lpsnet/*.yml as shipped (OHEM, 1536x768 crops) on a tiny Cityscapes-layout set."""
    root = td.write_cityscapes(tmp_path / "cityscapes", num_train=2, num_val=1)
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "configs", "lpsnet", f"lpsnet_{variant}.yml")
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, batch_size=1, do_eval=True,
                             opts=[f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}"],
                             seed=0, **FAST)
    assert result.iteration == 1 and len(result.last_eval.class_iou) == 19
