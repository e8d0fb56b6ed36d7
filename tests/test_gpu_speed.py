"""benchmarks/gpu_speed.py's pack step: what it changes in the ONNX graphs must not change what they compute."""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_speed  # noqa: E402


def _run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _same_padded_model(mode):
    rng = np.random.RandomState(0)
    weight = numpy_helper.from_array(rng.standard_normal([4, 2, 3, 3]).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], auto_pad=mode, strides=[2, 2]),
        helper.make_node("AveragePool", ["c"], ["a"], auto_pad=mode, kernel_shape=[3, 2], strides=[2, 1]),
        helper.make_node("MaxPool", ["a"], ["y"], auto_pad=mode, kernel_shape=[2, 3], strides=[1, 2]),
    ]
    graph = helper.make_graph(nodes, "same", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 7, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_explicit_pads_compute_the_same(mode):
    x = np.random.RandomState(1).standard_normal([1, 2, 7, 9]).astype(np.float32)
    proto = _same_padded_model(mode)
    expected = _run(proto, x)
    gpu_speed.explicit_pads(proto)
    attrs = [{a.name: helper.get_attribute_value(a) for a in node.attribute} for node in proto.graph.node]
    assert all("auto_pad" not in a and len(a["pads"]) == 4 for a in attrs)
    assert any(a["pads"][:2] != a["pads"][2:] for a in attrs)  # odd totals: begin and end differ
    np.testing.assert_allclose(_run(proto, x), expected, rtol=1e-6, atol=1e-6)


def test_strip_and_fill_weights_keep_shapes_and_small_constants():
    proto = _same_padded_model("SAME_UPPER")
    shift = numpy_helper.from_array(np.arange(3, dtype=np.float32), "small")
    proto.graph.initializer.append(shift)
    stripped = gpu_speed.strip_weights(proto, min_elements=50)
    assert stripped == {"w": [4, 2, 3, 3]}
    assert {i.name: len(i.raw_data) + len(i.float_data) for i in proto.graph.initializer} == {"w": 0, "small": 12}
    gpu_speed.fill_weights(proto, stripped)
    weight = numpy_helper.to_array(next(i for i in proto.graph.initializer if i.name == "w"))
    assert weight.shape == (4, 2, 3, 3) and weight.std() > 0.1
    assert _run(proto, np.ones([1, 2, 7, 9], np.float32)).shape == (1, 4, 2, 3)


def test_pack_writes_stripped_graphs_and_the_manifest(tmp_path):
    gpu_speed.main(["pack", "--out", str(tmp_path), "--models", "lpsnet_s", "--sizes", "64x128"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (entry,) = manifest["entries"]
    assert entry["file"] == "lpsnet_s_64x128.onnx" and entry["input_shape"] == [1, 3, 64, 128]
    assert entry["params"] == 3375363 and entry["ours"]
    proto = onnx.load(str(tmp_path / entry["file"]))
    ops = {node.op_type for node in proto.graph.node}
    assert "BatchNormalization" not in ops and "ArgMax" in ops  # folded; dense argmax appended
    kept = [i for i in proto.graph.initializer if len(i.raw_data) + 4 * len(i.float_data) > 0]
    assert all(np.prod(i.dims) < gpu_speed.STRIP_MIN_ELEMENTS for i in kept)  # only small constants stay
    assert len(entry["stripped"]) >= sum(node.op_type == "Conv" for node in proto.graph.node) - 3
    assert os.path.getsize(tmp_path / entry["file"]) < 100_000  # the weights are not in the file
    out = _run_any(gpu_speed.fill_weights(proto, entry["stripped"]), [1, 3, 64, 128])
    assert out.shape in {(1, 64, 128), (1, 1, 64, 128)}


def _run_any(proto, shape):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.zeros(shape, np.float32)})[0]


def test_run_without_a_pack_says_how_to_make_one(tmp_path):
    with pytest.raises(SystemExit, match="No pack at .*gpu_speed.py pack"):
        gpu_speed.main(["run", "--pack", str(tmp_path / "missing")])
