"""LPS-Net architectures as points of the progressive-scaling search space.

An architecture is (depths, channels, ratios): five stage depths, five stage widths
and three path ratios (0 = no path), as in the paper. The moves grow one dimension:

- depth:      +(0,1,1,1,1), +(0,0,1,1,1), +(0,0,0,1,1)
- width:      +(4,8,16,32,32), +(0,8,16,32,32), +(0,0,16,32,32), +(0,0,0,32,32)
- resolution: +1/8 on path 1, 2 or 3 (raising a 0 ratio creates a path)

Ratios are kept in the order the moves address them (as the authors' expansion
demo does); the network sorts its paths from the highest ratio down, and the
architecture key (used for de-duplication and caching) uses the sorted ratios.
"""
from dataclasses import dataclass
from fractions import Fraction
from typing import Tuple

__all__ = ["Arch", "Move", "MOVES", "TINY_ARCH", "parse_arch"]


@dataclass(frozen=True)
class Arch:
    depths: Tuple[int, ...]
    channels: Tuple[int, ...]
    ratios: Tuple[float, ...]

    def __post_init__(self):
        if len(self.depths) != 5 or len(self.channels) != 5 or len(self.ratios) != 3:
            raise ValueError(f"An LPS-Net search architecture has 5 depths, 5 channels and 3 ratios; got {self}.")
        if min(self.depths) < 1 or min(self.channels) < 1 or min(self.ratios) < 0 or max(self.ratios) <= 0:
            raise ValueError(f"Depths and channels must be >= 1 and one ratio > 0; got {self}.")

    @property
    def key(self):
        """Identity of the network (sorted ratios): equal keys build equal networks; a valid file name."""
        ratios = "-".join(f"{r:g}" for r in sorted(self.ratios, reverse=True))
        return f"d{'-'.join(map(str, self.depths))}_c{'-'.join(map(str, self.channels))}_r{ratios}"

    def backbone_kwargs(self):
        """Arguments of LPSNetBackbone building this architecture."""
        return dict(depths=list(self.depths), channels=list(self.channels),
                    scale_ratios=sorted((r for r in self.ratios if r > 0), reverse=True))

    def to_dict(self):
        return dict(depths=list(self.depths), channels=list(self.channels), ratios=list(self.ratios))

    @classmethod
    def from_dict(cls, d):
        return cls(tuple(d["depths"]), tuple(d["channels"]), tuple(float(r) for r in d["ratios"]))

    def __str__(self):
        ratios = ",".join(_fmt_ratio(r) for r in self.ratios)
        return f"depths {','.join(map(str, self.depths))} channels {','.join(map(str, self.channels))} ratios {ratios}"


def _fmt_ratio(r):
    frac = Fraction(r).limit_denominator(64)
    return str(frac) if frac.denominator != 1 else str(frac.numerator)


@dataclass(frozen=True)
class Move:
    """One growth direction; `apply(arch, k)` repeats it k times."""
    kind: str  # "depth" | "width" | "resolution"
    delta: Tuple[float, ...]

    @property
    def name(self):
        return f"{self.kind}+({','.join(_fmt_ratio(d) if self.kind == 'resolution' else str(d) for d in self.delta)})"

    def apply(self, arch, k=1):
        if k < 1:
            raise ValueError(f"A move is applied at least once, got k={k}.")
        if self.kind == "depth":
            return Arch(tuple(a + k * d for a, d in zip(arch.depths, self.delta)), arch.channels, arch.ratios)
        if self.kind == "width":
            return Arch(arch.depths, tuple(a + k * d for a, d in zip(arch.channels, self.delta)), arch.ratios)
        return Arch(arch.depths, arch.channels, tuple(a + k * d for a, d in zip(arch.ratios, self.delta)))


MOVES = (
    Move("depth", (0, 1, 1, 1, 1)), Move("depth", (0, 0, 1, 1, 1)), Move("depth", (0, 0, 0, 1, 1)),
    Move("width", (4, 8, 16, 32, 32)), Move("width", (0, 8, 16, 32, 32)),
    Move("width", (0, 0, 16, 32, 32)), Move("width", (0, 0, 0, 32, 32)),
    Move("resolution", (1 / 8, 0, 0)), Move("resolution", (0, 1 / 8, 0)), Move("resolution", (0, 0, 1 / 8)),
)

TINY_ARCH = Arch((1, 1, 1, 1, 1), (4, 8, 16, 32, 32), (0.5, 0.0, 0.0))


def _ratio(text):
    text = text.strip()
    return float(Fraction(text)) if "/" in text else float(text)


def parse_arch(text):
    """Parse "d1,d2,d3,d4,d5;c1,...,c5;r1,r2,r3" (ratios may be fractions like 3/4).

    `;` or `:` separate the three groups. Raises ValueError naming the problem.
    """
    groups = text.replace(":", ";").split(";")
    if len(groups) != 3:
        raise ValueError(f"--start {text!r}: expected 'depths;channels;ratios', e.g. '1,1,1,1,1;4,8,16,32,32;1/2,0,0'.")
    try:
        depths = tuple(int(x) for x in groups[0].split(","))
        channels = tuple(int(x) for x in groups[1].split(","))
        ratios = [_ratio(x) for x in groups[2].split(",")]
    except ValueError as exc:
        raise ValueError(f"--start {text!r}: {exc}") from exc
    ratios = tuple(ratios + [0.0] * (3 - len(ratios)))
    return Arch(depths, channels, ratios)
