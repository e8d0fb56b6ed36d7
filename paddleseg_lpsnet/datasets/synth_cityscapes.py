"""Synthetic street scenes in the Cityscapes layout, for demos, tests and smoke runs.

Each scene is a pinhole-camera view of a straight or gently curved street: sky,
buildings with windows on both sides and at the far end, road with lane markings
and crossings, sidewalks with tiles and curbs, terrain strips, trees and hedges,
poles with traffic signs and lights, cars in the lanes and parked, pedestrians and
sometimes the ego vehicle's hood. Sizes follow depth, facades get sun or shade,
buildings cast shadows, far objects fade into haze, and every image gets its own
exposure, tint, sensor noise and sometimes blur.

The scene is a list of polygons labelled with cityscapesscripts names, written as
the real *_gtFine_polygons.json; labelIds and labelTrainIds are drawn from it by
cityscapesscripts (see datasets/cityscapes.py), so ids are exactly Cityscapes'.
Image regions are filled from the same integer polygons with the same rasterizer
(PIL), so image and labels agree pixel for pixel.

Deterministic: sample i of a split depends only on (seed, split, i), so the same
seed gives byte-identical files whatever the number of samples asked for.
"""
import functools
import json
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
from PIL import Image, ImageDraw

from paddleseg_lpsnet.datasets.cityscapes import (
    GT_DIR, IMG_DIR, IMG_SUFFIX, LABEL_IDS_SUFFIX, POLYGONS_SUFFIX, TRAIN_IDS_SUFFIX,
    annotation_from_dict, render_label, write_file_lists)
from paddleseg_lpsnet.errors import DataError
from paddleseg_lpsnet.utils.io import atomic_write_text

__all__ = ["SCENE_LABELS", "CITIES", "MARKER", "render_scene", "generate_sample",
           "generate_dataset", "class_statistics"]

# The cityscapesscripts labels a scene can contain ("ego vehicle" maps to ignore).
SCENE_LABELS = ("road", "sidewalk", "building", "pole", "traffic light", "traffic sign",
                "vegetation", "terrain", "sky", "person", "car", "ego vehicle")
CITIES = {"train": ("synthbach", "synthberg", "synthdorf"), "val": ("synthstadt",)}
SPLIT_KEYS = {"train": 1, "val": 2}
MARKER = "synth_cityscapes.json"  # written at the root; identifies a generated folder
FORMAT_VERSION = 1
IMAGES_PER_SEQUENCE = 50


@dataclass
class Shape:
    """A polygon to draw: a labelled region, or an image-only shading (label None)."""
    label: Optional[str]
    polygon: np.ndarray                  # [N, 2] int pixel coordinates (x, y)
    paint: Optional[Callable] = None     # (x0, y0, x1, y1) -> float32 [h, w, 3] patch
    depth: float = 0.0                   # metres, for haze; 0 = no haze
    shade: float = 1.0                   # multiplier for image-only shapes


class Camera:
    """Pinhole camera over a flat street; X right of the road centre, Y up, Z forward."""

    def __init__(self, rng, height, width):
        self.f = width * rng.uniform(0.55, 0.85)
        self.horizon = height * rng.uniform(0.34, 0.5)
        self.cx = width * rng.uniform(0.4, 0.6)
        self.mount = rng.uniform(1.2, 1.7)                      # camera height
        self.curve = rng.choice([0.0, rng.uniform(-4e-3, 4e-3)])  # road centre X += curve * Z^2
        self.x = 0.0                                            # lateral position

    def project(self, X, Y, Z):
        X, Y, Z = np.asarray(X, float), np.asarray(Y, float), np.asarray(Z, float)
        x = self.cx + self.f * (X + self.curve * Z * Z - self.x) / Z
        y = self.horizon + self.f * (self.mount - Y) / Z
        return np.stack(np.broadcast_arrays(x, y), axis=-1)

    def scale(self, Z):
        """Pixels per metre at depth Z."""
        return self.f / Z


def _ints(points):
    return np.round(points).astype(np.int64)


_STEPS = np.linspace(0.0, 1.0, 8)


def _depths(z0, z1):
    """8 depths from z0 to z1, evenly spaced in 1/Z (evenly on screen)."""
    return 1.0 / (1.0 / z0 + (1.0 / z1 - 1.0 / z0) * _STEPS)


def _band(cam, edge0, edge1, z0, z1):
    """Polygon between two lines running from depth z0 to z1, each given as (X, Y)."""
    zs = _depths(z0, z1)
    return _ints(np.concatenate([cam.project(*edge0, zs), cam.project(*edge1, zs[::-1])]))


def ground_strip(cam, x0, x1, z0, z1):
    """Polygon of the ground between X=x0 and X=x1 from depth z0 to z1."""
    return _band(cam, (x0, 0), (x1, 0), z0, z1)


def ground_quads(cam, x0, x1, z0, z1):
    """Quadrilaterals on the ground, one per element of the broadcast arrays (x0, x1, z0, z1)."""
    x0, x1, z0, z1 = np.broadcast_arrays(*(np.asarray(v, float)[..., None] for v in (x0, x1, z0, z1)))
    xs = np.concatenate([x0, x1, x1, x0], -1)
    zs = np.concatenate([z0, z0, z1, z1], -1)
    return list(_ints(cam.project(xs, 0, zs)).reshape(-1, 4, 2))


def facade(cam, x, z0, z1, height):
    """Polygon of a vertical wall along the street at X=x, depths z0..z1, 0..height m."""
    return _band(cam, (x, 0), (x, height), z0, z1)


def billboard(cam, x, z, outline):
    """Polygon of an outline [(dx, y), ...] in metres standing upright at (x, z)."""
    outline = np.asarray(outline, float)
    return _ints(cam.project(x + outline[:, 0], outline[:, 1], z))


def circle(cx, cy, r, n=14, rng=None, wobble=0.0):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rr = r * (1 + (rng.uniform(-wobble, wobble, n) if rng is not None else 0))
    return np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], axis=1)


def rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class Frame:
    """Per-image noise fields, lighting and the helpers that paint textured patches."""

    def __init__(self, rng, height, width):
        self.rng, self.h, self.w = rng, height, width
        self.smooth = self._noise(32)   # large blotches
        self.mid = self._noise(6)       # leaf clumps, stains
        self.grain = rng.standard_normal((height, width), dtype=np.float32)
        self.haze_color = np.array(rng.uniform(170, 225, 3), np.float32)
        self.visibility = rng.uniform(120, 600)
        self.sun_left = rng.random() < 0.5
        self.sun = rng.uniform(1.0, 1.15)
        self.shadow = rng.uniform(0.55, 0.85)

    def _noise(self, cell):
        small = self.rng.standard_normal((self.h // cell + 2, self.w // cell + 2)).astype(np.float32)
        big = cv2.resize(small, (self.w + 2 * cell, self.h + 2 * cell), interpolation=cv2.INTER_CUBIC)
        return big[cell:cell + self.h, cell:cell + self.w]

    def color(self, base, jitter):
        c = np.asarray(base, np.float32) + self.rng.uniform(-jitter, jitter, 3).astype(np.float32)
        return np.minimum(np.maximum(c, 0), 255)

    def texture(self, color, smooth=8.0, mid=0.0, grain=3.0):
        """Paint function: color + luminance noise at three scales."""
        color = np.asarray(color, np.float32)

        def paint(x0, y0, x1, y1):
            lum = (smooth * self.smooth[y0:y1, x0:x1] + mid * self.mid[y0:y1, x0:x1]
                   + grain * self.grain[y0:y1, x0:x1])
            return color + lum[..., None]
        return paint

    def haze(self, patch, depth):
        a = 1.0 - np.exp(-depth / self.visibility)
        if a < 0.01:
            return patch
        return (1 - a) * patch + a * self.haze_color


def _draw_polys(patch, polys, color, x0, y0):
    """Fill pixel polygons (image coordinates) into a patch whose origin is (x0, y0)."""
    pts = [np.asarray(p - [x0, y0], np.int32) for p in polys if len(p) >= 3]
    if pts:
        cv2.fillPoly(patch, pts, [float(c) for c in color])
    return patch


def overlay(paint, polys_colors):
    """Paint function: `paint`, then the given (polygons, color) groups on top."""
    def painted(x0, y0, x1, y1):
        patch = np.ascontiguousarray(paint(x0, y0, x1, y1), dtype=np.float32)
        for polys, color in polys_colors:
            _draw_polys(patch, polys, color, x0, y0)
        return patch
    return painted


def shaded(paint, factor):
    return lambda *box: paint(*box) * factor


# --------------------------------------------------------------------------- scene parts

class Street:
    """Road geometry of one scene (metres): lanes, sidewalks, terrain strips, facades."""

    def __init__(self, rng, cam):
        self.lanes = int(rng.integers(2, 5))
        self.lane_w = rng.uniform(3.0, 3.7)
        self.half = self.lanes * self.lane_w / 2
        cam.x = -self.half + self.lane_w * (rng.integers(0, self.lanes) + 0.5) + rng.uniform(-0.4, 0.4)
        self.walk = [rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5)]       # left, right
        self.green = [rng.uniform(1, 4) if rng.random() < 0.45 else 0.0 for _ in range(2)]
        self.z_far = rng.uniform(70, 220)

    def curb(self, side):  # side -1 left, +1 right
        return side * self.half

    def walk_edge(self, side):
        return side * (self.half + self.walk[(side + 1) // 2])

    def facade_x(self, side):
        return side * (self.half + self.walk[(side + 1) // 2] + self.green[(side + 1) // 2])


def sky(frame, cam, street):
    """Sky down to the farthest ground (everything below is covered by the ground)."""
    rng, h = frame.rng, frame.h
    bottom_y = min(cam.project(0, 0, street.z_far)[1] + 2, h)
    kind = rng.choice(["clear", "overcast", "dusk"], p=[0.55, 0.3, 0.15])
    if kind == "clear":
        top, bottom = frame.color((60, 110, 190), 25), frame.color((175, 200, 230), 20)
    elif kind == "overcast":
        g = rng.uniform(150, 220)
        top, bottom = frame.color((g, g, g + 8), 8), frame.color((g + 15, g + 15, g + 18), 8)
    else:
        top, bottom = frame.color((90, 90, 150), 25), frame.color((235, 160, 110), 25)
    clouds = rng.uniform(0, 50)

    def paint(x0, y0, x1, y1):
        t = np.linspace(y0 / h, y1 / h, y1 - y0, dtype=np.float32)[:, None, None]
        grad = top + (bottom - top) * np.clip(t * 1.6, 0, 1)
        cloud = np.clip(frame.smooth[y0:y1, x0:x1] * 1.5 - 0.3, 0, None)[..., None] * clouds
        return grad + cloud + frame.grain[y0:y1, x0:x1, None] * 1.5
    return [Shape("sky", _ints(rect(0, 0, frame.w, bottom_y)), paint)]


FACADE_COLORS = [(200, 180, 150), (150, 150, 150), (160, 90, 70), (215, 210, 200),
                 (90, 90, 95), (190, 160, 110), (120, 130, 140)]


def building(frame, cam, x, z0, z1, height, light):
    """A facade along the street at X=x with a grid of windows, lit by `light`."""
    rng = frame.rng
    wall = frame.color(FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 25)
    glass = frame.color((60, 75, 95) if rng.random() < 0.6 else (150, 170, 190), 20)
    floor_h, col_w = rng.uniform(2.8, 3.6), rng.uniform(2.2, 4.0)
    win_h, win_w = floor_h * rng.uniform(0.35, 0.6), col_w * rng.uniform(0.35, 0.7)
    # window grid: floors x columns, only where a window is >= 1.5 px tall
    za = z0 + np.arange(int((z1 - z0) / col_w)) * col_w + (col_w - win_w) / 2
    za = za[cam.scale(za) * win_h >= 1.5]
    y = np.arange(int(height / floor_h)) * floor_h + (floor_h - win_h) / 2
    za, y = (a.reshape(-1, 1) for a in np.meshgrid(za, y))
    corners = cam.project(x, y + [0, 0, win_h, win_h], za + [0, win_w, win_w, 0])  # [n, 4, 2]
    windows = list(_ints(corners))
    paint = frame.texture(wall, smooth=10, mid=4, grain=3)
    paint = shaded(overlay(paint, [(windows, glass)]), light)
    return Shape("building", facade(cam, x, z0, z1, height), paint, depth=z0)


def far_end(frame, cam, street):
    """Buildings or a tree line across the end of the street."""
    rng, z = frame.rng, street.z_far
    x, right, shapes = street.facade_x(-1) - 40, street.facade_x(1) + 40, []
    while x < right:
        w = rng.uniform(8, 30)
        if rng.random() < 0.7:
            poly = billboard(cam, x, z, rect(0, 0, w, rng.uniform(8, 35)))
            paint = frame.texture(frame.color(FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 25), 8, 3, 2)
            shapes.append(Shape("building", poly, paint, depth=z))
        else:
            poly = billboard(cam, x + w / 2, z, circle(0, 4, w / 2, n=16, rng=rng, wobble=0.25))
            shapes.append(Shape("vegetation", poly, frame.texture(frame.color((60, 110, 45), 20), 6, 25, 8), depth=z))
        x += w
    return shapes


def street_side(frame, cam, street, side):
    """Buildings along one side of the street, with gaps, far ones first."""
    rng, shapes = frame.rng, []
    lit = (side < 0) == frame.sun_left
    light = frame.sun if lit else frame.shadow * 1.1
    z = rng.uniform(1.5, 8)
    while z < street.z_far:
        length = rng.uniform(6, 35)
        if rng.random() < 0.85:
            shapes.append(building(frame, cam, street.facade_x(side), z, min(z + length, street.z_far),
                                   rng.uniform(6, 30), light))
        z += length
    return shapes[::-1]


def ground(frame, cam, street):
    """Terrain under everything, then sidewalks, green strips, the road and its markings."""
    rng, zf = frame.rng, street.z_far
    z0 = 0.6
    terrain = frame.texture(frame.color((130, 145, 85), 25), smooth=10, mid=12, grain=10)
    shapes = [Shape("terrain", ground_strip(cam, street.facade_x(-1) - 200, street.facade_x(1) + 200, z0, zf),
                    terrain, depth=1)]
    walk_color = frame.color((165, 155, 150) if rng.random() < 0.7 else (175, 125, 115), 25)
    for side in (-1, 1):
        curb, edge, fac = street.curb(side), street.walk_edge(side), street.facade_x(side)
        if fac != edge:
            shapes.append(Shape("terrain", ground_strip(cam, edge, fac, z0, zf), terrain, depth=1))
        tile = rng.uniform(0.5, 1.5)
        z = np.arange(1.0, 40.0, tile)
        lines = ground_quads(cam, curb, edge, z, z + 0.06)
        curb_poly = ground_strip(cam, curb, curb + side * 0.2, z0, zf)
        paint = overlay(frame.texture(walk_color, smooth=8, mid=3, grain=4),
                        [(lines, walk_color * 0.8), ([curb_poly], walk_color * 1.15)])
        shapes.append(Shape("sidewalk", ground_strip(cam, curb, edge, z0, zf), paint, depth=1))
    shapes.append(Shape("road", ground_strip(cam, street.curb(-1), street.curb(1), z0, zf), road_paint(frame, cam, street), depth=1))
    return shapes


def road_paint(frame, cam, street):
    rng = frame.rng
    asphalt = frame.color((95, 95, 100), 30)
    white = frame.color((225, 225, 220), 15)
    dash, gap, offset = rng.uniform(2, 4), rng.uniform(4, 9), rng.uniform(0, 6)
    x = (-street.half + np.arange(1, street.lanes) * street.lane_w)[:, None]   # lane lines
    z = np.arange(1.0 + offset, min(street.z_far, 120), dash + gap)[None, :]  # dashes
    marks = ground_quads(cam, x - 0.07, x + 0.07, z, z + dash) if street.lanes > 1 else []
    for side in (-1, 1):
        x = side * (street.half - 0.3)
        marks.append(ground_strip(cam, x - 0.07, x + 0.07, 1.0, min(street.z_far, 150)))
    if rng.random() < 0.4:  # zebra crossing
        z = rng.uniform(8, 30)
        x = np.arange(-street.half + 0.3, street.half - 0.3, 1.0)
        marks += ground_quads(cam, x, x + 0.5, z, z + 4)
    return overlay(frame.texture(asphalt, smooth=9, mid=4, grain=5), [(marks, white)])


def building_shadows(frame, cam, street):
    """Image-only shading on the ground from the buildings on the shaded side."""
    side = 1 if frame.sun_left else -1
    width = frame.rng.uniform(1, street.half * 2 + 4)
    inner = street.facade_x(side) - side * width
    return [Shape(None, ground_strip(cam, inner, street.facade_x(side), 0.6, street.z_far),
                  shade=frame.rng.uniform(0.6, 0.85))]


def tree(frame, cam, x, z):
    """A trunk and a ragged round crown, both `vegetation` as in Cityscapes."""
    rng = frame.rng
    trunk_h, r = rng.uniform(1.8, 3.5), rng.uniform(1.2, 3.5)
    trunk_w = rng.uniform(0.2, 0.45)
    bark = frame.texture(frame.color((85, 65, 45), 15), 4, 3, 6)
    leaves = frame.texture(frame.color((65, 115, 45), 25), smooth=6, mid=28, grain=10)
    return [Shape("vegetation", billboard(cam, x, z, rect(-trunk_w / 2, 0, trunk_w / 2, trunk_h + r * 0.5)), bark, depth=z),
            Shape("vegetation", billboard(cam, x, z, circle(0, trunk_h + r * 0.8, r, n=16, rng=rng, wobble=0.2)),
                  leaves, depth=z)]


def hedge(frame, cam, street, side, z0, z1):
    """A low hedge along the facades."""
    x, height = street.facade_x(side) - side * 0.5, frame.rng.uniform(0.6, 1.4)
    leaves = frame.texture(frame.color((55, 100, 40), 20), smooth=6, mid=22, grain=10)
    return Shape("vegetation", facade(cam, x, z0, z1, height), leaves, depth=z0)


SIGN_FACES = [((200, 30, 30), (240, 240, 240)), ((30, 70, 170), (235, 235, 235)),
              ((240, 240, 240), (200, 30, 30)), ((240, 200, 30), (30, 30, 30))]


def pole_with_attachments(frame, cam, street, side, z):
    """A pole near the curb, maybe with a traffic sign, a traffic light or a lamp arm."""
    rng = frame.rng
    x = street.curb(side) + side * rng.uniform(0.3, 0.9)
    h, w = rng.uniform(3.5, 9), rng.uniform(0.1, 0.25)
    metal = frame.texture(frame.color((125, 125, 125) if rng.random() < 0.7 else (50, 60, 50), 25), 4, 2, 4)
    shapes = [Shape("pole", billboard(cam, x, z, rect(-w / 2, 0, w / 2, h)), metal, depth=z)]
    if rng.random() < 0.4:  # lamp arm over the road
        arm = rng.uniform(1, 3)
        shapes.append(Shape("pole", billboard(cam, x, z, rect(0, h - 0.12, -side * arm, h)), metal, depth=z))
    kind = rng.choice(["none", "sign", "light"], p=[0.35, 0.4, 0.25])
    if kind == "sign":
        shapes.append(traffic_sign(frame, cam, x, z, rng.uniform(2.0, min(h, 3.5)) - 0.4, -side * w))
    elif kind == "light":
        shapes.append(traffic_light(frame, cam, x - side * (w / 2 + 0.2), z, min(h, rng.uniform(2.8, 5))))
    return shapes


def traffic_sign(frame, cam, x, z, y, dx):
    rng = frame.rng
    s = rng.uniform(0.5, 0.9)
    shape = rng.choice(["circle", "triangle", "square", "diamond"])
    if shape == "circle":
        outline = circle(dx, y, s / 2, n=16)
    elif shape == "triangle":
        outline = [(dx - s / 2, y + s / 2), (dx + s / 2, y + s / 2), (dx, y - s / 2)]
    elif shape == "square":
        outline = rect(dx - s / 2, y - s / 2, dx + s / 2, y + s / 2)
    else:
        outline = [(dx, y - s / 2), (dx + s / 2, y), (dx, y + s / 2), (dx - s / 2, y)]
    face, symbol = SIGN_FACES[rng.integers(len(SIGN_FACES))]
    poly = billboard(cam, x, z, outline)
    inner = _ints(poly.mean(0) + (poly - poly.mean(0)) * 0.55)
    paint = overlay(frame.texture(frame.color(face, 20), 2, 0, 3), [([inner], frame.color(symbol, 20))])
    return Shape("traffic sign", poly, paint, depth=z)


LAMP_COLORS = [(255, 50, 40), (255, 190, 40), (60, 230, 90)]


def traffic_light(frame, cam, x, z, y):
    rng = frame.rng
    w, h = rng.uniform(0.3, 0.45), rng.uniform(0.8, 1.1)
    poly = billboard(cam, x, z, rect(-w / 2, y - h, w / 2, y))
    lit = rng.integers(3)
    lamps = []
    for k in range(3):
        c = circle(0, y - h * (k + 0.5) / 3, w * 0.32, n=10)
        color = LAMP_COLORS[k] if k == lit else (50, 50, 45)
        lamps.append(([billboard(cam, x, z, c)], np.array(color, np.float32)))
    paint = overlay(frame.texture(frame.color((35, 35, 35), 12), 2, 0, 3), lamps)
    return Shape("traffic light", poly, paint, depth=z)


CAR_COLORS = [(230, 230, 230), (30, 30, 35), (160, 160, 165), (170, 30, 30), (30, 60, 140),
              (90, 90, 95), (200, 170, 60), (40, 100, 60), (120, 20, 30)]


def car(frame, cam, x, z):
    """A car seen from behind: wheels, body, rear window, tail lights; all `car`."""
    rng = frame.rng
    w, h = rng.uniform(1.65, 1.95), rng.uniform(1.35, 1.85)
    a = w / 2
    outline = [(-a + 0.05, 0), (-a + 0.32, 0), (-a + 0.32, 0.22), (a - 0.32, 0.22), (a - 0.32, 0),
               (a - 0.05, 0), (a, 0.35), (a, 0.95), (a - 0.15, 1.0), (a - 0.3, h), (-a + 0.3, h),
               (-a + 0.15, 1.0), (-a, 0.95), (-a, 0.35)]
    body = frame.color(CAR_COLORS[rng.integers(len(CAR_COLORS))], 20)
    parts = [
        ([billboard(cam, x, z, [(-a + 0.2, 1.02), (a - 0.2, 1.02), (a - 0.34, h - 0.08), (-a + 0.34, h - 0.08)])],
         frame.color((40, 45, 55), 15)),
        ([billboard(cam, x, z, rect(-a + 0.05, 0.72, -a + 0.35, 0.88)),
          billboard(cam, x, z, rect(a - 0.35, 0.72, a - 0.05, 0.88))], frame.color((200, 30, 30), 20)),
        ([billboard(cam, x, z, rect(-a, 0, a, 0.3))], frame.color((25, 25, 25), 8)),
    ]
    shadow = Shape(None, ground_strip(cam, x - a - 0.1, x + a + 0.1, z - 0.3, z + 2.5), shade=0.45)
    return [shadow, Shape("car", billboard(cam, x, z, outline),
                          overlay(frame.texture(body, 5, 2, 3), parts), depth=z)]


def person(frame, cam, x, z):
    """A pedestrian: legs, torso, arms, head; all `person`."""
    rng = frame.rng
    h = rng.uniform(1.5, 1.95)
    stride = rng.uniform(0, 0.14) * h
    skin = frame.color(((225, 185, 150), (160, 110, 80), (95, 65, 45))[rng.integers(3)], 15)
    shirt = frame.color(rng.uniform(20, 230, 3), 10)
    pants = frame.color((40, 45, 70) if rng.random() < 0.6 else rng.uniform(20, 200, 3), 10)
    hw, sw = 0.1 * h, 0.13 * h
    legs = [[(-0.02 * h, 0.5 * h), (-hw, 0.5 * h), (-hw - stride / 2, 0), (-hw - stride / 2 + 0.07 * h, 0)],
            [(0.02 * h, 0.5 * h), (hw, 0.5 * h), (hw + stride / 2, 0), (hw + stride / 2 - 0.07 * h, 0)]]
    torso = [(-hw, 0.48 * h), (hw, 0.48 * h), (sw, 0.82 * h), (-sw, 0.82 * h)]
    arms = [[(-sw, 0.82 * h), (-sw - 0.05 * h, 0.45 * h), (-sw + 0.01 * h, 0.45 * h), (-sw + 0.05 * h, 0.8 * h)],
            [(sw, 0.82 * h), (sw + 0.05 * h, 0.45 * h), (sw - 0.01 * h, 0.45 * h), (sw - 0.05 * h, 0.8 * h)]]
    head = circle(0, 0.91 * h, 0.065 * h, n=12)
    parts = [(legs, pants), (arms, shirt), ([torso], shirt), ([head], skin)]
    return [Shape("person", billboard(cam, x, z, outline), frame.texture(color, 4, 2, 4), depth=z)
            for outlines, color in parts for outline in outlines]


def ego_hood(frame):
    """The camera car's bonnet at the bottom of the image (Cityscapes' `ego vehicle`)."""
    rng, h, w = frame.rng, frame.h, frame.w
    top = h * (1 - rng.uniform(0.05, 0.12))
    xs = np.linspace(-0.05 * w, 1.05 * w, 12)
    ys = top + (h - top) * ((xs - w / 2) / (0.55 * w)) ** 2 * 0.8
    poly = _ints(np.concatenate([np.stack([xs, ys], 1), [[1.05 * w, h + 2], [-0.05 * w, h + 2]]]))
    return [Shape("ego vehicle", poly, frame.texture(frame.color((40, 40, 45), 15), 12, 0, 2))]


def roadside_objects(frame, cam, street):
    """Trees, hedges, poles and pedestrians on both sides; cars in the lanes and parked."""
    rng, shapes = frame.rng, []

    def add(z, items):
        shapes.extend((z, i, s) for i, s in enumerate(items))

    for side in (-1, 1):
        if rng.random() < 0.65:
            spacing = rng.uniform(6, 18)
            inner = street.walk_edge(side) if street.green[(side + 1) // 2] else street.curb(side)
            for z in np.arange(rng.uniform(3, 10), street.z_far * 0.8, spacing):
                x = (inner + street.facade_x(side)) / 2 + rng.uniform(-0.3, 0.3)
                add(z, tree(frame, cam, x, z))
        if rng.random() < 0.3:
            z0 = rng.uniform(3, 30)
            add(z0, [hedge(frame, cam, street, side, z0, z0 + rng.uniform(5, 30))])
        for z in np.arange(rng.uniform(3, 12), min(street.z_far, 90), rng.uniform(8, 25)):
            add(z, pole_with_attachments(frame, cam, street, side, z))
        for _ in range(rng.poisson(3)):
            z = rng.uniform(3, 60)
            x = street.curb(side) + side * rng.uniform(0.4, max(street.walk[(side + 1) // 2] - 0.3, 0.5))
            add(z, person(frame, cam, x, z))
        for _ in range(rng.poisson(1.2)):  # parked along the curb
            z = rng.uniform(4, 70)
            add(z, car(frame, cam, street.curb(side) - side * 1.1, z))
    for k in range(street.lanes):
        for _ in range(rng.poisson(1.2)):
            z = rng.uniform(5, min(street.z_far, 100) * 0.8)
            x = -street.half + street.lane_w * (k + 0.5) + rng.uniform(-0.3, 0.3)
            if abs(x - cam.x) < 1.0 and z < 7:
                continue  # would fill the view
            add(z, car(frame, cam, x, z))
    for _ in range(rng.poisson(0.5)):  # someone crossing
        z = rng.uniform(6, 40)
        add(z, person(frame, cam, rng.uniform(-street.half, street.half), z))
    shapes.sort(key=lambda t: (-t[0], t[1]))
    return [s for _, _, s in shapes]


def compose_scene(rng, height, width):
    """The shapes of one scene, back to front."""
    frame = Frame(rng, height, width)
    cam = Camera(rng, height, width)
    street = Street(rng, cam)
    shapes = sky(frame, cam, street) + ground(frame, cam, street) + far_end(frame, cam, street)
    shapes += street_side(frame, cam, street, -1) + street_side(frame, cam, street, 1)
    shapes += building_shadows(frame, cam, street)
    shapes += roadside_objects(frame, cam, street)
    if rng.random() < 0.4:
        shapes += ego_hood(frame)
    return frame, shapes


# --------------------------------------------------------------------------- rendering

def _draw(img, polygon, value):
    ImageDraw.Draw(img).polygon(polygon.ravel().tolist(), fill=value)


def owner_map(shapes, height, width):
    """int32 [H, W]: 1 + index of the topmost labelled shape at each pixel (0: none).

    Drawn with PIL's polygon fill, as cityscapesscripts draws label images, so the
    pixels of a region are exactly the pixels its label gets.
    """
    img = Image.new("I", (width, height), 0)
    for i, s in enumerate(shapes):
        if s.label:
            _draw(img, s.polygon, i + 1)
    return np.asarray(img, dtype=np.int32)


def _box(polygon, w, h):
    (x0, y0), (x1, y1) = polygon.min(0).tolist(), (polygon.max(0) + 1).tolist()
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def paint_shapes(frame, shapes):
    """Render the shapes into a float32 RGB image (before exposure and noise).

    Each labelled shape paints the pixels it owns; an image-only shading darkens the
    pixels of shapes drawn before it.
    """
    h, w = frame.h, frame.w
    owner = owner_map(shapes, h, w)
    img = np.zeros((h, w, 3), np.float32)
    for i, s in enumerate(shapes):
        x0, y0, x1, y1 = _box(s.polygon, w, h)
        if x1 <= x0 or y1 <= y0:
            continue
        mine = owner[y0:y1, x0:x1]
        if s.label is None:
            cover = Image.new("L", (x1 - x0, y1 - y0), 0)
            _draw(cover, s.polygon - [x0, y0], 1)
            mask = np.asarray(cover, dtype=bool) & (mine <= i)
            np.multiply(img[y0:y1, x0:x1], s.shade, out=img[y0:y1, x0:x1], where=mask[..., None])
        else:
            mask = mine == i + 1
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            if not len(rows):
                continue  # hidden
            # paint only the box around the visible part
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            patch = frame.haze(s.paint(x0 + c0, y0 + r0, x0 + c1, y0 + r1), s.depth)
            np.copyto(img[y0 + r0:y0 + r1, x0 + c0:x0 + c1], patch, where=mask[r0:r1, c0:c1, None])
    return img


@functools.lru_cache(maxsize=4)
def _radius2(h, w):
    """Squared distance from the image centre, 1 at the middle of each border."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2


def camera_effects(rng, img):
    """Exposure, white balance, vignetting, blur and sensor noise; returns uint8 RGB."""
    h, w = img.shape[:2]
    img = img * rng.uniform(0.55, 1.25) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    img *= (1 - rng.uniform(0, 0.25) * _radius2(h, w) / 2)[..., None]
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise = np.stack([noise, np.roll(noise, 1, 0), np.roll(noise, 1, 1)], axis=-1)  # per channel
    img += noise * rng.uniform(1, 7)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def render_scene(rng, height, width):
    """One scene: (RGB uint8 image [H, W, 3], Cityscapes polygons dict)."""
    frame, shapes = compose_scene(rng, height, width)
    image = camera_effects(rng, paint_shapes(frame, shapes))
    objects = [{"label": s.label, "polygon": s.polygon.tolist()} for s in shapes if s.label]
    return image, {"imgHeight": height, "imgWidth": width, "objects": objects}


# --------------------------------------------------------------------------- dataset

def sample_name(split, index):
    """(city, "city_seq_frame") of sample `index` of a split, in Cityscapes' naming."""
    cities = CITIES[split]
    seq, frame = divmod(index, IMAGES_PER_SEQUENCE)
    city = cities[seq % len(cities)]
    return city, f"{city}_{seq:06d}_{frame * 19 + 19:06d}"


def generate_sample(root, split, index, seed, size):
    """Write one sample's image, polygons, labelIds and labelTrainIds; returns the
    histogram of its train ids (length 256)."""
    rng = np.random.default_rng([seed, SPLIT_KEYS[split], index])
    image, polygons = render_scene(rng, *size)
    annotation = annotation_from_dict(polygons, source=f"generated {split} sample {index}")
    ids, train_ids = render_label(annotation, "ids"), render_label(annotation, "trainIds")
    city, name = sample_name(split, index)
    img_dir, gt_dir = (os.path.join(root, top, split, city) for top in (IMG_DIR, GT_DIR))
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    cv2.imwrite(os.path.join(img_dir, name + IMG_SUFFIX), image[..., ::-1])
    cv2.imwrite(os.path.join(gt_dir, name + LABEL_IDS_SUFFIX), ids)
    cv2.imwrite(os.path.join(gt_dir, name + TRAIN_IDS_SUFFIX), train_ids)
    with open(os.path.join(gt_dir, name + POLYGONS_SUFFIX), "w", encoding="utf-8") as f:
        f.write(json.dumps(polygons, separators=(",", ":")))
    return np.bincount(train_ids.ravel(), minlength=256)


def _prepare_out(root, force):
    """Make `root` ready; with force, remove what an earlier generation wrote there.

    Never deletes a folder that this generator did not write (no marker file).
    """
    if os.path.exists(root) and not os.path.isdir(root):
        raise DataError(f"--out {root} exists and is not a folder.")
    if os.path.isdir(root) and os.listdir(root):
        marker = os.path.join(root, MARKER)
        if not os.path.isfile(marker):
            raise DataError(f"--out {root} exists, is not empty and was not written by "
                            f"`lpsnet data synth` (no {MARKER}); choose an empty or new folder.")
        if not force:
            raise DataError(f"--out {root} already holds a generated dataset; pass --force to "
                            "replace it.")
        for top in (IMG_DIR, GT_DIR):
            shutil.rmtree(os.path.join(root, top), ignore_errors=True)
        os.remove(marker)
    os.makedirs(root, exist_ok=True)


def class_statistics(histograms, num_classes=19):
    """Per train id: fraction of labelled pixels and of images where it appears.

    `histograms` is a list of per-image bincounts (length >= num_classes).
    """
    counts = np.stack([h[:num_classes] for h in histograms]).astype(np.float64)
    pixels = counts.sum(0) / max(counts.sum(), 1)
    present = (counts > 0).mean(0)
    return pixels, present


def generate_dataset(root, num_train=300, num_val=60, size=(256, 512), seed=0, force=False,
                     progress=None):
    """Generate a Cityscapes-layout dataset at `root` and its file lists.

    Args:
        root (str): Output folder (new, empty, or an earlier generation with force=True).
        num_train (int): Training images. Default: 300.
        num_val (int): Validation images. Default: 60.
        size (tuple[int, int]): Image (height, width). Default: (256, 512).
        seed (int): Seed; same seed and size give byte-identical files. Default: 0.
        force (bool): Replace an earlier generation at root. Default: False.
        progress (callable, optional): Called with (done, total) after each image.

    Returns:
        dict: the parameters, the file lists and per-split class statistics, as
        written to root/synth_cityscapes.json (written first with "complete": false,
        so an interrupted run is recognisable and --force can replace it).
    """
    height, width = (int(v) for v in size)
    if height < 32 or width < 32:
        raise DataError(f"--size {height} {width} is too small; use at least 32 32.")
    if num_train < 1 or num_val < 1:
        raise DataError(f"--num_train {num_train} / --num_val {num_val}: both must be >= 1.")
    _prepare_out(root, force)
    from cityscapesscripts.helpers.labels import trainId2label
    meta = {"format": FORMAT_VERSION, "seed": int(seed), "size": [height, width],
            "num_train": int(num_train), "num_val": int(num_val), "complete": False}
    marker = os.path.join(root, MARKER)
    atomic_write_text(json.dumps(meta, indent=2) + "\n", marker)  # claims the folder first
    meta["classes"] = {}
    jobs = [(split, i) for split, count in (("train", num_train), ("val", num_val)) for i in range(count)]
    hists = []
    for split, i in jobs:
        hists.append(generate_sample(root, split, i, int(seed), (height, width)))
        if progress:
            progress(len(hists), len(jobs))
    for split, part in (("train", hists[:num_train]), ("val", hists[num_train:])):
        pixels, present = class_statistics(part)
        meta["classes"][split] = {trainId2label[c].name: {"pixels": round(float(pixels[c]), 5),
                                                          "images": round(float(present[c]), 4)}
                                  for c in range(19)}
    lists = write_file_lists(root, ("train", "val"))
    meta["file_lists"] = {split: os.path.basename(path) for split, (path, _) in lists.items()}
    meta["complete"] = True
    atomic_write_text(json.dumps(meta, indent=2) + "\n", marker)
    return meta
