"""int8 export: `lpsnet export --quantize int8` loads, runs, and agrees with the fp32 export on a trained tiny model."""
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper
from tiny_dataset import generic_config, write_config, write_generic

from paddleseg_lpsnet.deploy import DeployConfig, DeployedSegmenter, export_model
from paddleseg_lpsnet.deploy.quantize import (calibration_batches, output_convs, quantizable_convs,
                                              quantize_export)
from paddleseg_lpsnet.errors import ConfigError, DataError
from paddleseg_lpsnet.utils.image import list_images, read_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_PATHS = {"type": "LPSNetSeg", "num_classes": 4,
             "backbone": {"type": "LPSNetBackbone", "depths": [1, 1, 2, 2, 2],
                          "channels": [8, 16, 16, 32, 32], "scale_ratios": [1.0, 0.5]}}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small two-path LPS-Net trained for a few iterations on the tiny band dataset: (config, checkpoint, data)."""
    folder = tmp_path_factory.mktemp("int8")
    data = write_generic(str(folder / "data"), num_train=8, num_val=4)
    cfg = generic_config(data, model=TWO_PATHS, iters=40, batch_size=4)
    cfg["lr_scheduler"]["learning_rate"] = 0.1
    config = write_config(folder / "tiny.yml", cfg)
    proc = run_cli("train", "--config", config, "--device", "cpu", "--save_dir", str(folder / "out"),
                   "--save_interval", "40", "--seed", "0", "--log_iters", "40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return config, str(folder / "out" / "iter_40" / "model.pdparams"), data


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    """fp32 and int8 exports of the trained model through `lpsnet export`."""
    config, ckpt, data = trained
    out = tmp_path_factory.mktemp("exports")
    fp32, int8 = str(out / "fp32"), str(out / "int8")
    proc = run_cli("export", "--config", config, "--model_path", ckpt, "--save_dir", fp32, "--format", "onnx")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("export", "--config", config, "--model_path", ckpt, "--save_dir", int8, "--quantize", "int8",
                   "--calib_dir", os.path.join(data, "images"), "--calib_num", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "int8 (calibrated on" in proc.stdout
    return fp32, int8, data


def test_int8_export_files_and_deploy_yaml(exports):
    _, int8, _ = exports
    assert sorted(os.listdir(int8)) == ["deploy.yaml", "model.onnx"]
    with open(os.path.join(int8, "deploy.yaml")) as f:
        deploy = yaml.safe_load(f)["Deploy"]
    assert deploy["precision"] == "int8" and deploy["model"] == "model.onnx" and deploy["output_op"] == "argmax"
    config = DeployConfig.load(int8)
    assert config.precision == "int8" and config.num_classes == 4


def test_int8_graph_quantizes_the_convolutions_but_not_the_image_convs_classifier_or_head(exports):
    _, int8, _ = exports
    model = onnx.load(os.path.join(int8, "model.onnx"))
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = [c for c in convs if producers.get(c.input[0]) is not None
                 and producers[c.input[0]].op_type == "DequantizeLinear"]
    inits = {t.name: t for t in model.graph.initializer}
    fp32_convs = [c for c in convs if c not in quantized]
    in_channels = sorted(int(numpy_helper.to_array(inits[c.input[1]]).shape[1]) for c in fp32_convs)
    assert in_channels == [3, 3, 64]  # the image convs of both paths, and the classifier (2 x 32 channels)
    assert len(quantized) == len(convs) - 3 and quantized
    assert not any(producers.get(n.input[0]) is not None and producers[n.input[0]].op_type == "DequantizeLinear"
                   for n in model.graph.node if n.op_type in ("MatMul", "ArgMax"))
    weights = [numpy_helper.to_array(inits[producers[c.input[1]].input[0]]) for c in quantized]
    assert all(w.dtype == np.int8 for w in weights)
    assert max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 127  # full 8-bit symmetric range


def test_int8_agrees_with_fp32(exports):
    fp32, int8, data = exports
    images, _ = list_images(os.path.join(data, "images"))
    arrays = [read_image(p) for p in images]
    labels32 = DeployedSegmenter(fp32, cpu_threads=1).predict(arrays)
    labels8 = DeployedSegmenter(int8, cpu_threads=1).predict(arrays)
    agreement = np.mean([(a == b).mean() for a, b in zip(labels32, labels8)])
    assert len(np.unique(np.concatenate([l.ravel() for l in labels32]))) == 4  # a trained, non-trivial model
    assert agreement >= 0.98


def test_quantize_errors(trained, exports, tmp_path):
    config, ckpt, data = trained
    fp32, _, _ = exports
    proc = run_cli("export", "--config", config, "--model_path", ckpt, "--save_dir", str(tmp_path / "a"),
                   "--quantize", "int8")
    assert proc.returncode == 2 and "--calib_dir" in proc.stderr.strip().splitlines()[-1]
    proc = run_cli("export", "--config", config, "--model_path", ckpt, "--save_dir", str(tmp_path / "b"),
                   "--quantize", "int8", "--format", "paddle", "--calib_dir", data)
    assert proc.returncode == 2 and "ONNX" in proc.stderr.strip().splitlines()[-1]
    with pytest.raises(DataError, match="does not exist"):
        quantize_export(fp32, str(tmp_path / "c"), str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="calib_method"):
        quantize_export(fp32, str(tmp_path / "c"), data, method="mse")


def test_calibration_checks_the_fixed_input_shape(trained, tmp_path):
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config
    config, ckpt, data = trained
    model, _ = build_model_with_weights(load_config(config), ckpt)
    deploy = export_model(model, str(tmp_path / "fixed"), input_shape=[1, 3, 32, 64], format="onnx")
    with pytest.raises(DataError, match=r"train_0.png.*\[3, 64, 128\].*\[3, 32, 64\]"):
        next(calibration_batches(deploy, os.path.join(data, "images"), 2))
    dynamic = export_model(model, str(tmp_path / "dyn"), format="onnx")
    batches = list(calibration_batches(dynamic, os.path.join(data, "images"), 3))
    assert len(batches) == 3 and batches[0].shape == (1, 3, 64, 128) and batches[0].dtype == np.float32


def test_quantizable_convs_skip_the_image_convs_and_the_classifier(exports):
    fp32, _, _ = exports
    model = onnx.load(os.path.join(fp32, "model.onnx"))
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"n{i}"
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    (classifier,) = output_convs(model)
    assert classifier == convs[-1].name
    assert len(quantizable_convs(model)) == len(convs) - 3
    assert len(quantizable_convs(model, keep_output_convs=False)) == len(convs) - 2
