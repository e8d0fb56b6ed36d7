"""Does a model learn the generated street scenes? Val mIoU vs trivial baselines.

Trains the model of a config on data from `lpsnet data synth` with a minimal Paddle
loop (the config's model, datasets + transforms, optimizer and LR schedule via
PaddleSeg's SegBuilder; the loss is paddle.nn.functional.cross_entropy with
ignore_index 255), evaluates on the val split every --eval_every iterations and at
the end, and prints a table next to what trivial predictors get on the same split:

- constant: the most frequent train class everywhere;
- sky/road: per pixel position, whichever of sky or road is more frequent there
  in the train labels;
- position prior: per pixel position, the most frequent train class there.

mIoU is PaddleSeg's: the mean over all 19 classes (a class absent from both the
labels and the predictions counts 0); "mIoU present" averages the classes present
in the val labels only.

    python benchmarks/synth_learnability.py --config configs/demo/lpsnet_s_synth.yml \\
        --data data/synth_cityscapes [--iters 300] [--time_budget 180]

Generates the data first (with --num_train/--num_val/--size/--seed) if --data does
not exist. Wall times depend on the machine and its load: report iterations.
`--init dirac` starts the shape-preserving 3x3 convs as identities, an experiment
on how fast a deep plain net like LPS-Net trains from scratch.
"""
import argparse
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SKY, ROAD, IGNORE = 10, 0, 255


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo/lpsnet_s_synth.yml")
    p.add_argument("--data", default="data/synth_cityscapes")
    p.add_argument("--num_train", type=int, default=300)
    p.add_argument("--num_val", type=int, default=60)
    p.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument("--train_seed", type=int, default=0)
    p.add_argument("--iters", type=int, default=None, help="default: the config's")
    p.add_argument("--batch_size", type=int, default=None, help="default: the config's")
    p.add_argument("--learning_rate", type=float, default=None, help="default: the config's")
    p.add_argument("--time_budget", type=float, default=None, help="stop training after S seconds")
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--init", choices=["default", "dirac"], default="default",
                   help="dirac: start every stride-1 3x3 conv with as many inputs as outputs "
                        "as the identity (plus N(0, 0.01) noise): an experiment on training "
                        "deep plain nets from scratch, not what the model does by itself")
    p.add_argument("--opts", nargs="+", default=None)
    return p.parse_args()


def confusion(pred, label, n=19):
    keep = label != IGNORE
    return np.bincount(n * label[keep].astype(np.int64) + pred[keep], minlength=n * n).reshape(n, n)


def ious(conf):
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def miou_pair(conf):
    """(mIoU over 19 classes as PaddleSeg reports it, mIoU over classes in the labels)."""
    iou = ious(conf)
    present = conf.sum(1) > 0
    return float(iou.mean()), float(iou[present].mean())


def read_labels(data, split):
    from PIL import Image
    paths = sorted(glob.glob(os.path.join(data, "gtFine", split, "*", "*_gtFine_labelTrainIds.png")))
    return np.stack([np.asarray(Image.open(p)) for p in paths])


def baselines(data):
    """Confusion matrices of the trivial predictors on the val labels."""
    train, val = read_labels(data, "train"), read_labels(data, "val")
    if train.shape[1:] != val.shape[1:]:
        raise SystemExit("train and val images differ in size; the position baselines need one size")
    counts = np.stack([(train == c).sum(0) for c in range(19)])      # [19, H, W]
    constant = np.full(val.shape[1:], int(counts.sum((1, 2)).argmax()))
    sky_road = np.where(counts[SKY] > counts[ROAD], SKY, ROAD)
    prior = counts.argmax(0)
    out = {}
    for name, pred in (("constant", constant), ("sky/road", sky_road), ("position prior", prior)):
        out[name] = sum(confusion(pred.ravel(), v.ravel()) for v in val)
    return out


def dirac_init(model, rng):
    """Identity-initialise the shape-preserving 3x3 convs; returns how many."""
    import paddle.nn as nn
    count = 0
    for layer in model.sublayers():
        if (isinstance(layer, nn.Conv2D) and list(layer._stride) == [1, 1]
                and list(layer._kernel_size) == [3, 3] and layer._in_channels == layer._out_channels
                and layer._groups == 1):
            w = rng.normal(0, 0.01, layer.weight.shape).astype("float32")
            idx = np.arange(layer._out_channels)
            w[idx, idx, 1, 1] += 1.0
            layer.weight.set_value(w)
            count += 1
    return count


def evaluate(model, dataset):
    import paddle
    model.eval()
    conf = np.zeros((19, 19), np.int64)
    with paddle.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            img = paddle.to_tensor(sample["img"][None])
            pred = model(img)[0].argmax(1).numpy()[0]
            conf += confusion(pred.ravel(), np.asarray(sample["label"]).reshape(-1))
    model.train()
    return conf


def main():
    args = parse_args()
    if not os.path.isdir(args.data):
        from paddleseg_lpsnet.datasets.synth_cityscapes import generate_dataset
        t = time.time()
        generate_dataset(args.data, args.num_train, args.num_val, tuple(args.size), args.seed)
        print(f"generated {args.num_train}+{args.num_val} images in {time.time() - t:.0f}s")

    import paddle
    import paddle.nn.functional as F
    from paddleseg.cvlibs import SegBuilder
    import paddleseg_lpsnet  # noqa: F401
    from paddleseg_lpsnet.utils.config import load_config

    paddle.seed(args.train_seed)
    np.random.seed(args.train_seed)
    opts = [f"train_dataset.dataset_root={args.data}", f"val_dataset.dataset_root={args.data}"]
    cfg = load_config(args.config, opts=opts + (args.opts or []), iters=args.iters,
                      batch_size=args.batch_size, learning_rate=args.learning_rate)
    builder = SegBuilder(cfg)
    model, optimizer = builder.model, builder.optimizer
    if args.init == "dirac":
        print(f"dirac init: {dirac_init(model, np.random.RandomState(args.train_seed))} convs")
    train_ds, val_ds = builder.train_dataset, builder.val_dataset
    loader = paddle.io.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                                  drop_last=True, num_workers=0)
    base = {k: miou_pair(c) for k, c in baselines(args.data).items()}

    print(f"{args.config}: batch {cfg.batch_size}, {cfg.iters} iters, "
          f"{len(train_ds)} train / {len(val_ds)} val images")
    rows, it, train_time, cpu_time, losses, done = [], 0, 0.0, 0.0, [], False
    model.train()
    while not done:
        for batch in loader:
            t, c = time.time(), time.process_time()
            logits = model(batch["img"])[0]
            loss = F.cross_entropy(logits, batch["label"].astype("int64").unsqueeze(1),
                                   axis=1, ignore_index=IGNORE)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            optimizer._learning_rate.step()
            losses.append(float(loss))
            it += 1
            train_time += time.time() - t  # data loading and evaluation excluded
            cpu_time += time.process_time() - c
            done = it >= cfg.iters or (args.time_budget is not None and train_time > args.time_budget)
            if it % args.eval_every == 0 or done:
                conf = evaluate(model, val_ds)
                rows.append((it, train_time, np.mean(losses[-20:]), *miou_pair(conf), ious(conf)))
                print(f"iter {it}: loss {rows[-1][2]:.4f}  val mIoU {rows[-1][3]:.4f}  "
                      f"(present {rows[-1][4]:.4f})  [train {train_time:.0f}s, cpu {cpu_time:.0f}s]  IoU "
                      + " ".join(f"{v:.2f}" for v in rows[-1][5]), flush=True)
            if done:
                break

    from cityscapesscripts.helpers.labels import trainId2label
    print("\n| predictor | iters | mIoU (19 classes) | mIoU (classes present) |")
    print("|---|---|---|---|")
    for name, (m19, mp) in base.items():
        print(f"| {name} | - | {m19:.4f} | {mp:.4f} |")
    for it, _, _, m19, mp, _ in rows:
        print(f"| model | {it} | {m19:.4f} | {mp:.4f} |")
    print("\nper-class IoU at the end: " + ", ".join(
        f"{trainId2label[c].name} {v:.2f}" for c, v in enumerate(rows[-1][5]) if v > 0))


if __name__ == "__main__":
    main()
