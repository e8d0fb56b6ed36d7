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
The demo config starts LPS-Net's shape-preserving convs as identities
(`identity_init`); `--opts model.backbone.identity_init=False` measures without.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from paddleseg_lpsnet.datasets.baselines import confusion, miou_pair, trivial_baselines  # noqa: E402

IGNORE = 255


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
    p.add_argument("--opts", nargs="+", default=None)
    return p.parse_args()


def class_ious(conf):
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def evaluate(model, dataset):
    import paddle
    model.eval()
    conf = np.zeros((19, 19), np.int64)
    with paddle.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            img = paddle.to_tensor(sample["img"][None])
            pred = model(img)[0].argmax(1).numpy()[0]
            conf += confusion(pred, sample["label"], 19, IGNORE)
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
    train_ds, val_ds = builder.train_dataset, builder.val_dataset
    loader = paddle.io.DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                                  drop_last=True, num_workers=0)
    base = trivial_baselines(args.data, ignore_index=IGNORE)

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
                rows.append((it, train_time, np.mean(losses[-20:]), *miou_pair(conf), class_ious(conf)))
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
