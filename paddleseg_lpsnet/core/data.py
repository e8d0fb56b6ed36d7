"""Reading samples for training and evaluation: errors that name the file, never a hang.

Two problems of PaddleSeg 2.8 readers on Paddle 3.3.1 are solved here:

- A sample that fails to load raises from deep inside a transform (for an unreadable
  image, `'NoneType' object has no attribute 'astype'`), naming no file.
  `CheckedDataset` names the sample's files and checks what PaddleSeg does not:
  image and label sizes agree, label values are classes or ignore_index.
- Paddle's DataLoader hangs forever when the dataset raises with num_workers=0 (the
  reader thread dies, the main thread waits on its queue), and with workers the main
  process sees only "Blocking queue is killed". Here, num_workers=0 reads in the main
  thread, and with workers a failed sample travels to the main process as a batch
  that carries the message, which is raised there as DataError.

With a seed, every sample's augmentation is drawn from (seed, epoch, index), so a run
is reproducible whatever num_workers is, and a resumed run sees the same samples.
"""
import itertools
import os
import random

import numpy as np
import paddle
from paddle.io.dataloader.collate import default_collate_fn

from paddleseg_lpsnet.errors import DataError

__all__ = ["CheckedDataset", "SampleError", "collate", "iterate_batches", "epoch_batches",
           "rank_indices", "sample_files"]

_ERROR_KEY = "__lpsnet_sample_error__"


class SampleError:
    """A failed sample, carried as data through DataLoader workers."""

    def __init__(self, message):
        self.message = message


def sample_files(dataset, index):
    """(image path, label path or None) of a PaddleSeg dataset's sample, or None if unknown."""
    file_list = getattr(dataset, "file_list", None)
    if file_list is None or not 0 <= index < len(file_list):
        return None
    entry = file_list[index]
    return entry[0], (entry[1] if len(entry) > 1 else None)


def _image_size(path, role, where):
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.size  # (width, height)
    except Exception as exc:  # noqa: BLE001 (PIL raises many types for bad files)
        raise DataError(f"{where}: Cannot read {role} {path}: {type(exc).__name__}: {exc}. "
                        "Expected an image file (PNG, JPEG, ...).") from exc


def _seed_sample(seed, epoch, index):
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2)
    random.seed(int(state[0]))
    np.random.seed(int(state[1]))


class CheckedDataset(paddle.io.Dataset):
    """Wraps a PaddleSeg dataset: failures name the sample's files; labels are checked.

    Args:
        dataset (paddle.io.Dataset): A PaddleSeg dataset (has num_classes, ignore_index,
            and usually file_list of [image, label] paths).
        name (str): How messages call the dataset, e.g. "train_dataset".
        seed (int, optional): Seed augmentations per (seed, epoch, index). Default: None.
    """

    def __init__(self, dataset, name, seed=None):
        self.dataset = dataset
        self.name = name
        self.seed = seed
        self.epoch = 0
        self.errors_as_values = False  # set while DataLoader workers read it
        self.num_classes = getattr(dataset, "num_classes", None)
        self.ignore_index = getattr(dataset, "ignore_index", 255)

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):  # file_list, transforms, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def where(self, index):
        files = sample_files(self.dataset, index)
        if files is None:
            return f"{self.name} sample {index}"
        image, label = files
        return f"{self.name} sample {index} (image {image}" + (f", label {label})" if label else ")")

    def __getitem__(self, index):
        try:
            return self._load(index)
        except Exception as exc:  # noqa: BLE001 (anything a transform raises)
            message = str(exc) if isinstance(exc, DataError) else self._diagnose(index, exc)
            if self.errors_as_values:
                return SampleError(message)
            raise DataError(message) from exc

    def _diagnose(self, index, exc):
        """The message for an exception from the wrapped dataset: an undecodable image, or as raised."""
        import cv2
        files = sample_files(self.dataset, index)
        if files is not None and cv2.imread(files[0], cv2.IMREAD_UNCHANGED) is None:
            return (f"{self.where(index)}: the image {files[0]} cannot be decoded (corrupt or truncated "
                    "file, or a format OpenCV does not read).")
        return f"{self.where(index)}: {type(exc).__name__}: {exc}"

    def _load(self, index):
        self._check_files(index)
        if self.seed is not None:
            _seed_sample(self.seed, self.epoch, index)
        sample = self.dataset[index]
        self._check_label(index, sample)
        return sample

    def _check_files(self, index):
        files = sample_files(self.dataset, index)
        if files is None:
            return
        image, label = files
        for role, path in (("image", image), ("label", label)):
            if path is not None and not os.path.isfile(path):
                raise DataError(f"{self.where(index)}: the {role} file {path} does not exist.")
        if label is None:
            return
        where = self.where(index)
        image_size, label_size = _image_size(image, "image", where), _image_size(label, "label", where)
        if image_size != label_size:
            raise DataError(f"{self.where(index)}: image is {image_size[0]}x{image_size[1]} but label is "
                            f"{label_size[0]}x{label_size[1]} (width x height); they must be the same size.")

    def _check_label(self, index, sample):
        if self.num_classes is None or not isinstance(sample, dict) or "label" not in sample:
            return
        label = np.asarray(sample["label"])
        bad = (label < 0) | ((label >= self.num_classes) & (label != self.ignore_index))
        if bad.any():
            values = np.unique(label[bad])
            shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
            raise DataError(f"{self.where(index)}: label values {shown} are outside 0..{self.num_classes - 1} "
                            f"and are not ignore_index {self.ignore_index}. Expected train ids "
                            "(for Cityscapes, *_labelTrainIds.png, not *_labelIds.png).")


def collate(samples):
    """default_collate_fn, except that a failed sample or batch becomes an error batch."""
    for sample in samples:
        if isinstance(sample, SampleError):
            return _error_batch(sample.message)
    try:
        return default_collate_fn(samples)
    except Exception as exc:  # noqa: BLE001
        return _error_batch(f"Cannot batch {len(samples)} samples: {type(exc).__name__}: {exc}. "
                            "Do the transforms give every sample the same size (a crop)?")


def _error_batch(message):
    return {_ERROR_KEY: np.frombuffer(message.encode("utf-8"), np.uint8).copy()}


def _raise_if_error(batch):
    if isinstance(batch, dict) and _ERROR_KEY in batch:
        raw = batch[_ERROR_KEY]
        raw = raw.numpy() if hasattr(raw, "numpy") else np.asarray(raw)
        raise DataError(bytes(raw.astype(np.uint8).reshape(-1)).decode("utf-8"))
    return batch


def _to_tensors(batch):
    if isinstance(batch, np.ndarray):
        return paddle.to_tensor(batch)
    if isinstance(batch, dict):
        return {k: _to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return [_to_tensors(v) for v in batch]
    return batch


def epoch_batches(batch_sampler, epoch, seed=None):
    """The index batches of one epoch; the shuffle depends only on (seed, epoch)."""
    if hasattr(batch_sampler, "set_epoch"):
        mixed = np.random.SeedSequence([seed or 0, epoch]).generate_state(1)[0]
        batch_sampler.set_epoch(int(mixed))
    return [list(b) for b in batch_sampler]


def rank_indices(num_samples, rank, nranks):
    """Evaluation indices of one rank: every nranks-th sample, no padding, no duplicate."""
    return list(range(rank, num_samples, nranks))


def iterate_batches(dataset, batches, num_workers=0, start=0):
    """Yield the batches (lists of indices) of `dataset` as dicts of tensors.

    num_workers=0 reads in the calling thread; otherwise Paddle's DataLoader with that
    many worker processes. A failed sample raises DataError naming its files.
    `start` skips that many batches without reading them.
    """
    batches = list(itertools.islice(batches, start, None))
    if not batches:
        return
    if num_workers == 0:
        for indices in batches:
            yield _to_tensors(_raise_if_error(collate([dataset[i] for i in indices])))
        return
    if isinstance(dataset, CheckedDataset):
        dataset.errors_as_values = True
    loader = paddle.io.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                  collate_fn=collate, return_list=True)
    try:
        for batch in loader:
            yield _raise_if_error(batch)
    except SystemError as exc:
        if "Blocking queue is killed" not in str(exc):
            raise
        raise DataError(f"A DataLoader worker reading {getattr(dataset, 'name', 'the dataset')} "
                        "failed (its traceback is printed above).") from exc
    finally:
        if isinstance(dataset, CheckedDataset):
            dataset.errors_as_values = False
