"""Progressive scaling: candidates, latency matching, de-duplication, slope, resume.

Latency and accuracy are deterministic fakes here, so every rule is checked exactly.
"""
import json

import pytest

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.scaling import MOVES, TINY_ARCH, Arch, Move, ProgressiveScaler, SearchLog, parse_arch, slope
from paddleseg_lpsnet.scaling.search import Candidate


def fake_latency(arch):
    """Grows with compute like a real network: sum over paths and stages of d*c^2*r^2/4^s."""
    total = 0.05
    for r in arch.ratios:
        if r > 0:
            c_in = 3
            for s, (d, c) in enumerate(zip(arch.depths, arch.channels)):
                area = r * r / 4 ** min(s + 1, 4)
                total += area * (c_in * c + (d - 1) * c * c) * 1e-3
                c_in = c
    return total


def fake_miou(arch):
    """Saturating in compute, with a bonus for more paths (so resolution moves can win)."""
    paths = sum(r > 0 for r in arch.ratios)
    return 0.2 + 0.5 * (1 - 1 / (1 + fake_latency(arch))) + 0.01 * paths


def scaler(tmp_path, latency_fn=fake_latency, accuracy_fn=fake_miou, settings=None, **kw):
    log = SearchLog(str(tmp_path / "search.jsonl"), settings or {"input_size": [64, 128]})
    return ProgressiveScaler(latency_fn, accuracy_fn, log, echo=lambda *a: None, **kw)


def test_moves_grow_one_dimension():
    for move in MOVES:
        child = move.apply(TINY_ARCH, 2)
        changed = [child.depths != TINY_ARCH.depths, child.channels != TINY_ARCH.channels,
                   child.ratios != TINY_ARCH.ratios]
        assert sum(changed) == 1
    assert Move("width", (4, 8, 16, 32, 32)).apply(TINY_ARCH, 2).channels == (12, 24, 48, 96, 96)
    assert Move("resolution", (0, 1 / 8, 0)).apply(TINY_ARCH, 2).ratios == (0.5, 0.25, 0.0)
    with pytest.raises(ValueError):
        MOVES[0].apply(TINY_ARCH, 0)


def test_paper_relations_between_variants():
    """M = S with the first ratio 3/4 -> 1 (two resolution moves); L = M with wider stages 3-5."""
    s = Arch((1, 3, 3, 10, 10), (8, 24, 48, 96, 96), (0.75, 0.25, 0))
    m = Move("resolution", (1 / 8, 0, 0)).apply(s, 2)
    assert m.ratios == (1.0, 0.25, 0)
    wider = Arch(m.depths, (8, 24, 64, 160, 160), m.ratios)
    assert [a - b for a, b in zip(wider.channels, m.channels)] == [0, 0, 16, 64, 64]


def test_target_is_largest_one_step_latency(tmp_path):
    sc = scaler(tmp_path)
    expected = max(fake_latency(m.apply(TINY_ARCH, 1)) for m in MOVES)
    assert sc.target_latency(TINY_ARCH) == pytest.approx(expected)


def test_latency_matching_keeps_k_or_k_minus_1_whichever_is_closer(tmp_path):
    move = Move("depth", (0, 1, 1, 1, 1))

    def lat(arch):  # 1 ms per added block-set, exactly
        return float(arch.depths[1])

    sc = scaler(tmp_path, latency_fn=lat, moves=(move,))
    # target 4.4: k=3 -> 4.0 (0.4 away), k=4 -> 5.0 (0.6 away): keep k-1 = 3
    assert sc.match(TINY_ARCH, move, 4.4)[0] == 3
    # target 4.6: k=3 -> 4.0 (0.6 away), k=4 -> 5.0 (0.4 away): keep k = 4
    assert sc.match(TINY_ARCH, move, 4.6)[0] == 4
    # the first step already passes the target: k stays 1, never the parent itself
    assert sc.match(TINY_ARCH, move, 1.5)[0] == 1


def test_resolution_moves_respect_max_ratio(tmp_path):
    sc = scaler(tmp_path, max_ratio=1.0)
    k, arch = sc.match(TINY_ARCH, Move("resolution", (1 / 8, 0, 0)), target=1e9)
    assert arch.ratios[0] == 1.0 and k == 4


def test_expand_drops_duplicates_and_parent(tmp_path):
    sc = scaler(tmp_path)
    cands = sc.expand(TINY_ARCH, step=1)
    keys = [c.key for c in cands]
    assert len(keys) == len(set(keys))
    assert TINY_ARCH.key not in keys
    # +1/8 on path 2 and on path 3 of a one-path net build the same network: one candidate
    res = [c for c in cands if c.move.startswith("resolution") and c.arch.ratios[0] == 0.5]
    assert len(res) == 1
    assert len(cands) == len(MOVES) - 1


def test_slope_divides_by_latency_increase():
    parent = Candidate(TINY_ARCH, 0, None, latency_ms=2.0, miou=0.30)
    child = Candidate(TINY_ARCH, 1, "p", latency_ms=4.0, miou=0.40)
    assert slope(child, parent) == pytest.approx(0.05)
    # the authors' demo divided by (latency - parent mIoU): 0.1 / 3.7
    assert slope(child, parent) != pytest.approx(0.1 / (4.0 - 0.30))
    faster = Candidate(TINY_ARCH, 1, "p", latency_ms=1.9, miou=0.35)
    assert slope(faster, parent) == pytest.approx(0.05 / 1e-3)


def test_step_chooses_largest_slope(tmp_path):
    favoured = Move("width", (0, 0, 0, 32, 32))

    def miou(arch):  # only the favoured width move improves accuracy
        return 0.5 if arch.channels[3] > TINY_ARCH.channels[3] and arch.channels[2] == 16 else 0.3

    sc = scaler(tmp_path, accuracy_fn=miou)
    root = sc.start(TINY_ARCH)
    chosen, scored = sc.step(root, 1)
    assert chosen.move == favoured.name
    assert max(s for s, _ in scored) == pytest.approx(slope(chosen, root))


def test_search_is_logged_and_resumes_without_redoing(tmp_path):
    calls = []

    def counted(arch):
        calls.append(arch.key)
        return fake_miou(arch)

    full = scaler(tmp_path / "a", accuracy_fn=counted).run(TINY_ARCH, steps=2)
    n_full = len(calls)

    calls.clear()

    def dies_after(n):
        def fn(arch):
            if len(calls) >= n:
                raise KeyboardInterrupt("killed")
            return counted(arch)
        return fn

    with pytest.raises(KeyboardInterrupt):
        scaler(tmp_path / "b", accuracy_fn=dies_after(n_full - 3)).run(TINY_ARCH, steps=2)
    first = list(calls)
    calls.clear()
    resumed = scaler(tmp_path / "b", accuracy_fn=counted).run(TINY_ARCH, steps=2)
    assert not set(calls) & set(first), "finished candidates are not trained again"
    assert len(first) + len(calls) == n_full
    assert [c.key for c in resumed] == [c.key for c in full]

    records = [json.loads(l) for l in open(tmp_path / "b" / "search.jsonl")]
    cands = [r for r in records if r["type"] == "candidate"]
    assert all({"arch", "latency_ms", "miou", "parent", "step"} <= set(r) for r in cands)
    assert sorted(r["step"] for r in records if r["type"] == "chosen") == [1, 2]


def test_resume_refuses_other_settings(tmp_path):
    scaler(tmp_path, settings={"input_size": [64, 128]}).start(TINY_ARCH)
    with pytest.raises(ConfigError, match="input_size"):
        scaler(tmp_path, settings={"input_size": [128, 256]})


def test_partial_last_line_is_dropped(tmp_path):
    sc = scaler(tmp_path)
    sc.start(TINY_ARCH)
    path = tmp_path / "search.jsonl"
    with open(path, "a") as f:
        f.write('{"type": "latency", "key": "cut')
    log = SearchLog(str(path), {"input_size": [64, 128]})
    assert TINY_ARCH.key in log.latency
    assert open(path).read().endswith("\n")


def test_parse_arch():
    assert parse_arch("1,1,1,1,1;4,8,16,32,32;1/2,0,0") == TINY_ARCH
    assert parse_arch("1,3,3,10,10;8,24,48,96,96;3/4,1/4").ratios == (0.75, 0.25, 0.0)
    with pytest.raises(ValueError, match="depths;channels;ratios"):
        parse_arch("1,1,1,1,1")
