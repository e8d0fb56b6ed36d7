"""Deployment: export a model (Paddle inference model or ONNX + deploy.yaml) and run it.

- `export_model(model, save_dir, ...)`: any PaddleSeg-style model object -> export directory.
- `DeployConfig.load(model_dir)`: what an export directory holds (deploy.yaml).
- `create_predictor(config, backend, device, cpu_threads)`: a backend predictor
  (`PaddleInferencePredictor`, `OnnxRuntimePredictor`) with one interface, `run(batch)`.
- `DeployedSegmenter(model_dir, ...)`: images in, label maps out, with deploy.yaml's transforms.
- `sparse_argmax`: the labels of upsampled logits without the full-size logits (used by export).
- `quantize.quantize_export(fp32_dir, save_dir, calib_dir)`: int8 ONNX export (onnxruntime PTQ).
- `benchmark`: latency of an exported model, the fp32 GEMM peak, the machine; `suite`: `lpsnet bench`.

Nothing here is imported by `import paddleseg_lpsnet`.
"""
from paddleseg_lpsnet.deploy.config import (DEFAULT_OPSET, DEPLOY_FILE, FORMATS, OUTPUT_OPS, DeployConfig,
                                            build_transforms)
from paddleseg_lpsnet.deploy.export import ExportHead, export_model, paddle_to_onnx
from paddleseg_lpsnet.deploy.predictor import (BACKENDS, OnnxRuntimePredictor, PaddleInferencePredictor,
                                               Predictor, create_default_predictor, create_predictor,
                                               default_backend)
from paddleseg_lpsnet.deploy.segmenter import DeployedSegmenter, preprocess, restore_size

__all__ = [
    "DEPLOY_FILE", "OUTPUT_OPS", "FORMATS", "DeployConfig", "build_transforms", "DEFAULT_OPSET", "ExportHead",
    "export_model", "paddle_to_onnx", "BACKENDS", "Predictor", "PaddleInferencePredictor",
    "OnnxRuntimePredictor", "create_predictor", "create_default_predictor", "default_backend", "DeployedSegmenter",
    "preprocess", "restore_size",
]
