"""Export and deployed inference: the files written, and agreement with the dygraph model.

Checkpoints are freshly initialised models with randomised BN statistics (so that
folding BN matters); no training is needed to compare two runtimes of one function.
"""
import json
import os
import subprocess
import sys
import warnings

import cv2
import numpy as np
import paddle
import pytest
import yaml
from conftest import randomize_bn_stats

from paddleseg_lpsnet.deploy import DeployConfig, DeployedSegmenter, export_model
from paddleseg_lpsnet.deploy.config import build_transforms, val_transforms_of
from paddleseg_lpsnet.deploy.predictor import (ONEDNN_PIR_WORKAROUND_PASSES, PaddleInferencePredictor,
                                               create_default_predictor, create_predictor, default_backend)
from paddleseg_lpsnet.deploy.segmenter import preprocess
from paddleseg_lpsnet.errors import DataError, LPSNetError
from paddleseg_lpsnet.utils.config import build_model, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG_S = os.path.join(ROOT, "configs", "lpsnet", "lpsnet_s.yml")
BASE = os.path.join(ROOT, "configs", "_base_", "cityscapes.yml")
MIN_AGREEMENT = 0.9999

UPSTREAM_LPSNET = {"type": "LPSNet", "num_classes": 19, "depths": [1, 3, 3, 10, 10],
                   "channels": [8, 24, 48, 96, 96], "scale_ratios": [0.75, 0.25]}
TINY_LPSNET = {"type": "LPSNetSeg", "num_classes": 19,
               "backbone": {"type": "LPSNetBackbone", "depths": [1, 1, 1, 1, 1],
                            "channels": [4, 8, 16, 32, 32], "scale_ratios": [0.5, 0.25]}}


def run_cli(*args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=600)


def write_config(folder, model_cfg, transforms=None):
    """A config file: the project's Cityscapes base with `model_cfg` (and val transforms)."""
    cfg = {"_base_": BASE, "model": model_cfg}
    if transforms is not None:
        cfg["val_dataset"] = {"transforms": transforms}
    path = os.path.join(folder, f"{model_cfg['type']}.yml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def smooth_image(h, w, seed):
    """A BGR float32 image with structure at several scales (not flat, not pure noise)."""
    rng = np.random.RandomState(seed)
    image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), 2.0)


def make_checkpoint(folder, config_path, seed=0):
    """Build a config's model, randomise its BN, save it: (checkpoint path, eval model)."""
    paddle.seed(seed)
    model = randomize_bn_stats(build_model(load_config(config_path)), seed)
    model.eval()
    path = os.path.join(folder, "model.pdparams")
    paddle.save(model.state_dict(), path)
    return path, model


def dygraph_labels(model, image, config_path):
    """argmax of the dygraph model on an image, with the config's val transforms."""
    chw, _ = preprocess(image, build_transforms(val_transforms_of(load_config(config_path))))
    with paddle.no_grad():
        logit = model(paddle.to_tensor(chw[None]))[0]
    return logit.argmax(axis=1).numpy()[0]


def export_like_cli(model, config_path, save_dir, **kwargs):
    """export_model with the config's val transforms recorded, as `lpsnet export` does."""
    return export_model(model, save_dir, transforms=val_transforms_of(load_config(config_path)), **kwargs)


def agreement(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a == b).mean())


IMAGES = {"128x256": smooth_image(128, 256, 1), "97x131": smooth_image(97, 131, 2)}


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """LPS-Net-S from configs/lpsnet/lpsnet_s.yml: (config, checkpoint, model)."""
    folder = str(tmp_path_factory.mktemp("ours"))
    ckpt, model = make_checkpoint(folder, CFG_S)
    return CFG_S, ckpt, model


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """PaddleSeg's own LPSNet (S architecture) built from a config: (config, checkpoint, model)."""
    folder = str(tmp_path_factory.mktemp("upstream"))
    cfg = write_config(folder, UPSTREAM_LPSNET)
    ckpt, model = make_checkpoint(folder, cfg, seed=1)
    return cfg, ckpt, model


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory, ours):
    """`lpsnet export` of our LPS-Net-S, default flags."""
    cfg, ckpt, _ = ours
    out = str(tmp_path_factory.mktemp("export") / "lpsnet_s")
    proc = run_cli("export", "--config", cfg, "--model_path", ckpt, "--save_dir", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_cli_export_writes_the_files_deploy_yaml_names(cli_export):
    assert sorted(os.listdir(cli_export)) == ["deploy.yaml", "model.json", "model.pdiparams"]
    with open(os.path.join(cli_export, "deploy.yaml")) as f:
        deploy = yaml.safe_load(f)["Deploy"]
    assert deploy["model"] == "model.json" and deploy["params"] == "model.pdiparams"
    assert deploy["output_op"] == "argmax" and deploy["output_dtype"] == "int32"
    assert deploy["input_shape"] == [-1, 3, -1, -1]
    assert deploy["num_classes"] == 19
    assert deploy["transforms"] == load_config(CFG_S).dic["val_dataset"]["transforms"]


def test_cli_export_is_in_deploy_form(cli_export):
    """BN is folded: the traced program has convolutions and no batch_norm op."""
    with open(os.path.join(cli_export, "model.json")) as f:
        program = f.read()
    assert "conv2d" in program
    assert "batch_norm" not in program


@pytest.mark.parametrize("backend", [None, "paddle"])
def test_our_export_agrees_with_dygraph(cli_export, ours, backend):
    """On the default backend (onnxruntime on CPU, the Paddle model converted when loaded) and on Paddle Inference."""
    cfg, _, model = ours
    segmenter = DeployedSegmenter(cli_export, backend=backend, cpu_threads=2)
    assert segmenter.backend == (backend or "onnxruntime")
    names = list(IMAGES)
    labels = segmenter.predict([IMAGES[n] for n in names], names=names)
    for name, label in zip(names, labels):
        expected = dygraph_labels(model, IMAGES[name], cfg)
        assert len(np.unique(expected)) > 2, "the reference prediction is nearly constant: a weak test"
        assert agreement(label, expected) >= MIN_AGREEMENT, name


def test_upstream_lpsnet_export_agrees_with_dygraph_on_both_backends(upstream, tmp_path):
    """An upstream PaddleSeg model (no fuse_bn) exports; Paddle Inference and onnxruntime
    (the export converted in memory) both agree with it."""
    cfg, _, model = upstream
    config = export_like_cli(model, cfg, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["deploy.yaml", "model.json", "model.pdiparams"]
    assert config.num_classes == 19
    image = IMAGES["97x131"]
    expected = dygraph_labels(model, image, cfg)
    assert len(np.unique(expected)) > 2
    for backend in ("paddle", "onnxruntime"):
        segmenter = DeployedSegmenter(str(tmp_path), backend=backend, cpu_threads=2)
        assert segmenter.backend == backend
        assert agreement(segmenter.predict([image])[0], expected) >= MIN_AGREEMENT, backend


def test_onnx_export_of_ours_agrees_and_names_model_onnx(ours, tmp_path):
    cfg, _, model = ours
    config = export_like_cli(model, cfg, str(tmp_path), format="onnx")
    loaded = DeployConfig.load(str(tmp_path))
    assert (loaded.model, loaded.params, loaded.format) == ("model.onnx", None, "onnx")
    assert sorted(os.listdir(tmp_path)) == ["deploy.yaml", "model.onnx"]
    assert default_backend(config) == ("onnxruntime", "the export is ONNX")
    assert default_backend(config, "gpu") == ("onnxruntime", "the export is ONNX")
    with pytest.raises(LPSNetError, match="ONNX model"):
        create_predictor(loaded, backend="paddle")
    image = IMAGES["128x256"]
    label = DeployedSegmenter(str(tmp_path), cpu_threads=2).predict([image])[0]
    assert agreement(label, dygraph_labels(model, image, cfg)) >= MIN_AGREEMENT


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny two-path LPS-Net (bilinear resizes inside): (config, model)."""
    folder = str(tmp_path_factory.mktemp("tiny"))
    cfg = write_config(folder, TINY_LPSNET)
    _, model = make_checkpoint(folder, cfg, seed=2)
    return cfg, model


@pytest.mark.parametrize("output_op", ["softmax", "none"])
def test_score_outputs_match_dygraph_logits(tiny, tmp_path, output_op):
    """softmax / none exports return [N, C, H, W] scores equal to the dygraph model's."""
    cfg, model = tiny
    export_model(model, str(tmp_path), output_op=output_op)
    config = DeployConfig.load(str(tmp_path))
    assert config.output_dtype == "float32"
    image = IMAGES["97x131"]
    chw, _ = preprocess(image, config.build_transforms())
    out = create_predictor(config, cpu_threads=2).run(chw[None])
    with paddle.no_grad():
        logit = model(paddle.to_tensor(chw[None]))[0]
    expected = paddle.nn.functional.softmax(logit, axis=1) if output_op == "softmax" else logit
    assert out.shape == (1, 19, 97, 131) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-4, rtol=1e-4)


def test_fixed_input_shape(tiny, tmp_path):
    cfg, model = tiny
    export_model(model, str(tmp_path), input_shape=[1, 3, 64, 96])
    config = DeployConfig.load(str(tmp_path))
    assert config.input_shape == [1, 3, 64, 96]
    segmenter = DeployedSegmenter(str(tmp_path), cpu_threads=2)
    labels = segmenter.predict([smooth_image(64, 96, 3), smooth_image(64, 96, 4)])  # batch 1 each
    assert [l.shape for l in labels] == [(64, 96), (64, 96)]
    with pytest.raises(DataError, match=r"odd\.png.*\[3, 65, 96\].*\[3, 64, 96\]"):
        segmenter.predict([smooth_image(65, 96, 5)], names=["odd.png"])


def test_onednn_on_pir_needs_the_workaround_and_it_works(tiny, tmp_path):
    """Paddle 3.3.1: oneDNN fails on a PIR program's bilinear_interp unless
    onednn_placement_pass is deleted. If a Paddle release fixes this, the first
    half fails and the workaround can go."""
    cfg, model = tiny
    export_model(model, str(tmp_path), output_op="none")
    config = DeployConfig.load(str(tmp_path))
    assert config.model == "model.json"
    with open(config.model_file) as f:
        assert "bilinear_interp" in f.read()
    x = preprocess(IMAGES["128x256"], config.build_transforms())[0][None]
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x))[0].numpy()
    broken = PaddleInferencePredictor(config.model_file, config.params_file, cpu_threads=2,
                                      use_onednn=True, onednn_workaround=False)
    # the oneDNN path fails; the predictor says so and runs on the native kernels instead
    with pytest.warns(RuntimeWarning, match="ConvertPirAttribute2RuntimeAttribute"):
        out = broken.run(x)
    assert not broken.use_onednn
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)
    fixed = PaddleInferencePredictor(config.model_file, config.params_file, cpu_threads=2, use_onednn=True)
    assert fixed.make_config().onednn_enabled()
    assert ONEDNN_PIR_WORKAROUND_PASSES == ("onednn_placement_pass",)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback: oneDNN itself runs it
        np.testing.assert_allclose(fixed.run(x), expected, atol=1e-4, rtol=1e-4)
    assert fixed.use_onednn


def test_legacy_ir_export_writes_pdmodel_and_runs(tiny, tmp_path):
    """With FLAGS_enable_pir_api=0, jit.save writes model.pdmodel; deploy.yaml names it and both backends run it."""
    cfg, model = tiny
    ckpt = os.path.join(str(tmp_path), "tiny.pdparams")
    paddle.save(model.state_dict(), ckpt)
    out = os.path.join(str(tmp_path), "legacy")
    proc = run_cli("export", "--config", cfg, "--model_path", ckpt, "--save_dir", out,
                   env={"FLAGS_enable_pir_api": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = DeployConfig.load(out)
    assert (config.model, config.params) == ("model.pdmodel", "model.pdiparams")
    image = IMAGES["97x131"]
    expected = dygraph_labels(model, image, cfg)
    for backend in ("paddle", "onnxruntime"):
        label = DeployedSegmenter(out, backend=backend, cpu_threads=2).predict([image])[0]
        assert agreement(label, expected) >= MIN_AGREEMENT, backend


class _AdaptivePoolNet(paddle.nn.Layer):
    """Conv -> adaptive pooling -> upsample: paddle2onnx needs a static input size for it."""

    def __init__(self):
        super().__init__()
        self.num_classes = 3
        self.conv = paddle.nn.Conv2D(3, 3, 3, padding=1)
        self.pool = paddle.nn.AdaptiveAvgPool2D(2)

    def forward(self, x):
        y = self.pool(self.conv(x))
        return [paddle.nn.functional.interpolate(y, size=paddle.shape(x)[2:], mode="bilinear")]


def test_onnx_conversion_failure_is_a_clear_error_and_keeps_the_old_export(tiny, tmp_path):
    cfg, model = tiny
    export_model(model, str(tmp_path))
    before = {name: open(os.path.join(tmp_path, name), "rb").read() for name in os.listdir(tmp_path)}
    with pytest.raises(LPSNetError, match=r"paddle2onnx could not convert.*static.*--input_shape"):
        export_model(_AdaptivePoolNet(), str(tmp_path), format="onnx")
    after = {name: open(os.path.join(tmp_path, name), "rb").read() for name in os.listdir(tmp_path)}
    assert after == before  # no staging folder left, earlier export untouched


def test_deploy_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(LPSNetError, match="deploy.yaml does not exist"):
        DeployConfig.load(str(tmp_path))
    (tmp_path / "deploy.yaml").write_text(json.dumps({"Deploy": {"model": "model.json", "params": "model.pdiparams"}}))
    with pytest.raises(LPSNetError, match=r"Deploy.model names model.json, which is not in"):
        DeployConfig.load(str(tmp_path))
    (tmp_path / "deploy.yaml").write_text("Deploy: {model: model.json, output_op: max}")
    with pytest.raises(LPSNetError, match="output_op is 'max'"):
        DeployConfig.load(str(tmp_path))


@pytest.mark.slow
def test_upstream_ppliteseg_export(tmp_path):
    """PP-LiteSeg (STDC1): Paddle export with dynamic size agrees; ONNX needs a fixed size."""
    cfg = write_config(str(tmp_path), {"type": "PPLiteSeg", "num_classes": 19,
                                       "backbone": {"type": "STDC1", "pretrained": None}})
    _, model = make_checkpoint(str(tmp_path), cfg, seed=3)
    image = IMAGES["128x256"]
    expected = dygraph_labels(model, image, cfg)
    assert len(np.unique(expected)) > 2
    paddle_dir, onnx_dir = str(tmp_path / "paddle"), str(tmp_path / "onnx")
    export_like_cli(model, cfg, paddle_dir)
    assert agreement(DeployedSegmenter(paddle_dir, cpu_threads=2).predict([image])[0], expected) >= MIN_AGREEMENT
    with pytest.raises(LPSNetError, match="static"):
        export_model(model, onnx_dir, format="onnx")
    export_like_cli(model, cfg, onnx_dir, format="onnx", input_shape=[1, 3, 128, 256])
    assert agreement(DeployedSegmenter(onnx_dir, cpu_threads=2).predict([image])[0], expected) >= MIN_AGREEMENT


def test_resize_transform_is_undone_per_image(tiny, tmp_path):
    """With a Resize in deploy.yaml, each prediction comes back at its image's size and
    (for score outputs) matches PaddleSeg's own dygraph inference, which undoes it too."""
    import argparse

    from paddleseg_lpsnet.tools.predict import predict_image
    cfg, model = tiny
    transforms = [{"type": "Resize", "target_size": [96, 64]}, {"type": "Normalize"}]
    export_model(model, str(tmp_path / "none"), transforms=transforms, output_op="none")
    export_model(model, str(tmp_path / "argmax"), transforms=transforms)
    image = IMAGES["97x131"]
    args = argparse.Namespace(aug_pred=False, is_slide=False, stride=None, crop_size=None)
    expected = predict_image(model, image, build_transforms(transforms), args)
    assert expected.shape == (97, 131)
    scores = DeployedSegmenter(str(tmp_path / "none"), cpu_threads=2).predict([image])[0]
    assert agreement(scores, expected) >= 0.999
    labels = DeployedSegmenter(str(tmp_path / "argmax"), cpu_threads=2).predict([image])[0]
    assert labels.shape == (97, 131)


@pytest.mark.skipif(paddle.is_compiled_with_cuda(), reason="checks the message of a CPU-only build")
def test_gpu_on_a_cpu_build_is_a_clear_error(tiny, tmp_path):
    export_model(tiny[1], str(tmp_path))
    with pytest.raises(LPSNetError, match="no CUDA"):
        create_predictor(DeployConfig.load(str(tmp_path)), backend="paddle", device="gpu")


def test_default_backend_on_cpu_is_onnxruntime_for_a_paddle_export(tiny, tmp_path):
    """onnxruntime is the faster CPU engine (benchmarks/NOTES.md); GPU keeps Paddle Inference."""
    config = export_model(tiny[1], str(tmp_path))
    assert config.format == "paddle"
    name, reason = default_backend(config, "cpu")
    assert name == "onnxruntime" and "faster" in reason
    assert default_backend(config, "gpu")[0] == "paddle"
    predictor, reason = create_default_predictor(config, cpu_threads=1)
    assert predictor.backend == "onnxruntime" and "faster" in reason


def test_default_backend_falls_back_to_paddle_when_conversion_fails(tmp_path):
    """A Paddle export paddle2onnx cannot convert (adaptive pooling, dynamic size) runs on Paddle Inference."""
    config = export_model(_AdaptivePoolNet(), str(tmp_path))
    predictor, reason = create_default_predictor(config, cpu_threads=1)
    assert predictor.backend == "paddle" and "conversion failed" in reason
    x = np.random.RandomState(0).standard_normal([1, 3, 32, 48]).astype("float32")
    assert predictor.run(x).shape == (1, 32, 48)
    segmenter = DeployedSegmenter(str(tmp_path), cpu_threads=1)
    assert segmenter.backend == "paddle" and "conversion failed" in segmenter.backend_reason
