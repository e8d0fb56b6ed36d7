"""Registry-driven deployment: every segmentation model of the zoo exports (deploy form)
and runs on both backends, agreeing with its dygraph eval output."""
import numpy as np
import paddle
import pytest
from conftest import randomize_bn_stats

from paddleseg_lpsnet.deploy import export_model
from paddleseg_lpsnet.deploy.predictor import create_predictor
from specs import NUM_CLASSES, SEG_MODELS, param_names

MIN_AGREEMENT = 0.9999
SHAPE = [1, 3, 96, 160]


@pytest.mark.parametrize("name", param_names(SEG_MODELS))
@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_exported_model_agrees_with_dygraph(name, backend, tmp_path):
    model = randomize_bn_stats(SEG_MODELS[name](NUM_CLASSES), seed=1)
    model.eval()
    x = np.random.RandomState(0).standard_normal(SHAPE).astype("float32")
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x))[0].numpy().argmax(1)
    config = export_model(model, str(tmp_path), output_op="argmax",
                          format="onnx" if backend == "onnxruntime" else "paddle")
    out = create_predictor(config, backend=backend).run(x)
    assert out.shape[-2:] == ref.shape[-2:]
    agreement = float((out.reshape(ref.shape) == ref).mean())
    assert agreement >= MIN_AGREEMENT, f"{name} on {backend}: {agreement:.5f} of pixels agree"


def test_paddle_inference_falls_back_to_native_kernels_when_onednn_fails(tmp_path):
    """Paddle 3.3.1's oneDNN path fails on a fixed-size PMSDSEN program (a batch norm's
    shape mis-inferred); the predictor warns and runs it with the native CPU kernels."""
    model = randomize_bn_stats(SEG_MODELS["PMSDSENet"](NUM_CLASSES), seed=1)
    model.eval()
    x = np.random.RandomState(0).standard_normal([1, 3, 64, 128]).astype("float32")
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x))[0].numpy().argmax(1)
    config = export_model(model, str(tmp_path), output_op="argmax", input_shape=[1, 3, 64, 128])
    predictor = create_predictor(config, backend="paddle")
    assert predictor.use_onednn
    with pytest.warns(RuntimeWarning, match="oneDNN path failed"):
        out = predictor.run(x)
    assert not predictor.use_onednn and "native kernels" in predictor.describe()
    assert float((out.reshape(ref.shape) == ref).mean()) >= MIN_AGREEMENT
