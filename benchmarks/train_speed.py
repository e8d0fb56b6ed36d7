"""Training throughput of `lpsnet train`: our LPS-Net against PaddleSeg's LPSNet, same config, same run.

Both models train through the same `lpsnet train` loop (paddleseg_lpsnet.core.train)
on the same config -- data pipeline, loss, optimizer, batch size, crop -- only the
`model` section differs: ours (the config's) or upstream's `LPSNet` with the same
depths, channels and scale ratios. Each step's end is time-stamped; iterations per
second are taken over the steps after the warm-up, median over `--rounds` rounds that
alternate the two models.

    python benchmarks/train_speed.py                                  # configs/lpsnet/lpsnet_m.yml as it is
    python benchmarks/train_speed.py --crop 384x768 --batch_size 2   # a quicker look on a CPU

Data: `--data` (a Cityscapes layout), or by default synthetic images and labels
(random content: throughput does not depend on it) of `--image_size`.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
import yaml
from common import ROOT, main_with_errors


def write_synthetic_cityscapes(root, num_images, height, width, seed=0):
    """A Cityscapes layout (leftImg8bit / gtFine labelTrainIds) of random blocky scenes, 19 classes."""
    rng = np.random.RandomState(seed)
    for i in range(num_images):
        stem = f"synth_{i:06d}_000019"
        coarse = rng.randint(0, 19, (max(height // 64, 1), max(width // 64, 1))).astype(np.uint8)
        label = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
        image = (rng.uniform(0, 255, (height, width, 3)) * 0.3 + label[..., None] * 9).astype(np.uint8)
        for sub, name, array in (("leftImg8bit", f"{stem}_leftImg8bit.png", image),
                                 ("gtFine", f"{stem}_gtFine_labelTrainIds.png", label)):
            folder = os.path.join(root, sub, "train", "synth")
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(os.path.join(folder, name), array)
    return root


def upstream_model(model_cfg):
    """PaddleSeg's LPSNet with the architecture of our config's LPS-Net model section."""
    from paddleseg_lpsnet.models.backbones.lpsnet import LPSNET_ARCHS
    backbone = model_cfg.get("backbone") or {}
    kind = backbone.get("type", "")
    if kind.startswith("LPSNetBackbone_"):
        arch = LPSNET_ARCHS[kind.rsplit("_", 1)[1]]
    elif kind == "LPSNetBackbone":
        arch = {k: backbone[k] for k in ("depths", "channels", "scale_ratios")}
    else:
        raise SystemExit(f"The config's model is not an LPS-Net (backbone type {kind!r}).")
    return {"type": "LPSNet", "num_classes": model_cfg["num_classes"], "depths": list(arch["depths"]),
            "channels": list(arch["channels"]), "scale_ratios": list(arch["scale_ratios"])}


def set_crop(transforms, crop):
    for t in transforms:
        if t.get("type") == "RandomPaddingCrop":
            t["crop_size"] = [crop[1], crop[0]]  # PaddleSeg: [width, height]
            return
    raise SystemExit("The config's train transforms have no RandomPaddingCrop to set --crop on.")


def flat_configs(config_path, workdir, data_root, batch_size, crop):
    """(ours, upstream) config files: the config merged, with the data, batch and crop overrides."""
    from paddleseg_lpsnet.utils.config import load_config
    dic = load_config(config_path).dic
    dic["train_dataset"]["dataset_root"] = data_root
    dic["train_dataset"]["mode"] = "train"
    dic.pop("val_dataset", None)
    if batch_size:
        dic["batch_size"] = batch_size
    if crop:
        set_crop(dic["train_dataset"]["transforms"], crop)
    dic["model"] = dict(dic["model"])
    if dic["model"].get("backbone", {}).get("pretrained") is not None:
        dic["model"]["backbone"] = dict(dic["model"]["backbone"], pretrained=None)
    paths = []
    for name, model in (("ours", dic["model"]), ("upstream", upstream_model(dic["model"]))):
        path = os.path.join(workdir, f"{name}.yml")
        with open(path, "w") as f:
            yaml.safe_dump(dict(dic, model=model), f, sort_keys=False)
        paths.append(path)
    return paths, dic


def timed_train(config, save_dir, iters, seed, clock=time.perf_counter):
    """Train `iters` iterations with `lpsnet train`'s loop; returns `clock` at the end of every step."""
    from paddleseg_lpsnet.core import train as train_module
    stamps = []
    original = train_module.Trainer.train_step

    def stamped(self, batch):
        out = original(self, batch)
        float(out.total)  # wait for the step's result
        stamps.append(clock())
        return out

    train_module.Trainer.train_step = stamped
    try:
        train_module.train(config, save_dir=save_dir, iters=iters, save_interval=10 ** 9, log_iters=10 ** 9,
                           keep_checkpoint_max=1, seed=seed, device="cpu", progress=False)
    finally:
        train_module.Trainer.train_step = original
    return stamps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "lpsnet", "lpsnet_m.yml"))
    parser.add_argument("--batch_size", type=int, default=None, help="default: the config's")
    parser.add_argument("--crop", default=None, help="HxW of RandomPaddingCrop; default: the config's")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per round (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the models (default 2)")
    parser.add_argument("--data", default=None, help="a Cityscapes layout; default: synthetic images")
    parser.add_argument("--image_size", default="1024x2048", help="HxW of the synthetic images")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or the process's CPU time: steadier on a shared machine (use with "
                             "--cpu_threads 1, or spinning worker threads count too)")
    parser.add_argument("--cpu_threads", type=int, default=None,
                        help="math library threads (OMP/MKL/OpenBLAS, set before Paddle loads); default: theirs")
    parser.add_argument("--save_dir", default=os.path.join(ROOT, "benchmarks", "results", "train_speed"))
    args = parser.parse_args(argv)
    if args.cpu_threads:
        if "paddle" in sys.modules:
            parser.error("--cpu_threads must be set before Paddle is imported")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.cpu_threads)

    from paddleseg_lpsnet.deploy.benchmark import machine_info
    from paddleseg_lpsnet.deploy.suite import parse_size
    crop = parse_size(args.crop) if args.crop else None
    if args.iters < 2 or args.warmup < 1:
        parser.error("--iters must be >= 2 and --warmup >= 1")
    results = {"ours": [], "upstream": []}
    with tempfile.TemporaryDirectory(prefix="lpsnet-train-speed-") as workdir:
        data = args.data
        if data is None:
            h, w = parse_size(args.image_size)
            data = write_synthetic_cityscapes(os.path.join(workdir, "data"), 8, h, w)
        (ours_cfg, upstream_cfg), dic = flat_configs(args.config, workdir, data, args.batch_size, crop)
        for r in range(args.rounds):
            for name, cfg in (("ours", ours_cfg), ("upstream", upstream_cfg))[::1 if r % 2 == 0 else -1]:
                stamps = timed_train(cfg, os.path.join(workdir, f"{name}_{r}"), args.warmup + args.iters, seed=r,
                                     clock=time.perf_counter if args.clock == "wall" else time.process_time)
                steps = np.diff(stamps[args.warmup - 1:])
                results[name].append(1.0 / float(np.median(steps)))
                print(f"round {r + 1}: {name} {results[name][-1]:.3f} it/s "
                      f"(median step {1000 * np.median(steps):.0f} ms over {len(steps)} steps)")
    ours, upstream = float(np.median(results["ours"])), float(np.median(results["upstream"]))
    crop_hw = next(t["crop_size"] for t in dic["train_dataset"]["transforms"] if t["type"] == "RandomPaddingCrop")
    info = machine_info(args.cpu_threads)
    lines = [f"`lpsnet train` throughput, {os.path.relpath(args.config, ROOT)}: batch {dic['batch_size']}, crop "
             f"{crop_hw[1]}x{crop_hw[0]}, loss {dic['loss']['types'][0]['type']}; {args.clock} clock; "
             f"{args.warmup} warm-up + "
             f"{args.iters} timed iterations x {args.rounds} rounds; {info['cpu']}, {info['usable_cores']} cores, "
             f"Paddle {info['paddle']}, load average {os.getloadavg()[0]:.2f}", "",
             "| model | it/s (median of rounds) | rounds |", "|---|---:|---|",
             f"| ours ({dic['model']['type']}) | {ours:.3f} | {', '.join(f'{v:.3f}' for v in results['ours'])} |",
             f"| upstream (PaddleSeg LPSNet) | {upstream:.3f} | "
             f"{', '.join(f'{v:.3f}' for v in results['upstream'])} |", "",
             f"ours / upstream: {ours / upstream:.2f}x"]
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    os.makedirs(args.save_dir, exist_ok=True)
    with open(os.path.join(args.save_dir, "train_speed.json"), "w") as f:
        json.dump({"config": args.config, "batch_size": dic["batch_size"], "crop_hw": crop_hw[::-1],
                   "clock": args.clock, "cpu_threads": args.cpu_threads,
                   "iters_per_s": results, "ratio": ours / upstream, "machine": info}, f, indent=1)
    with open(os.path.join(args.save_dir, "train_speed.md"), "w") as f:
        f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main_with_errors(main))
