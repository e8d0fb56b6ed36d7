"""Evaluation: mIoU, accuracy, kappa and per-class IoU of a model on a dataset.

`evaluate` runs PaddleSeg's inference (single scale, or `aug_eval` averaging logits
over scales x flips, optionally by sliding window) and PaddleSeg's metrics, reading
through `core.data` (errors name the file). With paddle.distributed, every rank
evaluates its share and the pixel counts are summed. `validate` is `lpsnet val`.
"""
import sys
from dataclasses import dataclass, field

import numpy as np
import paddle

from paddleseg_lpsnet.compat import paddleseg_fixes_applied
from paddleseg_lpsnet.core.amp import amp_context
from paddleseg_lpsnet.core.data import CheckedDataset, iterate_batches, rank_indices
from paddleseg_lpsnet.errors import ConfigError

__all__ = ["EvalResult", "evaluate", "validate", "eval_options", "format_result", "class_names"]


@dataclass
class EvalResult:
    """Metrics of one evaluation. `samples` holds {index: {"image", "label", "prediction"}}
    for the indices asked for with `keep` (image: CHW float as the model saw it)."""
    miou: float
    acc: float
    kappa: float
    dice: float
    class_iou: np.ndarray
    class_precision: np.ndarray
    class_recall: np.ndarray
    num_images: int
    samples: dict = field(default_factory=dict, repr=False)

    def as_dict(self):
        return {"miou": self.miou, "acc": self.acc, "kappa": self.kappa, "dice": self.dice,
                "class_iou": self.class_iou.tolist(), "class_precision": self.class_precision.tolist(),
                "class_recall": self.class_recall.tolist(), "num_images": self.num_images}


def class_names(num_classes):
    """Cityscapes' train-id names for 19 classes, else None."""
    if num_classes != 19:
        return None
    from cityscapesscripts.helpers.labels import trainId2label
    return [trainId2label[i].name for i in range(19)]


def _predict(model, batch, aug_eval, scales, flip_horizontal, flip_vertical, is_slide, crop_size, stride,
             rescale=None):
    from paddleseg.core import infer
    slide = dict(is_slide=is_slide, crop_size=crop_size, stride=stride)
    if rescale:
        from paddleseg_lpsnet.utils.rescaled_inference import predict_rescaled
        logit = infer.reverse_transform(predict_rescaled(model, batch["img"], rescale),
                                        batch["trans_info"], mode="bilinear")
        return paddle.argmax(logit, axis=1, keepdim=True, dtype="int32")
    if aug_eval:
        pred, _ = infer.aug_inference(model, batch["img"], trans_info=batch["trans_info"], scales=scales,
                                      flip_horizontal=flip_horizontal, flip_vertical=flip_vertical, **slide)
    else:
        pred, _ = infer.inference(model, batch["img"], trans_info=batch["trans_info"], **slide)
    return pred


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="eval", unit="img", leave=False, file=sys.stderr,
                disable=(not sys.stderr.isatty()) if enabled is None else not enabled)


def evaluate(model, dataset, aug_eval=False, scales=1.0, flip_horizontal=False, flip_vertical=False,
             is_slide=False, crop_size=None, stride=None, precision="fp32", amp_level="O1",
             num_workers=0, keep=(), progress=None, skip_bad_samples=False, on_skip=None, rescale=None):
    """Evaluate `model` on `dataset` (a PaddleSeg dataset in val mode).

    Args:
        model (nn.Layer): Returns a list of logits, the first at input size.
        dataset (paddle.io.Dataset): Samples with img, label and trans_info.
        aug_eval (bool): Average logits over `scales` x flips. Default: False.
        scales (float|list): Scales of aug_eval. Default: 1.0.
        flip_horizontal, flip_vertical (bool): Flips of aug_eval. Default: False.
        is_slide (bool): Sliding-window inference with crop_size and stride (w, h). Default: False.
        precision (str): "fp16" runs under AMP. Default: "fp32".
        num_workers (int): DataLoader workers. Default: 0.
        keep (iterable of int): Dataset indices whose image, label and prediction are
            returned in EvalResult.samples (those this rank evaluates). Default: ().
        progress (bool, optional): Show a progress bar; None: when stderr is a terminal.
        skip_bad_samples (bool): Leave samples that fail to load out of the metrics
            (EvalResult.num_images counts those evaluated) instead of raising DataError.
            Default: False.
        on_skip (callable, optional): Called with the message of each skipped sample.
            Default: a warning.
        rescale (float, optional): PMSDSEN's protocol: predict at this scale of the
            image (bilinear, align_corners=True), resize the logits back, compare at
            full resolution. Not combinable with aug_eval or is_slide. Default: None.

    Returns:
        EvalResult.
    """
    from paddleseg.utils import metrics

    if rescale is not None and (aug_eval or is_slide):
        raise ConfigError(f"rescale {rescale} (predict at a reduced scale) cannot be combined with "
                          f"aug_eval or is_slide; got aug_eval={aug_eval}, is_slide={is_slide}.")
    if rescale is not None and not 0 < float(rescale) <= 4:
        raise ConfigError(f"rescale must be a scale in (0, 4], got {rescale!r}.")
    checked = dataset if isinstance(dataset, CheckedDataset) else CheckedDataset(dataset, "val_dataset")
    nranks, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    indices = rank_indices(len(checked), rank, nranks)
    keep = set(keep)
    num_classes = checked.num_classes
    area = [paddle.zeros([num_classes], dtype="int64") for _ in range(3)]
    samples = {}
    skipped = 0
    was_training, policy = model.training, checked.bad_samples
    model.eval()
    checked.bad_samples = "drop" if skip_bad_samples else "error"
    try:
        with paddleseg_fixes_applied(), paddle.no_grad(), _progress(len(indices), progress) as bar:
            batches = iterate_batches(checked, [[i] for i in indices], num_workers, on_skip=on_skip)
            for index, batch in zip(indices, batches):
                bar.update(1)
                if batch is None:
                    skipped += 1
                    continue
                with amp_context(precision, amp_level):
                    pred = _predict(model, batch, aug_eval, scales, flip_horizontal, flip_vertical,
                                    is_slide, crop_size, stride, rescale)
                label = batch["label"].astype("int64")
                parts = metrics.calculate_area(pred, label, num_classes, ignore_index=checked.ignore_index)
                area = [total + part for total, part in zip(area, parts)]
                if index in keep:
                    samples[index] = {"image": batch["img"][0].numpy(), "label": label.numpy()[0, 0],
                                      "prediction": pred.numpy()[0, 0].astype(np.uint8)}
    finally:
        checked.bad_samples = policy
        if was_training:
            model.train()
    evaluated = paddle.to_tensor([len(indices) - skipped], dtype="int64")
    if nranks > 1:
        for total in [*area, evaluated]:
            paddle.distributed.all_reduce(total)
    return _result(area, int(evaluated.item()), samples)


def _result(area, num_images, samples):
    from paddleseg.utils import metrics
    class_iou, miou = metrics.mean_iou(*area)
    acc, class_precision, class_recall = metrics.class_measurement(*area)
    kappa = metrics.kappa(*area)
    _, mdice = metrics.dice(*area)
    return EvalResult(float(miou), float(acc), float(kappa), float(mdice), np.asarray(class_iou),
                      np.asarray(class_precision), np.asarray(class_recall), num_images, samples)


def format_result(result, names=None):
    """PaddleSeg-style lines: the summary, then one line per class."""
    lines = [f"[EVAL] #Images: {result.num_images} mIoU: {result.miou:.4f} Acc: {result.acc:.4f} "
             f"Kappa: {result.kappa:.4f} Dice: {result.dice:.4f}",
             "[EVAL] Class IoU / Precision / Recall:"]
    names = names or [str(i) for i in range(len(result.class_iou))]
    width = max(len(n) for n in names)
    for name, iou, prec, rec in zip(names, result.class_iou, result.class_precision, result.class_recall):
        lines.append(f"  {name.ljust(width)}  {iou:.4f}  {prec:.4f}  {rec:.4f}")
    return lines


_EVAL_OPTIONS = ("aug_eval", "scales", "flip_horizontal", "flip_vertical", "is_slide", "crop_size", "stride",
                 "rescale")


def eval_options(test_config, **given):
    """Evaluation options: the config's `test_config`, overridden by the given non-None values."""
    options = {k: v for k, v in (test_config or {}).items() if k in _EVAL_OPTIONS}
    options.update({k: v for k, v in given.items() if v is not None})
    return options


def validate(config, model_path, aug_eval=None, scales=None, flip_horizontal=None, flip_vertical=None,
             is_slide=None, crop_size=None, stride=None, num_workers=0, device=None, precision="fp32",
             amp_level="O1", opts=None, progress=None, skip_bad_samples=False, print_fn=print, rescale=None):
    """`lpsnet val`: build the config's model, load `model_path` strictly, evaluate, print.

    Evaluation options left None fall back to the config's `test_config`, as in
    PaddleSeg. Returns the EvalResult.
    """
    from paddleseg_lpsnet.core.builder import build_val_dataset, load_checked_config, set_device
    from paddleseg_lpsnet.utils.checkpoint import load_model_pretrained
    from paddleseg_lpsnet.utils.config import build_model

    with paddleseg_fixes_applied():
        if device is not None:
            set_device(device)
        cfg = load_checked_config(config, opts=opts)
        model = build_model(cfg)
        load_model_pretrained(model, model_path)
        dataset = build_val_dataset(cfg, config)
        options = eval_options(cfg.test_config, aug_eval=aug_eval, scales=scales,
                               flip_horizontal=flip_horizontal, flip_vertical=flip_vertical,
                               is_slide=is_slide, crop_size=crop_size, stride=stride, rescale=rescale)
        result = evaluate(model, dataset, num_workers=num_workers, precision=precision,
                          amp_level=amp_level, progress=progress, skip_bad_samples=skip_bad_samples,
                          **options)
    for line in format_result(result, class_names(len(result.class_iou))):
        print_fn(line)
    return result
