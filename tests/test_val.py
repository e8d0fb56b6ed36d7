"""lpsnet val / core.val.evaluate: right numbers, PaddleSeg's options, strict loading."""
import importlib
import os

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image

import tiny_dataset as td
from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.compat import paddleseg_fixes_applied, revert_paddleseg_fixes
from paddleseg_lpsnet.core.builder import build_val_dataset, load_checked_config
from paddleseg_lpsnet.core.val import eval_options, evaluate, validate
from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.utils.config import build_model


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("tiny"), num_train=2, num_val=4)


@pytest.fixture(scope="module")
def config(data_root, tmp_path_factory):
    return td.write_config(tmp_path_factory.mktemp("cfg") / "tiny.yml", td.generic_config(data_root))


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


class PixelLinear(paddle.nn.Layer):
    """A 1x1 convolution with fixed random weights: its prediction is easy to compute in numpy."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.RandomState(seed)
        self.weight = rng.normal(0, 1, (td.NUM_CLASSES, 3)).astype("float32")
        self.bias = rng.normal(0, 0.5, td.NUM_CLASSES).astype("float32")
        self.conv = paddle.nn.Conv2D(3, td.NUM_CLASSES, 1)
        self.conv.weight.set_value(self.weight[:, :, None, None])
        self.conv.bias.set_value(self.bias)

    def forward(self, x):
        return [self.conv(x)]

    def predict_numpy(self, rgb_uint8):
        x = (rgb_uint8.astype(np.float32) / 255.0 - 0.5) / 0.5  # PaddleSeg's default Normalize
        return np.argmax(x @ self.weight.T + self.bias, axis=-1)


def _reference(model, data_root, n_val):
    inter, pred_area, label_area = (np.zeros(td.NUM_CLASSES) for _ in range(3))
    for i in range(n_val):
        rgb = cv2.imread(os.path.join(data_root, "images", f"val_{i}.png"))[..., ::-1]
        label = np.asarray(Image.open(os.path.join(data_root, "labels", f"val_{i}.png"))).astype(int)
        pred = model.predict_numpy(rgb)
        counted = label != td.IGNORE
        for c in range(td.NUM_CLASSES):
            inter[c] += ((pred == c) & (label == c) & counted).sum()
            pred_area[c] += ((pred == c) & counted).sum()
            label_area[c] += (label == c).sum()
    iou = inter / (pred_area + label_area - inter)
    total = label_area.sum()
    po, pe = inter.sum() / total, (pred_area * label_area).sum() / total ** 2
    return dict(miou=iou.mean(), acc=inter.sum() / pred_area.sum(), kappa=(po - pe) / (1 - pe), class_iou=iou)


def test_evaluate_matches_a_numpy_reference(config, data_root):
    model = PixelLinear()
    dataset = build_val_dataset(load_checked_config(config), config)
    result = evaluate(model, dataset, progress=False)
    want = _reference(model, data_root, 4)
    assert result.num_images == 4
    np.testing.assert_allclose(result.class_iou, want["class_iou"], rtol=1e-9)
    for key in ("miou", "acc", "kappa"):
        assert getattr(result, key) == pytest.approx(want[key], rel=1e-9), key


@pytest.mark.parametrize("options", [
    dict(aug_eval=True, flip_horizontal=True, scales=[0.75, 1.0]),
    dict(aug_eval=True, flip_vertical=True, flip_horizontal=True),
    dict(is_slide=True, crop_size=[48, 40], stride=[32, 24]),
])
def test_evaluate_options_mean_what_paddleseg_means(config, options):
    """Same numbers as PaddleSeg's own evaluate (run with the fixes) for aug_eval / slide options."""
    cfg = load_checked_config(config)
    paddle.seed(1)
    model = build_model(cfg)
    dataset = build_val_dataset(cfg, config)
    ours = evaluate(model, dataset, progress=False, **options)
    upstream_val = importlib.import_module("paddleseg.core.val")
    with paddleseg_fixes_applied():
        miou, acc, class_iou, _, kappa = upstream_val.evaluate(model, dataset.dataset, print_detail=False,
                                                               **options)
    assert ours.miou == pytest.approx(miou, abs=1e-12) and ours.acc == pytest.approx(acc, abs=1e-12)
    np.testing.assert_allclose(ours.class_iou, class_iou)


def test_evaluate_keeps_requested_samples_and_restores_train_mode(config):
    model = PixelLinear()
    model.train()
    dataset = build_val_dataset(load_checked_config(config), config)
    result = evaluate(model, dataset, keep=[1, 3], progress=False)
    assert model.training
    assert sorted(result.samples) == [1, 3]
    sample = result.samples[3]
    assert sample["image"].shape == (3, 64, 128) and sample["label"].shape == (64, 128)
    label = np.asarray(Image.open(dataset.file_list[3][1]))
    np.testing.assert_array_equal(sample["label"], label)


def test_config_test_config_applies_unless_flags_override():
    test_config = {"aug_eval": True, "scales": [0.5, 1.0], "auc_roc": True}
    assert eval_options(test_config) == {"aug_eval": True, "scales": [0.5, 1.0]}
    assert eval_options(test_config, scales=1.0, flip_horizontal=None) == {"aug_eval": True, "scales": 1.0}


@pytest.fixture(scope="module")
def weights(config, tmp_path_factory):
    paddle.seed(2)
    model = build_model(load_checked_config(config))
    path = str(tmp_path_factory.mktemp("w") / "model.pdparams")
    paddle.save(model.state_dict(), path)
    return path


def test_cli_val_prints_metrics_and_returns_them(config, weights, capsys):
    assert main(["val", "--config", config, "--model_path", weights, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    summary = next(line for line in out.splitlines() if line.startswith("[EVAL] #Images: 4 mIoU: "))
    assert "Acc: " in summary and "Kappa: " in summary
    per_class = [line.split() for line in out.splitlines() if line.startswith("  ")][-td.NUM_CLASSES:]
    assert [row[0] for row in per_class] == [str(i) for i in range(td.NUM_CLASSES)]
    result = validate(config, weights, device="cpu", progress=False, print_fn=lambda line: None)
    assert f"mIoU: {result.miou:.4f}" in summary
    np.testing.assert_allclose([float(row[1]) for row in per_class], result.class_iou, atol=5e-5)


def test_cli_val_flip_runs(config, weights, capsys):
    assert main(["val", "--config", config, "--model_path", weights, "--device", "cpu",
                 "--aug_eval", "--flip_horizontal", "--scales", "0.75", "1.0"]) == 0
    assert "[EVAL] #Images: 4 mIoU: " in capsys.readouterr().out


def _val_error(capsys, config, model_path):
    rc = main(["val", "--config", config, "--model_path", model_path, "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    return err[-1]


def test_val_rejects_a_checkpoint_of_another_architecture(config, data_root, tmp_path, capsys):
    other = td.tiny_lpsnet()
    other["backbone"]["channels"] = [8, 8, 16, 32, 32]
    other_cfg = td.write_config(tmp_path / "other.yml", td.generic_config(data_root, model=other))
    path = str(tmp_path / "other.pdparams")
    paddle.save(build_model(load_checked_config(other_cfg)).state_dict(), path)
    err = _val_error(capsys, config, path)
    assert err.startswith("lpsnet val: error: Checkpoint " + path) and "mis-shaped" in err


def test_val_rejects_a_file_that_is_not_a_checkpoint(config, tmp_path, capsys):
    path = tmp_path / "notes.pdparams"
    path.write_text("not a checkpoint")
    assert f"Cannot read checkpoint {path}" in _val_error(capsys, config, str(path))
    assert "does not exist" in _val_error(capsys, config, str(tmp_path / "missing.pdparams"))


def test_rescale_is_pmsdsen_protocol_and_excludes_aug_eval(config, data_root):
    """--rescale 0.5: predict at half size, upsample logits (align_corners=True), score at full size."""
    from paddleseg_lpsnet.utils.rescaled_inference import predict_rescaled

    cfg = load_checked_config(config)
    dataset = build_val_dataset(cfg, config)
    model = build_model(cfg)
    model.eval()
    with paddleseg_fixes_applied():
        result = evaluate(model, dataset, rescale=0.5, keep=range(len(dataset)))
        full = evaluate(model, dataset)
    for index, sample in result.samples.items():
        image = paddle.to_tensor(sample["image"][None])
        with paddle.no_grad():
            expected = predict_rescaled(model, image, 0.5).numpy().argmax(1)[0]
        np.testing.assert_array_equal(sample["prediction"], expected)
        assert sample["prediction"].shape == sample["label"].shape
    assert result.miou != full.miou  # a different protocol, a different score
    with pytest.raises(ConfigError, match="cannot be combined"):
        evaluate(model, dataset, rescale=0.5, aug_eval=True)
    assert eval_options({"rescale": 0.5})["rescale"] == 0.5
