"""An exported model with its deploy.yaml pre- and post-processing: images in, label maps out.

Pre-processing is PaddleSeg's transforms, named in deploy.yaml, applied to the
image read by `utils.image.read_image`. Post-processing undoes the resizes and
paddings the transforms recorded (`trans_info`), so each label map has the size
of its image, and turns probabilities or logits into class ids.
"""
import cv2
import numpy as np

from paddleseg_lpsnet.deploy.config import DeployConfig
from paddleseg_lpsnet.deploy.predictor import create_default_predictor, create_predictor
from paddleseg_lpsnet.errors import DataError

__all__ = ["DeployedSegmenter", "preprocess", "restore_size", "model_failure"]


def model_failure(exc, names, shapes):
    """DataError naming the images (and their sizes) a model raised `exc` on."""
    sizes = ", ".join(f"{n} ({h}x{w})" for n, (h, w) in zip(names, shapes))
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # Paddle wraps the cause in "In user code:" headers; the line naming an error says most.
    cause = next((line for line in lines if "Error" in line), lines[0] if lines else "")
    return DataError(f"The model failed on {sizes}: {type(exc).__name__}: {cause} "
                     "-- is the image too small for the model?")


def preprocess(image, transforms):
    """(float32 [C, H, W] model input, trans_info) of an image array under a Compose."""
    data = transforms({"img": image.copy(), "trans_info": []})
    return np.ascontiguousarray(data["img"], dtype=np.float32), data["trans_info"]


def _resize(array, size, interpolation):
    """Resize an [H, W] or [C, H, W] array to size (h, w)."""
    h, w = int(size[0]), int(size[1])
    if array.ndim == 2:
        return cv2.resize(array, (w, h), interpolation=interpolation)
    hwc = cv2.resize(np.ascontiguousarray(array.transpose(1, 2, 0)), (w, h), interpolation=interpolation)
    return (hwc[:, :, None] if hwc.ndim == 2 else hwc).transpose(2, 0, 1)


def restore_size(output, trans_info):
    """Undo the resizes and paddings recorded in `trans_info` on one output.

    `output` is an int label map [H, W] (nearest resize) or float scores
    [C, H, W] (bilinear resize), in the transformed geometry.
    """
    is_label = output.ndim == 2
    if is_label:
        output = output.astype(np.int32)  # OpenCV cannot resize int64
    for kind, size in reversed(trans_info):
        if kind == "resize":
            output = _resize(output, size, cv2.INTER_NEAREST if is_label else cv2.INTER_LINEAR)
        elif kind == "padding":
            output = output[..., :int(size[0]), :int(size[1])]
        else:
            raise ValueError(f"Unknown transform record {kind!r} in trans_info.")
    return output


class DeployedSegmenter:
    """Run an export directory on images.

    Args:
        model_dir (str): The --save_dir of `lpsnet export` (holds deploy.yaml).
        backend (str, optional): paddle or onnxruntime. Default: `default_backend`.
        device (str, optional): cpu or gpu. Default: "cpu".
        cpu_threads (int, optional): CPU threads. Default: all usable cores.
        **options: Passed to the predictor class.
    """

    def __init__(self, model_dir, backend=None, device="cpu", cpu_threads=None, **options):
        self.config = DeployConfig.load(model_dir)
        self.transforms = self.config.build_transforms()
        if backend is None:
            self.predictor, self.backend_reason = create_default_predictor(self.config, device, cpu_threads,
                                                                           **options)
        else:
            self.backend_reason = "asked for"
            self.predictor = create_predictor(self.config, backend, device, cpu_threads, **options)

    @property
    def backend(self):
        return self.predictor.backend

    def _postprocess(self, output, trans_info):
        """[H, W] int32 class ids of one output item, at the size of its image."""
        restored = restore_size(output, trans_info)
        return restored if self.config.output_op == "argmax" else restored.argmax(axis=0).astype(np.int32)

    def _run(self, batch, names, shapes):
        try:
            return self.predictor.run(np.stack(batch))
        except Exception as exc:  # the backends raise RuntimeError, ValueError, NotImplementedError...
            raise model_failure(exc, names, shapes) from exc

    def _check_fixed_shape(self, chw, name):
        """DataError when the export has a fixed C/H/W that a transformed image does not match."""
        fixed = self.config.input_shape[1:]
        if any(f != -1 and f != d for f, d in zip(fixed, chw.shape)):
            raise DataError(f"{name}: after the deploy.yaml transforms the input is {list(chw.shape)} (C, H, W) "
                            f"but {self.config.model_dir} was exported for {fixed}; add a Resize transform "
                            "to deploy.yaml or export without --input_shape.")

    def predict(self, images, names=None):
        """Label maps ([H, W] int32, the size of each image) of a list of image arrays.

        Consecutive images whose transformed shapes agree run as one batch (at most
        the export's fixed batch size, if it has one). `names` (e.g. file names)
        label the errors raised for an image.
        """
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        inputs = [preprocess(image, self.transforms) for image in images]
        for (chw, _), name in zip(inputs, names):
            self._check_fixed_shape(chw, name)
        max_batch = self.config.input_shape[0] if self.config.input_shape[0] > 0 else len(images)
        labels = [None] * len(images)
        start = 0
        while start < len(images):
            stop = start + 1
            while (stop < len(images) and stop - start < max_batch
                   and inputs[stop][0].shape == inputs[start][0].shape):
                stop += 1
            outputs = self._run([inputs[i][0] for i in range(start, stop)], names[start:stop],
                                [images[i].shape[:2] for i in range(start, stop)])
            for i, output in zip(range(start, stop), outputs):
                labels[i] = self._postprocess(output, inputs[i][1])
            start = stop
        return labels
