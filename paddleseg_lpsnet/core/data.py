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

On request (`--skip_bad_samples`) a bad sample is skipped instead, and its message
reaches the main process the same way, to be shown as a warning: in training it is
replaced by the next good sample of the dataset (batches keep their size, so every
rank still takes the same steps); in evaluation it is left out of the metrics.

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
           "rank_indices", "sample_files", "BAD_SAMPLE_POLICIES"]

_ERROR_KEY = "__lpsnet_sample_error__"
_SKIPPED_KEY = "__lpsnet_skipped_samples__"
_SEPARATOR = "\x00"
# What CheckedDataset does with a sample that fails to load.
BAD_SAMPLE_POLICIES = ("error", "replace", "drop")


class SampleError:
    """A failed sample, carried as data through DataLoader workers."""

    def __init__(self, message):
        self.message = message


class _Skipped:
    """A sample left out (policy "drop"), or one that stands in for bad ones ("replace")."""

    def __init__(self, messages, sample=None):
        self.messages = messages
        self.sample = sample


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
        bad_samples (str, optional): A sample that fails to load: "error" raises DataError;
            "replace" returns the next good sample instead (training); "drop" leaves it
            out (evaluation). Skipped samples' messages reach iterate_batches' `on_skip`.
            Default: "error".
    """

    def __init__(self, dataset, name, seed=None, bad_samples="error"):
        if bad_samples not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"bad_samples must be one of {BAD_SAMPLE_POLICIES}, not {bad_samples!r}.")
        self.dataset = dataset
        self.name = name
        self.seed = seed
        self.bad_samples = bad_samples
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
            message = self._message(index, exc)
            if self.bad_samples == "drop":
                return _Skipped([message])
            if self.bad_samples == "replace":
                return self._replacement(index, message)
            if self.errors_as_values:
                return SampleError(message)
            raise DataError(message) from exc

    def _message(self, index, exc):
        return str(exc) if isinstance(exc, DataError) else self._diagnose(index, exc)

    def _replacement(self, index, message):
        """The next sample after `index` (cyclically) that loads, carrying the skipped messages."""
        messages = [message]
        for step in range(1, len(self)):
            other = (index + step) % len(self)
            try:
                return _Skipped(messages, self._load(other))
            except Exception as exc:  # noqa: BLE001
                messages.append(self._message(other, exc))
        failure = SampleError(f"No sample of {self.name} loads; the first failure: {message}")
        if self.errors_as_values:
            return failure
        raise DataError(failure.message)

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
    """default_collate_fn, except that a failed sample or batch becomes an error batch,
    and skipped samples are left out, their messages carried in the batch."""
    kept, skipped = [], []
    for sample in samples:
        if isinstance(sample, SampleError):
            return _error_batch(sample.message)
        if isinstance(sample, _Skipped):
            skipped.extend(sample.messages)
            sample = sample.sample
        if sample is not None:
            kept.append(sample)
    try:
        batch = default_collate_fn(kept) if kept else {}
    except Exception as exc:  # noqa: BLE001
        return _error_batch(f"Cannot batch {len(samples)} samples: {type(exc).__name__}: {exc}. "
                            "Do the transforms give every sample the same size (a crop)?")
    if skipped:
        batch[_SKIPPED_KEY] = _encode(_SEPARATOR.join(skipped))
    return batch


def _encode(text):
    return np.frombuffer(text.encode("utf-8"), np.uint8).copy()


def _decode(raw):
    raw = raw.numpy() if hasattr(raw, "numpy") else np.asarray(raw)
    return bytes(raw.astype(np.uint8).reshape(-1)).decode("utf-8")


def _error_batch(message):
    return {_ERROR_KEY: _encode(message)}


def _unpack(batch, on_skip):
    """Raise an error batch's DataError; report skipped samples; None for an emptied batch."""
    if not isinstance(batch, dict):
        return batch
    if _ERROR_KEY in batch:
        raise DataError(_decode(batch[_ERROR_KEY]))
    if _SKIPPED_KEY in batch:
        for message in _decode(batch.pop(_SKIPPED_KEY)).split(_SEPARATOR):
            on_skip(message)
    return batch or None


def _warn_skipped(message):
    from paddleseg.utils import logger
    logger.warning(f"Skipped a bad sample: {message}")


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


def iterate_batches(dataset, batches, num_workers=0, start=0, on_skip=None):
    """Yield the batches (lists of indices) of `dataset` as dicts of tensors.

    num_workers=0 reads in the calling thread; otherwise Paddle's DataLoader with that
    many worker processes. A failed sample raises DataError naming its files, unless
    the dataset skips bad samples: then `on_skip(message)` is called in this process
    for each (default: a warning), and a batch left with no sample is yielded as None.
    `start` skips that many batches without reading them.
    """
    on_skip = on_skip or _warn_skipped
    batches = list(itertools.islice(batches, start, None))
    if not batches:
        return
    if num_workers == 0:
        for indices in batches:
            yield _to_tensors(_unpack(collate([dataset[i] for i in indices]), on_skip))
        return
    if isinstance(dataset, CheckedDataset):
        dataset.errors_as_values = True
    loader = paddle.io.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                  collate_fn=collate, return_list=True)
    try:
        for batch in loader:
            yield _unpack(batch, on_skip)
    except SystemError as exc:
        if "Blocking queue is killed" not in str(exc):
            raise
        raise DataError(f"A DataLoader worker reading {getattr(dataset, 'name', 'the dataset')} "
                        "failed (its traceback is printed above).") from exc
    finally:
        if isinstance(dataset, CheckedDataset):
            dataset.errors_as_values = False
