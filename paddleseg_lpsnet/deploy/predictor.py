"""Running an exported model: one predictor class per backend, one interface.

Every predictor takes a float32 [N, C, H, W] batch (already transformed) and returns
the model's single output as a numpy array (`run`). `create_predictor` builds one
for an export directory; `default_backend` is the single place that decides which
backend `lpsnet infer` uses when none is asked for (onnxruntime on CPU: faster).

Paddle Inference on CPU runs with oneDNN. Paddle 3.3.1's oneDNN path cannot run a
PIR program (model.json) that holds a bilinear resize: `onednn_placement_pass`
moves `bilinear_interp` onto oneDNN, whose PIR instruction cannot convert the op's
float-array attribute and fails at the first run with
`NotImplementedError: ConvertPirAttribute2RuntimeAttribute not support
[pir::ArrayAttribute<pir::DoubleAttribute>]`. Deleting that pass keeps the oneDNN
conv fusions and runs the remaining ops on Paddle's own CPU kernels
(`ONEDNN_PIR_WORKAROUND_PASSES`; tests/test_deploy.py shows the failure and the fix).
Legacy model.pdmodel files go through the old IR passes, which need the placement
pass (without it: "oneDNN activation fuses require use_onednn=True"), so there the
pass is kept.
"""
import os
import warnings

import numpy as np

from paddleseg_lpsnet.errors import ConfigError, LPSNetError

__all__ = ["BACKENDS", "DEVICES", "Predictor", "PaddleInferencePredictor", "OnnxRuntimePredictor",
           "create_predictor", "create_default_predictor", "default_backend", "default_cpu_threads",
           "ONEDNN_PIR_WORKAROUND_PASSES"]

BACKENDS = ("paddle", "onnxruntime")
DEVICES = ("cpu", "gpu")
# Passes deleted from a Paddle Inference config running a PIR program with oneDNN.
ONEDNN_PIR_WORKAROUND_PASSES = ("onednn_placement_pass",)


def default_cpu_threads():
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_backend(config, device="cpu"):
    """The backend `lpsnet infer` uses without --backend, and why: (name, reason).

    The single place that makes the choice. An ONNX export can only run on
    onnxruntime. A Paddle export runs on onnxruntime on CPU too -- converted with
    paddle2onnx when loaded (seconds) -- because there it is the faster engine:
    `lpsnet bench` measured onnxruntime ahead of Paddle Inference (oneDNN) for
    every model of the suite, ours and upstream's (benchmarks/NOTES.md). On GPU a
    Paddle export stays on Paddle Inference. When the conversion fails (a model
    paddle2onnx cannot convert with dynamic shapes), `create_default_predictor`
    falls back to Paddle Inference and says so.
    """
    if config.format == "onnx":
        return "onnxruntime", "the export is ONNX"
    if device == "cpu":
        return "onnxruntime", ("faster than Paddle Inference on CPU, see benchmarks/NOTES.md; the Paddle model "
                               "is converted to ONNX when loaded -- export with --format onnx to skip that")
    return "paddle", "the export is a Paddle inference model"


def _check_device(device):
    if device not in DEVICES:
        raise ConfigError(f"--device {device!r} is not one of {', '.join(DEVICES)}.")


class Predictor:
    """Runs one exported model on float32 [N, C, H, W] batches.

    Subclasses set `backend` and implement `run`; `describe` says what runs.
    """
    backend = None

    def __init__(self, device="cpu", cpu_threads=None):
        _check_device(device)
        self.device = device
        self.cpu_threads = int(cpu_threads or default_cpu_threads())

    def run(self, batch):
        """The model's output for `batch` (float32 [N, C, H, W]) as a numpy array."""
        raise NotImplementedError

    def describe(self):
        return f"{self.backend} on {self.device}"

    def __call__(self, batch):
        return self.run(batch)


class PaddleInferencePredictor(Predictor):
    """Paddle Inference predictor of a model.json (PIR) or model.pdmodel (legacy) export.

    Args:
        model_file (str): model.json or model.pdmodel.
        params_file (str): model.pdiparams.
        device (str, optional): cpu or gpu. Default: "cpu".
        cpu_threads (int, optional): Math library threads on CPU. Default: all usable cores.
        use_onednn (bool, optional): oneDNN kernels on CPU. Default: True.
        onednn_workaround (bool, optional): Delete ONEDNN_PIR_WORKAROUND_PASSES for a
            PIR program (see the module docstring). Default: True.
        gpu_id (int, optional): GPU to run on. Default: 0.
    """
    backend = "paddle"

    def __init__(self, model_file, params_file, device="cpu", cpu_threads=None, use_onednn=True,
                 onednn_workaround=True, gpu_id=0):
        super().__init__(device, cpu_threads)
        self.model_file, self.params_file = model_file, params_file
        self.use_onednn = use_onednn and device == "cpu"
        self.onednn_workaround = onednn_workaround
        self.gpu_id = gpu_id
        self._create()

    def _create(self):
        from paddle import inference
        self._predictor = inference.create_predictor(self.make_config())
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    @property
    def is_pir(self):
        return self.model_file.endswith(".json")

    def make_config(self):
        """The paddle.inference.Config this predictor runs with."""
        import paddle
        from paddle import inference
        config = inference.Config(self.model_file, self.params_file)
        config.disable_glog_info()
        config.switch_ir_optim(True)
        if self.device == "gpu":
            if not paddle.is_compiled_with_cuda():
                raise ConfigError("--device gpu: this paddlepaddle build has no CUDA; install "
                                  "paddlepaddle-gpu or use --device cpu.")
            config.enable_use_gpu(256, self.gpu_id)
            return config
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(self.cpu_threads)
        if self.use_onednn:
            config.enable_onednn()
            if self.onednn_workaround and self.is_pir:
                for name in ONEDNN_PIR_WORKAROUND_PASSES:
                    config.delete_pass(name)
        else:
            config.disable_onednn()
        return config

    def _run(self, batch):
        self._input.reshape(list(batch.shape))
        self._input.copy_from_cpu(batch)
        self._predictor.run()
        return self._output.copy_to_cpu()

    def run(self, batch):
        """Run a batch. If the oneDNN path fails (Paddle 3.3.1's oneDNN kernels mis-infer
        some shapes of fixed-size programs, e.g. PMSDSEN's batch norms), warn and run
        with Paddle's native CPU kernels from then on."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if not self.use_onednn:
            return self._run(batch)
        try:
            return self._run(batch)
        except Exception as exc:  # paddle raises ValueError, RuntimeError, NotImplementedError...
            lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
            reason = next((l for l in lines if "Error" in l), lines[-1] if lines else type(exc).__name__)
            warnings.warn(f"Paddle Inference's oneDNN path failed on {self.model_file} ({reason[:200]}); "
                          "running it with Paddle's native CPU kernels.", RuntimeWarning)
            self.use_onednn = False
            self._create()
            return self._run(batch)

    def describe(self):
        if self.device == "gpu":
            return f"Paddle Inference on GPU {self.gpu_id}"
        engine = "oneDNN" if self.use_onednn else "native kernels"
        return f"Paddle Inference on CPU ({engine}, {self.cpu_threads} threads)"


class OnnxRuntimePredictor(Predictor):
    """onnxruntime session of an ONNX model (a path or the model's bytes).

    Args:
        model (str|bytes): model.onnx, or serialized ONNX.
        device (str, optional): cpu or gpu (CUDAExecutionProvider). Default: "cpu".
        cpu_threads (int, optional): Intra-op threads. Default: all usable cores.
        optimization_level (str, optional): onnxruntime graph optimisation:
            disable, basic, extended or all. Default: "all".
    """
    backend = "onnxruntime"
    _LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}

    def __init__(self, model, device="cpu", cpu_threads=None, optimization_level="all"):
        super().__init__(device, cpu_threads)
        import onnxruntime as ort
        if optimization_level not in self._LEVELS:
            raise ConfigError(f"optimization_level {optimization_level!r} is not one of {', '.join(self._LEVELS)}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.cpu_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, self._LEVELS[optimization_level])
        # Fatal only: no "removing unused initializer" warnings; run errors come back as exceptions.
        options.log_severity_level = 4
        providers = ["CPUExecutionProvider"]
        if device == "gpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("--device gpu: this onnxruntime has no CUDAExecutionProvider; "
                                  "install onnxruntime-gpu or use --device cpu.")
            providers.insert(0, "CUDAExecutionProvider")
        self._session = ort.InferenceSession(model, sess_options=options, providers=providers)
        self._input_name = self._session.get_inputs()[0].name

    def run(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self._session.run(None, {self._input_name: batch})[0]

    def describe(self):
        where = "GPU" if self.device == "gpu" else f"CPU, {self.cpu_threads} threads"
        return f"onnxruntime ({where})"


def create_default_predictor(config, device="cpu", cpu_threads=None, **options):
    """(Predictor, reason) on `default_backend`'s choice, or on Paddle Inference if a
    Paddle export cannot be converted to ONNX."""
    backend, reason = default_backend(config, device)
    try:
        return create_predictor(config, backend, device, cpu_threads, **options), reason
    except LPSNetError as exc:
        if backend != "onnxruntime" or config.format != "paddle":
            raise
        fallback = f"onnxruntime would be faster on CPU but the conversion failed ({exc})"
        return create_predictor(config, "paddle", device, cpu_threads), fallback


def create_predictor(config, backend=None, device="cpu", cpu_threads=None, **options):
    """A Predictor for the export described by `config` (a DeployConfig).

    `backend` None picks `default_backend` (through `create_default_predictor`).
    A Paddle export can also run on onnxruntime (converted in memory by
    paddle2onnx); an ONNX export only on onnxruntime. `options` go to the
    predictor class.
    """
    _check_device(device)
    if backend is None:
        return create_default_predictor(config, device, cpu_threads, **options)[0]
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}.")
    if backend == "paddle":
        if config.format != "paddle":
            raise ConfigError(f"{config.path} names {config.model}, an ONNX model: Paddle Inference "
                              "cannot run it; use --backend onnxruntime or export with --format paddle.")
        return PaddleInferencePredictor(config.model_file, config.params_file, device, cpu_threads, **options)
    if config.format == "onnx":
        model = config.model_file
    else:
        from paddleseg_lpsnet.deploy.export import paddle_to_onnx
        model = paddle_to_onnx(config.model_file, config.params_file)  # in memory, each time
    try:
        return OnnxRuntimePredictor(model, device, cpu_threads, **options)
    except (RuntimeError, ValueError) as exc:  # onnxruntime's load errors
        if isinstance(exc, LPSNetError):
            raise
        raise LPSNetError(f"onnxruntime cannot load {config.model_file}: {exc}") from exc
