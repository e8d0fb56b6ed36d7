"""`lpsnet scale`: the progressive-scaling search with real measurements, and its outputs.

Latency: each architecture is exported and timed exactly as `lpsnet bench` does
(deploy/benchmark.py: measure_latency), batch 1 at the given input size on the
chosen backend, median of repeated runs after warm-up.
Accuracy: each candidate is trained with a short proxy schedule by `lpsnet train`'s
own trainer on the base config's data and recipe (its model replaced), and its
val mIoU is read.

Outputs in the search directory:
- search.jsonl: settings, every latency measurement and every candidate as soon as known;
- candidates/<arch key>/: the candidate's config and proxy training run;
- configs/step_<i>.yml: the chosen network of each step with the base recipe, ready
  for `lpsnet train --config`;
- frontier.png (latency vs mIoU of all candidates, chosen path highlighted) and summary.md.
"""
import copy
import os
import shutil
from dataclasses import asdict, dataclass
from typing import List, Optional

import yaml

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.scaling.arch import TINY_ARCH, Arch
from paddleseg_lpsnet.scaling.search import ProgressiveScaler, SearchLog, slope
from paddleseg_lpsnet.utils.io import atomic_write_text

LATENCY_OF = {"network": "the network up to its low-resolution logits",
              "deployed": "the deployed model (with the final upsampling and argmax)"}

__all__ = ["ScaleSettings", "candidate_config", "run_scale", "write_outputs"]


@dataclass
class ScaleSettings:
    """What a search measures with; a search resumes only with the same settings."""
    config: str
    input_size: List[int]
    latency_backend: str = "onnxruntime"
    proxy_iters: int = 200
    proxy_batch_size: int = 8
    seed: int = 0
    start: Optional[dict] = None
    max_ratio: float = 1.0
    latency_repeats: int = 10
    latency_warmup: int = 3
    cpu_threads: Optional[int] = None
    latency_of: str = "network"
    latency_clock: str = "wall"

    def identity(self):
        """The settings that make measurements comparable (recorded in search.jsonl)."""
        d = asdict(self)
        d["config"] = os.path.abspath(self.config)
        return d


def _plain(obj):
    """YAML-safe copy (tuples -> lists)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def base_num_classes(dic, path):
    model = dic.get("model") or {}
    n = model.get("num_classes") or (dic.get("train_dataset") or {}).get("num_classes")
    if not n:
        raise ConfigError(f"{path}: set model.num_classes so candidate networks know their classes.")
    return int(n)


# Backbone options of the base config that candidates keep (the architecture is the search's).
_KEPT_BACKBONE_KEYS = ("in_channels", "interaction_begin", "identity_init")


def candidate_config(base_dic, arch, num_classes):
    """The base config (data, recipe) with the model replaced by `arch` as LPSNetSeg.

    Options of the base config's backbone that LPSNetBackbone takes besides the
    architecture (in_channels, interaction_begin, identity_init) are kept.
    """
    dic = copy.deepcopy(_plain(base_dic))
    base_backbone = (dic.get("model") or {}).get("backbone") or {}
    kept = {k: base_backbone[k] for k in _KEPT_BACKBONE_KEYS if k in base_backbone}
    kept.setdefault("in_channels", 3)
    dic["model"] = {"type": "LPSNetSeg", "num_classes": num_classes,
                    "backbone": {"type": "LPSNetBackbone", **kept,
                                 **_plain(arch.backbone_kwargs()), "pretrained": None}}
    return dic


def _write_yaml(dic, path, header=""):
    atomic_write_text(header + yaml.safe_dump(dic, sort_keys=False), path)


class Measurements:
    """The latency and accuracy functions of a search, from its settings."""

    def __init__(self, settings, out, base_dic, num_classes, device="cpu", num_workers=0, echo=print):
        self.settings, self.out, self.base_dic = settings, out, base_dic
        self.num_classes, self.device, self.num_workers, self.echo = num_classes, device, num_workers, echo

    def model(self, arch):
        from paddleseg_lpsnet.models import LPSNetSeg
        from paddleseg_lpsnet.models.backbones import LPSNetBackbone
        return LPSNetSeg(self.num_classes, LPSNetBackbone(**arch.backbone_kwargs()))

    def latency(self, arch):
        """Median latency of `arch`: its network alone (up to the low-resolution logits;
        latency_of "network") or as `lpsnet export` deploys it ("deployed": with the
        final upsampling and argmax)."""
        from paddleseg_lpsnet.deploy.benchmark import lowres_network, measure_latency
        from paddleseg_lpsnet.deploy.suite import CLOCKS
        import paddle
        s = self.settings
        paddle.seed(s.seed)  # the same random weights for a candidate in every run (the argmax's work follows them)
        model = self.model(arch)
        model.eval()
        options = {}
        if s.latency_of == "network":
            model, options = lowres_network(model), {"output_op": "none"}
        stats = measure_latency(model, [1, 3] + list(s.input_size), backend=s.latency_backend,
                                cpu_threads=s.cpu_threads, warmup=s.latency_warmup, repeats=s.latency_repeats,
                                clock=CLOCKS[s.latency_clock], **options)
        return stats.median_ms

    def accuracy(self, arch):
        from paddleseg_lpsnet.core.train import train
        s = self.settings
        folder = os.path.join(self.out, "candidates", arch.key)
        config_path = os.path.join(folder, "config.yml")
        run_dir = os.path.join(folder, "train")
        if os.path.isdir(run_dir):  # a proxy run cut short by a kill: start it again
            shutil.rmtree(run_dir)
        _write_yaml(candidate_config(self.base_dic, arch, self.num_classes), config_path,
                    f"# lpsnet scale candidate {arch.key}: proxy-trained for {s.proxy_iters} iterations\n")
        self.echo(f"[scale]   training {arch.key} ({s.proxy_iters} iters, batch {s.proxy_batch_size})")
        result = train(config_path, save_dir=run_dir, iters=s.proxy_iters, batch_size=s.proxy_batch_size,
                       do_eval=True, save_interval=s.proxy_iters, log_iters=max(1, s.proxy_iters // 5),
                       keep_checkpoint_max=1, seed=s.seed, device=self.device, num_workers=self.num_workers,
                       progress=False)
        if result.last_eval is None:
            raise ConfigError(f"Proxy training of {arch.key} produced no evaluation (val_dataset missing?).")
        return float(result.last_eval.miou)


def run_scale(settings, out, steps, device="cpu", num_workers=0, latency_fn=None, accuracy_fn=None,
              moves=None, echo=print):
    """Run (or resume) a search; returns (chosen path, SearchLog). Writes the outputs."""
    from paddleseg_lpsnet.core.builder import load_checked_config
    cfg = load_checked_config(settings.config)
    base_dic = copy.deepcopy(cfg.dic)
    if not base_dic.get("val_dataset"):
        raise ConfigError(f"{settings.config} has no val_dataset: candidates are ranked by val mIoU.")
    num_classes = base_num_classes(base_dic, settings.config)
    measure = Measurements(settings, out, base_dic, num_classes, device, num_workers, echo)
    log = SearchLog(os.path.join(out, "search.jsonl"), settings.identity())
    extra = {"proxy": {"iters": settings.proxy_iters, "batch_size": settings.proxy_batch_size,
                       "seed": settings.seed, "config": os.path.abspath(settings.config)}}
    kwargs = dict(max_ratio=settings.max_ratio, record_extra=extra, echo=echo)
    if moves is not None:
        kwargs["moves"] = tuple(moves)
    scaler = ProgressiveScaler(latency_fn or measure.latency, accuracy_fn or measure.accuracy, log, **kwargs)
    start = Arch.from_dict(settings.start) if settings.start else TINY_ARCH
    path = scaler.run(start, steps)
    write_outputs(out, log, path, base_dic, num_classes, settings)
    return path, log


def write_outputs(out, log, path, base_dic, num_classes, settings):
    """configs/step_<i>.yml, summary.md and frontier.png for the chosen `path`."""
    for i, cand in enumerate(path):
        header = (f"# lpsnet scale step {i}: {cand.arch}\n# latency {cand.latency_ms:.2f} ms "
                  f"({settings.latency_backend}, 1x3x{settings.input_size[0]}x{settings.input_size[1]}), "
                  f"proxy mIoU {cand.miou:.4f}\n")
        _write_yaml(candidate_config(base_dic, cand.arch, num_classes),
                    os.path.join(out, "configs", f"step_{i}.yml"), header)
    atomic_write_text(summary_table(log, path, settings), os.path.join(out, "summary.md"))
    plot_frontier(log, path, os.path.join(out, "frontier.png"))


def summary_table(log, path, settings):
    lines = [f"# Progressive scaling on {settings.config}",
             "",
             f"Latency: {LATENCY_OF[settings.latency_of]}, {settings.latency_backend}, batch 1, "
             f"1x3x{settings.input_size[0]}x{settings.input_size[1]}, "
             f"{settings.cpu_threads or 'all'} thread(s), {settings.latency_clock} clock, "
             f"median of {settings.latency_repeats} runs. Proxy: {settings.proxy_iters} iterations, "
             f"batch {settings.proxy_batch_size}, seed {settings.seed}.",
             "",
             "| step | move | depths | channels | ratios | latency (ms) | proxy mIoU | slope (mIoU/ms) | candidates |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, cand in enumerate(path):
        n = sum(1 for r in log.candidates if r["step"] == i)
        s = "" if i == 0 else f"{slope(cand, path[i - 1]):.5f}"
        move = "start" if i == 0 else f"{cand.move} x{cand.k}"
        lines.append(f"| {i} | {move} | {','.join(map(str, cand.arch.depths))} | "
                     f"{','.join(map(str, cand.arch.channels))} | "
                     f"{','.join(f'{r:g}' for r in cand.arch.ratios)} | {cand.latency_ms:.2f} | "
                     f"{cand.miou:.4f} | {s} | {n} |")
    lines += ["", "All candidates:", "",
              "| step | move | architecture | latency (ms) | proxy mIoU |", "|---|---|---|---|---|"]
    for r in log.candidates:
        lines.append(f"| {r['step']} | {r['move'] or 'start'} x{r['k']} | {r['key']} | "
                     f"{r['latency_ms']:.2f} | {r['miou']:.4f} |")
    return "\n".join(lines) + "\n"


def plot_frontier(log, path, file):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter([r["latency_ms"] for r in log.candidates], [r["miou"] for r in log.candidates],
               s=18, c="#9aa0a6", label="candidates")
    ax.plot([c.latency_ms for c in path], [c.miou for c in path], "-o", c="#d93025", label="chosen path")
    for i, c in enumerate(path):
        ax.annotate(str(i), (c.latency_ms, c.miou), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("proxy val mIoU")
    ax.set_title("LPS-Net progressive scaling")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = file + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, file)

