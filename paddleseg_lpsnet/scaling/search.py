"""The paper's progressive scaling: grow a tiny LPS-Net one dimension at a time.

At each step, from the current network (the parent):
1. every move is applied once and its latency measured; the target latency is the
   largest of these one-step latencies;
2. each move is repeated k times until its latency reaches the target, keeping k or
   k-1, whichever lands closer (k-1 >= 1: a candidate always differs from its parent);
3. duplicate candidates (same network) are dropped;
4. every candidate is trained with a short proxy schedule and evaluated (mIoU);
5. the candidate with the largest slope (mIoU - parent mIoU) / (latency - parent
   latency) becomes the next parent.

Deviations from the authors' demo (expand.py, which never trained anything): the
accuracy is real, the slope divides by the latency increase (their denominator
subtracts the parent's mIoU from the latency), k stays >= 1, repeats are bounded
(`max_repeats`) and ratios capped (`max_ratio`), and a latency increase <= 0
(measurement noise on tiny nets) is clamped to `min_latency_gain` ms so the slope
stays finite.

Latency and accuracy come from injected functions, so the search runs with the
real measurements (`lpsnet scale`) or deterministic fakes (tests). Every result is
appended to a SearchLog as soon as it is known; a search resumed on the same log
redoes nothing that finished.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.scaling.arch import MOVES, Arch

__all__ = ["Candidate", "SearchLog", "ProgressiveScaler", "slope"]


@dataclass
class Candidate:
    arch: Arch
    step: int
    parent: Optional[str]      # key of the parent architecture
    move: Optional[str] = None  # e.g. "width+(0,0,16,32,32)"
    k: int = 0
    latency_ms: Optional[float] = None
    miou: Optional[float] = None

    @property
    def key(self):
        return self.arch.key


def slope(child, parent, min_latency_gain=1e-3):
    """mIoU gained per millisecond spent, relative to the parent."""
    gain = child.latency_ms - parent.latency_ms
    return (child.miou - parent.miou) / max(gain, min_latency_gain)


class SearchLog:
    """Append-only JSON-lines record of a search: settings, latencies, candidates, choices.

    Lines are flushed and fsynced as written, so a killed search loses at most the
    measurement in progress. Reopening the file restores the caches.
    """

    def __init__(self, path, settings):
        self.path = path
        self.latency: Dict[str, float] = {}
        self.accuracy: Dict[str, float] = {}
        self.candidates: List[dict] = []
        self.chosen: Dict[int, dict] = {}
        existing = self._read() if os.path.isfile(path) else []
        old_settings = next((r["settings"] for r in existing if r["type"] == "settings"), None)
        if old_settings is not None and old_settings != settings:
            diff = sorted(k for k in set(old_settings) | set(settings) if old_settings.get(k) != settings.get(k))
            raise ConfigError(f"{path} was written by a search with other settings ({', '.join(diff)}: "
                              f"{[old_settings.get(k) for k in diff]} there, {[settings.get(k) for k in diff]} now). "
                              "Use another --out directory, or the same settings to resume.")
        for record in existing:
            self._index(record)
        if old_settings is None:
            self._append({"type": "settings", "settings": settings})

    def _read(self):
        with open(self.path, encoding="utf-8") as f:
            text = f.read()
        if text and not text.endswith("\n"):
            # a search killed in the middle of a write: drop the partial last line
            text = text[:text.rfind("\n") + 1]
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(text)
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{self.path}: line {n} is not valid JSON ({exc}).") from exc
        return records

    def _index(self, record):
        kind = record["type"]
        if kind == "latency":
            self.latency[record["key"]] = record["latency_ms"]
        elif kind == "candidate":
            self.candidates.append(record)
            if record.get("miou") is not None:
                self.accuracy[record["key"]] = record["miou"]
        elif kind == "chosen":
            self.chosen[record["step"]] = record

    def _append(self, record):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._index(record)

    def record_latency(self, arch, latency_ms):
        self._append({"type": "latency", "key": arch.key, "arch": arch.to_dict(), "latency_ms": latency_ms})

    def record_candidate(self, cand, extra=None):
        record = {"type": "candidate", "step": cand.step, "key": cand.key, "arch": cand.arch.to_dict(),
                  "parent": cand.parent, "move": cand.move, "k": cand.k,
                  "latency_ms": cand.latency_ms, "miou": cand.miou}
        record.update(extra or {})
        self._append(record)

    def record_choice(self, step, cand, slope_value):
        self._append({"type": "chosen", "step": step, "key": cand.key, "arch": cand.arch.to_dict(),
                      "parent": cand.parent, "move": cand.move, "k": cand.k,
                      "latency_ms": cand.latency_ms, "miou": cand.miou, "slope": slope_value})


@dataclass
class ProgressiveScaler:
    """Runs the greedy search with injected measurements.

    Args:
        latency_fn: f(arch) -> latency in ms on the target device (cached by arch key).
        accuracy_fn: f(arch) -> mIoU after the proxy schedule (cached by arch key).
        log: a SearchLog (caches and records every result).
        moves: the growth moves (default: the paper's ten).
        max_repeats: the most times one move is repeated to reach the target latency.
        max_ratio: the largest path ratio a resolution move may reach.
        record_extra: extra fields stored with each candidate (e.g. the proxy settings).
    """
    latency_fn: Callable
    accuracy_fn: Callable
    log: SearchLog
    moves: tuple = MOVES
    max_repeats: int = 32
    max_ratio: float = 1.0
    min_latency_gain: float = 1e-3
    record_extra: dict = field(default_factory=dict)
    echo: Callable = print

    # -- measurements (cached) -----------------------------------------------------
    def latency(self, arch):
        if arch.key not in self.log.latency:
            self.log.record_latency(arch, float(self.latency_fn(arch)))
        return self.log.latency[arch.key]

    def accuracy(self, arch):
        if arch.key not in self.log.accuracy:
            return float(self.accuracy_fn(arch))
        return self.log.accuracy[arch.key]

    # -- candidate generation --------------------------------------------------------
    def _valid(self, arch):
        return max(arch.ratios) <= self.max_ratio + 1e-9

    def _grow(self, parent, move, k):
        try:
            arch = move.apply(parent, k)
        except ValueError:
            return None
        return arch if self._valid(arch) else None

    def target_latency(self, parent):
        """The largest latency among the valid one-step candidates."""
        lats = [self.latency(a) for a in (self._grow(parent, m, 1) for m in self.moves) if a is not None]
        if not lats:
            raise ConfigError(f"No move can grow {parent} (all exceed max_ratio={self.max_ratio}).")
        return max(lats)

    def match(self, parent, move, target):
        """(k, arch) for `move` repeated to land closest to `target` (k or k-1, k-1 >= 1)."""
        best = None
        prev = None
        for k in range(1, self.max_repeats + 1):
            arch = self._grow(parent, move, k)
            if arch is None:
                break
            lat = self.latency(arch)
            if lat >= target:
                if prev is not None and abs(target - prev[2]) < abs(target - lat):
                    return prev[0], prev[1]
                return k, arch
            prev = (k, arch, lat)
            best = prev
        return (best[0], best[1]) if best else None

    def expand(self, parent, step):
        """The latency-matched, de-duplicated candidates grown from `parent`."""
        target = self.target_latency(parent)
        self.echo(f"[scale] step {step}: parent {parent.key} ({self.latency(parent):.2f} ms), "
                  f"target latency {target:.2f} ms")
        seen, out = {parent.key}, []
        for move in self.moves:
            matched = self.match(parent, move, target)
            if matched is None:
                continue
            k, arch = matched
            if arch.key in seen:
                continue
            seen.add(arch.key)
            out.append(Candidate(arch, step, parent.key, move.name, k, self.latency(arch)))
        return out

    # -- the search ----------------------------------------------------------------
    def _evaluated(self, cand):
        """Fill the candidate's mIoU (training it unless a finished record exists)."""
        done = [r for r in self.log.candidates if r["step"] == cand.step and r["key"] == cand.key
                and r.get("miou") is not None]
        if done:
            cand.miou = done[-1]["miou"]
            return cand
        cand.miou = self.accuracy(cand.arch)
        self.log.record_candidate(cand, self.record_extra)
        what = f"{cand.move} x{cand.k}" if cand.move else "start"
        self.echo(f"[scale]   {what}: {cand.key}  {cand.latency_ms:.2f} ms  mIoU {cand.miou:.4f}")
        return cand

    def start(self, arch):
        root = Candidate(arch, 0, None, None, 0, self.latency(arch))
        return self._evaluated(root)

    def step(self, parent, step):
        """One step: returns (chosen candidate, all candidates with their slopes)."""
        if step in self.log.chosen:
            rec = self.log.chosen[step]
            chosen = Candidate(Arch.from_dict(rec["arch"]), step, rec["parent"], rec["move"], rec["k"],
                               rec["latency_ms"], rec["miou"])
            return chosen, []
        cands = [self._evaluated(c) for c in self.expand(parent.arch, step)]
        if not cands:
            raise ConfigError(f"Step {step}: no candidate can grow {parent.key}.")
        scored = [(slope(c, parent, self.min_latency_gain), c) for c in cands]
        best_slope, chosen = max(scored, key=lambda sc: sc[0])
        self.log.record_choice(step, chosen, best_slope)
        self.echo(f"[scale] step {step} chose {chosen.move} x{chosen.k}: {chosen.key} "
                  f"(slope {best_slope:.5f} mIoU/ms)")
        return chosen, scored

    def run(self, start_arch, steps):
        """Grow `start_arch` for `steps` steps; returns the chosen path [start, step1, ...]."""
        path = [self.start(start_arch)]
        for step in range(1, steps + 1):
            chosen, _ = self.step(path[-1], step)
            path.append(chosen)
        return path
