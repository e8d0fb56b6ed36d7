"""What trivial predictors score on a Cityscapes-layout dataset: the bar a model must clear.

- constant: the most frequent training class everywhere;
- sky/road: at each pixel position, whichever of sky and road is more frequent there
  in the training labels;
- position prior: at each pixel position, the most frequent training class there.

Scores are PaddleSeg's mIoU (mean over all classes, absent ones counting 0) and the
mean over the classes present in the evaluated labels.
"""
import glob
import os

import numpy as np

__all__ = ["confusion", "miou_pair", "read_train_ids", "trivial_baselines"]

SKY, ROAD = 10, 0  # Cityscapes train ids


def confusion(pred, label, num_classes=19, ignore_index=255):
    """[num_classes, num_classes] counts, rows = label, columns = prediction."""
    pred, label = np.asarray(pred).ravel(), np.asarray(label).ravel()
    keep = label != ignore_index
    index = num_classes * label[keep].astype(np.int64) + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou_pair(conf):
    """(mIoU over every class as PaddleSeg reports it, mIoU over the classes in the labels)."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    present = conf.sum(1) > 0
    return float(iou.mean()), float(iou[present].mean()) if present.any() else 0.0


def read_train_ids(root, split):
    """[N, H, W] uint8 labelTrainIds of a Cityscapes-layout split (sorted by file name)."""
    from PIL import Image
    paths = sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelTrainIds.png")))
    if not paths:
        from paddleseg_lpsnet.errors import DataError
        raise DataError(f"No *_gtFine_labelTrainIds.png under {os.path.join(root, 'gtFine', split)}.")
    return np.stack([np.asarray(Image.open(p)) for p in paths])


def trivial_baselines(root, num_classes=19, ignore_index=255):
    """{predictor name: (mIoU, mIoU over present classes)} on the val split of `root`."""
    train, val = read_train_ids(root, "train"), read_train_ids(root, "val")
    if train.shape[1:] != val.shape[1:]:
        from paddleseg_lpsnet.errors import DataError
        raise DataError(f"{root}: train and val images differ in size; position baselines need one size.")
    counts = np.stack([(train == c).sum(0) for c in range(num_classes)])  # [C, H, W]
    predictors = {
        "constant": np.full(val.shape[1:], int(counts.sum((1, 2)).argmax())),
        "sky/road": np.where(counts[SKY] > counts[ROAD], SKY, ROAD),
        "position prior": counts.argmax(0),
    }
    return {name: miou_pair(sum(confusion(pred, v, num_classes, ignore_index) for v in val))
            for name, pred in predictors.items()}
