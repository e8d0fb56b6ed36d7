"""PaddleClas's `DataLoader` section: ImageNetDataset file lists, transforms, samplers.

The transform operators are PaddleClas's own, from the paddleclas wheel
(`paddleclas.deploy.python.preprocess`: DecodeImage, RandCropImage, RandFlipImage,
ResizeImage, CropImage, NormalizeImage, ToCHWImage), applied to the raw bytes of each
file as PaddleClas's datasets do, then HWC -> CHW. Unlike PaddleClas, which logs an
unreadable image and silently substitutes a random other one, a bad file or list
line raises DataError naming it.
"""
import os

import numpy as np
import paddle

from paddleseg_lpsnet.errors import ConfigError, DataError

__all__ = ["ImageNetDataset", "build_transforms", "build_dataloader", "TRANSFORMS"]

# The operators of the paddleclas wheel that the trainer uses (its AutoAugment is
# broken in the wheel: it returns None).
TRANSFORMS = ("DecodeImage", "RandCropImage", "RandFlipImage", "ResizeImage", "CropImage",
              "NormalizeImage", "ToCHWImage")


def build_transforms(ops_cfg, where):
    """PaddleClas operators from a transform_ops list; DecodeImage must come first."""
    from paddleclas.deploy.python import preprocess
    if not isinstance(ops_cfg, list) or not ops_cfg:
        raise ConfigError(f"{where} must be a list of {{Operator: params}}, starting with DecodeImage.")
    ops = []
    for i, item in enumerate(ops_cfg):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}[{i}]: expected a single {{Operator: params}}, got {item!r}.")
        name, params = next(iter(item.items()))
        if name not in TRANSFORMS:
            raise ConfigError(f"{where}[{i}]: {name} is not among the paddleclas wheel's operators "
                              f"({', '.join(TRANSFORMS)}); PaddleClas's own Engine has the full set.")
        if (i == 0) != (name == "DecodeImage"):
            raise ConfigError(f"{where}: DecodeImage must be the first operator (and only the "
                              f"first), as in PaddleClas's configs; found {name} at {i}.")
        try:
            ops.append(getattr(preprocess, name)(**(params or {})))
        except (AssertionError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}[{i}] {name}: {type(exc).__name__}: {exc}") from exc
    return ops


def _parse_list(list_path, image_root, delimiter):
    """[(image path, label)] from "<relative path><delimiter><label>" lines."""
    if not os.path.isfile(list_path):
        raise DataError(f"File list {list_path} does not exist.")
    if not os.path.isdir(image_root):
        raise DataError(f"Image root {image_root} (of {list_path}) is not a directory.")
    samples = []
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(delimiter)
            if len(parts) != 2 or not parts[1].strip().lstrip("-").isdigit():
                raise DataError(f"{list_path}:{lineno}: expected '<image path>{delimiter}<label>', "
                                f"got {line.strip()!r}.")
            path = os.path.join(image_root, parts[0])
            if not os.path.isfile(path):
                raise DataError(f"{list_path}:{lineno}: image {path} does not exist.")
            samples.append((path, int(parts[1])))
    if not samples:
        raise DataError(f"File list {list_path} lists no images.")
    return samples


class ImageNetDataset(paddle.io.Dataset):
    """PaddleClas's ImageNetDataset: images and integer labels from a file list.

    Args:
        image_root (str): Directory the list's paths are relative to.
        cls_label_path (str): File list, one "<path><delimiter><label>" per line.
        transform_ops (list): PaddleClas operators config, DecodeImage first.
        delimiter (str, optional): Separator of path and label. Default: " ".
        relabel (bool, optional): Map the sorted distinct labels to 0..n-1. Default: False.
        class_num (int, optional): If given, every label must lie in [0, class_num).
    """

    def __init__(self, image_root, cls_label_path, transform_ops, delimiter=None, relabel=False,
                 class_num=None):
        super().__init__()
        self.samples = _parse_list(cls_label_path, image_root, delimiter or " ")
        if relabel:
            mapping = {old: new for new, old in enumerate(sorted({lab for _, lab in self.samples}))}
            self.samples = [(p, mapping[lab]) for p, lab in self.samples]
        labels = [lab for _, lab in self.samples]
        if class_num is not None and not 0 <= min(labels) <= max(labels) < class_num:
            bad = next((p, lab) for p, lab in self.samples if not 0 <= lab < class_num)
            raise DataError(f"{cls_label_path}: label {bad[1]} of {bad[0]} is outside [0, {class_num}) "
                            f"(Arch.class_num is {class_num}).")
        self.ops = build_transforms(transform_ops, f"transform_ops of {cls_label_path}")

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        path, label = self.samples[idx]
        with open(path, "rb") as f:
            img = f.read()
        try:
            for op in self.ops:
                img = op(img)
            img = np.ascontiguousarray(np.asarray(img).transpose((2, 0, 1)))
        except Exception as exc:  # the operators raise assorted errors on bad images
            raise DataError(f"Image {path} cannot be decoded or transformed: "
                            f"{type(exc).__name__}: {exc}") from exc
        return img.astype("float32"), np.int64(label)


def _shard(dataset, rank, world_size):
    """Every world_size-th sample from `rank`: the ranks together see each sample once."""
    return paddle.io.Subset(dataset, list(range(rank, len(dataset), world_size)))


def build_dataloader(loader_cfg, mode, class_num=None, rank=0, world_size=1):
    """A paddle DataLoader for DataLoader.<mode> (Train or Eval).

    Train: DistributedBatchSampler shards and reshuffles per epoch (set_epoch), as in
    PaddleClas. Eval with DistributedBatchSampler: each rank gets an exact shard (no
    padding), so summed counts over the ranks cover every image once.
    """
    where = f"DataLoader.{mode}"
    part = loader_cfg[mode]
    ds_cfg = {k: v for k, v in part["dataset"].items() if k != "name"}
    for key in ("image_root", "cls_label_path", "transform_ops"):
        if key not in ds_cfg:
            raise ConfigError(f"{where}.dataset.{key} must be set.")
    dataset = ImageNetDataset(class_num=class_num, **ds_cfg)
    sampler_cfg = dict(part.get("sampler") or {})
    if not isinstance(sampler_cfg.get("batch_size"), int) or sampler_cfg["batch_size"] < 1:
        raise ConfigError(f"{where}.sampler.batch_size must be a positive integer, "
                          f"got {sampler_cfg.get('batch_size')!r}.")
    kwargs = dict(batch_size=sampler_cfg["batch_size"],
                  shuffle=bool(sampler_cfg.get("shuffle", mode == "Train")),
                  drop_last=bool(sampler_cfg.get("drop_last", False)))
    distributed = sampler_cfg.get("name", "DistributedBatchSampler") == "DistributedBatchSampler"
    if distributed and mode == "Train":
        data = dataset
        sampler = paddle.io.DistributedBatchSampler(data, num_replicas=world_size, rank=rank, **kwargs)
    else:
        data = _shard(dataset, rank, world_size) if distributed else dataset
        sampler = paddle.io.BatchSampler(data, **kwargs)
    loader = dict(part.get("loader") or {})
    return paddle.io.DataLoader(data, batch_sampler=sampler, num_workers=loader.get("num_workers", 0),
                                use_shared_memory=loader.get("use_shared_memory", True), return_list=True)
