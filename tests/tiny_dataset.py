"""Tiny segmentation datasets on disk for the engine tests (train, val, bad input).

Images are horizontal bands whose colour encodes the class (plus noise), so a tiny
model can learn them in a few iterations; a few pixels are ignore_index.
"""
import os

import cv2
import numpy as np
import yaml

NUM_CLASSES = 4
IGNORE = 255
# class -> RGB colour of its band
_COLOURS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]], np.float32)


def make_sample(rng, height=64, width=128, num_classes=NUM_CLASSES, ignore_fraction=0.02):
    """(RGB uint8 [H, W, 3], label uint8 [H, W]) with random class bands; about
    `ignore_fraction` of the pixels are IGNORE."""
    cuts = np.sort(rng.choice(np.arange(8, height - 8), size=num_classes - 1, replace=False))
    classes = rng.permutation(num_classes)
    label = np.zeros((height, width), np.uint8)
    bounds = [0, *cuts.tolist(), height]
    for band, cls in enumerate(classes):
        label[bounds[band]:bounds[band + 1]] = cls
    image = _COLOURS[label] + rng.normal(0, 20, (height, width, 3))
    label[rng.random_sample((height, width)) < ignore_fraction] = IGNORE
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(path, array), path


def write_generic(root, num_train=8, num_val=3, height=64, width=128, seed=0, ignore_fraction=0.02):
    """PaddleSeg `Dataset` layout: images/, labels/, train.txt, val.txt. Returns root."""
    rng = np.random.RandomState(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        lines = []
        for i in range(count):
            image, label = make_sample(rng, height, width, ignore_fraction=ignore_fraction)
            img_rel, lab_rel = f"images/{split}_{i}.png", f"labels/{split}_{i}.png"
            write_png(os.path.join(root, img_rel), image)
            write_png(os.path.join(root, lab_rel), label)
            lines.append(f"{img_rel} {lab_rel}")
        with open(os.path.join(root, f"{split}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return str(root)


def write_cityscapes(root, num_train=4, num_val=2, height=64, width=128, seed=0):
    """Cityscapes layout (leftImg8bit / gtFine labelTrainIds), classes 0..3 of 19."""
    rng = np.random.RandomState(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        for i in range(count):
            image, label = make_sample(rng, height, width)
            stem = f"tiny_{i:06d}_000019"
            write_png(os.path.join(root, "leftImg8bit", split, "tiny", f"{stem}_leftImg8bit.png"), image)
            write_png(os.path.join(root, "gtFine", split, "tiny", f"{stem}_gtFine_labelTrainIds.png"), label)
    return str(root)


def generic_config(root, model=None, **top):
    """A config dict training on write_generic(root): tiny LPS-Net, CE loss, SGD."""
    transforms = [{"type": "Normalize"}]
    dataset = dict(type="Dataset", dataset_root=str(root), num_classes=NUM_CLASSES,
                   train_path=os.path.join(str(root), "train.txt"),
                   val_path=os.path.join(str(root), "val.txt"), ignore_index=IGNORE)
    cfg = {
        "batch_size": 2,
        "iters": 4,
        "train_dataset": dict(dataset, mode="train",
                              transforms=[{"type": "RandomHorizontalFlip"}, *transforms]),
        "val_dataset": dict(dataset, mode="val", transforms=transforms),
        "model": model or tiny_lpsnet(),
        "optimizer": {"type": "SGD", "momentum": 0.9, "weight_decay": 4.0e-5},
        "lr_scheduler": {"type": "PolynomialDecay", "learning_rate": 0.05, "end_lr": 0.0, "power": 0.9},
        "loss": {"types": [{"type": "CrossEntropyLoss"}], "coef": [1]},
    }
    cfg.update(top)
    return cfg


def tiny_lpsnet():
    return {"type": "LPSNetSeg", "num_classes": NUM_CLASSES,
            "backbone": {"type": "LPSNetBackbone", "depths": [1, 1, 1, 1, 1],
                         "channels": [4, 8, 16, 32, 32], "scale_ratios": [1.0]}}


def write_config(path, cfg):
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return str(path)
