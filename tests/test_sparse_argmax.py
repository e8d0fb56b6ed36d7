"""sparse_upsampled_argmax: the labels of argmax(bilinear upsample(logits)), in dygraph and exported."""
import os

import numpy as np
import onnx
import paddle
import paddle.nn as nn
import pytest

from paddleseg_lpsnet.deploy import DeployConfig, create_predictor, export_model
from paddleseg_lpsnet.deploy.export import _jit_save, paddle_to_onnx
from paddleseg_lpsnet.deploy.predictor import OnnxRuntimePredictor, PaddleInferencePredictor
from paddleseg_lpsnet.deploy.sparse_argmax import dense_upsampled_argmax, source_rows, sparse_upsampled_argmax
from paddleseg_lpsnet.models import LPSNetSeg
from paddleseg_lpsnet.models.backbones import LPSNET_TINY, LPSNetBackbone

CASES = [  # logit shape, output size
    ([2, 5, 7, 9], [30, 41]),  # upsampling, batch 2
    ([1, 19, 8, 16], [128, 256]),  # x16, Cityscapes classes
    ([1, 3, 1, 5], [4, 9]),  # one row
    ([1, 3, 1, 1], [5, 5]),  # one pixel
    ([1, 4, 5, 6], [3, 4]),  # shrinking skips row pairs
    ([2, 4, 17, 6], [5, 4]),
    ([1, 3, 9, 9], [9, 9]),  # same size
]


def smooth_logits(shape, seed):
    """Logits with regions and boundaries (a random low-frequency field per class)."""
    rng = np.random.RandomState(seed)
    n, c, h, w = shape
    coarse = rng.standard_normal([n, c, max(h // 3, 1), max(w // 3, 1)]).astype("float32")
    up = paddle.nn.functional.interpolate(paddle.to_tensor(coarse), size=[h, w], mode="bilinear")
    return up + 0.3 * paddle.to_tensor(rng.standard_normal(shape).astype("float32"))


def assert_same_labels(labels, logit, size, align_corners):
    """labels equal the dense argmax except where the dense top-2 margin is float noise."""
    up = paddle.nn.functional.interpolate(logit, size=size, mode="bilinear", align_corners=align_corners).numpy()
    dense = up.argmax(1)
    labels = np.asarray(labels)
    assert labels.shape == dense.shape and labels.dtype == np.int32
    top2 = np.sort(up, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) < 1e-4
    assert np.array_equal(labels[~near_tie], dense[~near_tie])
    assert (labels != dense).mean() <= 1e-4


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("shape,size", CASES)
def test_dygraph_matches_dense(shape, size, align_corners):
    for seed in range(3):
        logit = paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))
        assert_same_labels(sparse_upsampled_argmax(logit, size, align_corners), logit, size, align_corners)
    logit = smooth_logits(shape, 7)
    assert_same_labels(sparse_upsampled_argmax(logit, size, align_corners), logit, size, align_corners)


def test_source_rows_follow_paddles_bilinear_coordinates():
    i0, t = source_rows(7, 3, align_corners=True)  # y * 2/6
    np.testing.assert_array_equal(i0.numpy(), [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(t.numpy(), [0, 1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 1], atol=1e-6)
    i0, t = source_rows(6, 3, align_corners=False)  # max((y + .5) / 2 - .5, 0), t clipped to 1
    np.testing.assert_array_equal(i0.numpy(), [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(t.numpy(), [0, 0.25, 0.75, 0.25, 0.75, 1], atol=1e-6)


def test_a_third_class_winning_between_two_rows():
    """Rows argmax 0 and 1, but class 2 wins in the middle: the rare path blends every output row."""
    column = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.9]], np.float32)  # [C, h]: rows 0 and 1
    logit = paddle.to_tensor(np.repeat(column[None, :, :, None], 3, axis=3))  # [1, 3, 2, 3]
    labels = sparse_upsampled_argmax(logit, [21, 5])
    assert_same_labels(labels, logit, [21, 5], True)
    assert labels.numpy()[0, :, 0].tolist() == [0] * 3 + [2] * 15 + [1] * 3


def test_constant_logits_have_no_boundary_work():
    logit = paddle.zeros([1, 4, 6, 6]) + paddle.to_tensor([0.0, 0.0, 1.0, 0.0]).reshape([1, 4, 1, 1])
    labels = sparse_upsampled_argmax(logit, [50, 70])
    assert labels.shape == [1, 50, 70] and bool((labels == 2).all())


class _Head(nn.Layer):
    """Low-resolution logits in, labels at `size` out."""

    def __init__(self, size, sparse):
        super().__init__()
        self.size, self.sparse = size, sparse

    def forward(self, x):
        fn = sparse_upsampled_argmax if self.sparse else dense_upsampled_argmax
        return fn(x, self.size, True)


@pytest.fixture(scope="module")
def cityscapes_head(tmp_path_factory):
    """The sparse head traced for [1, 19, 64, 128] -> 1024 x 2048 (LPS-Net-M on Cityscapes)."""
    folder = str(tmp_path_factory.mktemp("head"))
    model_name, params_name = _jit_save(_Head([1024, 2048], True),
                                        paddle.static.InputSpec([1, 19, 64, 128], "float32", "x"), folder)
    return os.path.join(folder, model_name), os.path.join(folder, params_name)


def test_exported_head_at_cityscapes_size_on_every_backend(cityscapes_head):
    """Large flat indices: Paddle Inference's oneDNN fusions once got the int64 index math wrong here."""
    model_file, params_file = cityscapes_head
    logit = smooth_logits([1, 19, 64, 128], 3)
    x = logit.numpy()
    predictors = {
        "paddle-onednn": PaddleInferencePredictor(model_file, params_file, cpu_threads=1),
        "paddle-native": PaddleInferencePredictor(model_file, params_file, cpu_threads=1, use_onednn=False),
        "onnxruntime": OnnxRuntimePredictor(paddle_to_onnx(model_file, params_file), cpu_threads=1),
    }
    for name, predictor in predictors.items():
        labels = predictor.run(x)
        assert labels.shape == (1, 1024, 2048), name
        assert_same_labels(labels, logit, [1024, 2048], True)



def test_exported_head_avoids_the_slow_onnxruntime_forms(cityscapes_head):
    """The choices benchmarks/NOTES.md section 9 measured: no GatherND, no Gather of
    single elements by index (GatherElements instead), and the label map written by
    the last elementwise op rather than copied by a final Reshape."""
    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(paddle_to_onnx(*cityscapes_head)))
    assert "GatherND" not in [node.op_type for node in model.graph.node]
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in model.graph.value_info}
    one_element_gathers = [node.name for node in model.graph.node
                           if node.op_type == "Gather" and ranks.get(node.input[0]) == 1]
    assert one_element_gathers == []
    producer = {out: node for node in model.graph.node for out in node.output}
    last = producer[model.graph.output[0].name]
    while last.op_type == "Identity":  # paddle2onnx names the output through Identity nodes
        last = producer[last.input[0]]
    assert last.op_type == "Add"


@pytest.fixture(scope="module")
def tiny_model():
    paddle.seed(3)
    model = LPSNetSeg(5, LPSNetBackbone(**LPSNET_TINY))
    model.eval()
    return model


@pytest.mark.parametrize("input_shape", [None, [2, 3, 64, 96]])
def test_export_uses_the_sparse_form_and_agrees_with_the_dense_export(tiny_model, tmp_path, input_shape):
    x = np.random.RandomState(0).standard_normal([2, 3, 64, 96]).astype("float32")
    outputs = {}
    for sparse in (True, False):
        folder = str(tmp_path / str(sparse))
        export_model(tiny_model, folder, input_shape=input_shape, format="onnx", sparse_argmax=sparse)
        ops = {node.op_type for node in onnx.load(os.path.join(folder, "model.onnx")).graph.node}
        assert ("NonZero" in ops) == sparse
        outputs[sparse] = create_predictor(DeployConfig.load(folder), cpu_threads=1).run(x)
    assert outputs[True].shape == (2, 64, 96)
    assert (outputs[True] == outputs[False]).mean() >= 0.9999


def test_softmax_and_none_exports_are_unchanged(tiny_model, tmp_path):
    export_model(tiny_model, str(tmp_path), output_op="none", format="onnx")
    ops = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert "NonZero" not in ops and "ArgMax" not in ops


@pytest.mark.parametrize("name", ["LPSNetSeg", "FasterSegNet"])
def test_models_with_lowres_logits_export_the_sparse_form_and_agree_with_dygraph(name, tmp_path):
    from specs import SEG_MODELS

    from paddleseg_lpsnet.deploy.export import has_lowres_logits
    paddle.seed(5)
    model = SEG_MODELS[name](5)
    model.eval()
    assert has_lowres_logits(model)
    x = np.random.RandomState(0).standard_normal([1, 3, 96, 160]).astype("float32")
    with paddle.no_grad():
        expected = model(paddle.to_tensor(x))[0].argmax(1).numpy()
        lowres = model.forward_lowres(paddle.to_tensor(x))
    assert lowres.shape[2] < 96  # logits below the input size: the sparse form has work to save
    config = export_model(model, str(tmp_path), format="onnx")
    assert "NonZero" in {n.op_type for n in onnx.load(config.model_file).graph.node}
    labels = create_predictor(config, cpu_threads=1).run(x)
    assert len(np.unique(expected)) > 1 and (labels == expected).mean() >= 0.9999
