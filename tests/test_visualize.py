"""Colour maps: Cityscapes' palette for 19 classes, distinct generic colours, ignore in black."""
import numpy as np
import pytest

from paddleseg_lpsnet.utils.visualize import colorize, generic_palette, get_palette


def test_cityscapes_palette_for_19_classes():
    palette = get_palette(19)
    assert palette.shape == (19, 3) and palette.dtype == np.uint8
    assert tuple(palette[0]) == (128, 64, 128)   # road
    assert tuple(palette[10]) == (70, 130, 180)  # sky
    assert tuple(palette[13]) == (0, 0, 142)     # car


@pytest.mark.parametrize("num_classes", [2, 4, 21, 150, 256])
def test_generic_palette_colours_are_distinct_and_never_black(num_classes):
    palette = get_palette(num_classes)
    assert palette.shape == (num_classes, 3)
    assert len({tuple(c) for c in palette}) == num_classes
    assert not (palette == 0).all(axis=1).any()


def test_colorize_maps_classes_and_paints_ignore_black():
    palette = generic_palette(3)
    label = np.array([[0, 1], [2, 255]], np.uint8)
    out = colorize(label, palette)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], palette[0])
    np.testing.assert_array_equal(out[1, 0], palette[2])
    np.testing.assert_array_equal(out[1, 1], [0, 0, 0])
    np.testing.assert_array_equal(colorize(label[None], palette), out)  # [1, H, W] as from a loader
    with pytest.raises(ValueError, match="H, W"):
        colorize(np.zeros((2, 2, 2, 2)), palette)
