import numpy as np
import pytest
from PIL import Image

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.utils.visualize import (colorize, generic_palette, get_palette, label_summary, overlay,
                                              save_prediction)


def test_cityscapes_palette_for_19_classes():
    palette = get_palette(19)
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert tuple(palette[0]) == (128, 64, 128)   # road
    assert tuple(palette[10]) == (70, 130, 180)  # sky
    assert tuple(palette[18]) == (119, 11, 32)   # bicycle
    assert tuple(palette[255]) == (0, 0, 0)      # ignore
    assert len({tuple(c) for c in palette[:19]}) == 19


def test_generic_palette_gives_every_label_its_own_colour():
    palette = get_palette(7)
    assert np.array_equal(palette, generic_palette())
    assert len({tuple(c) for c in palette[:255]}) == 255
    assert tuple(palette[0]) == (0, 0, 0) and tuple(palette[1]) == (128, 0, 0) and tuple(palette[2]) == (0, 128, 0)
    assert tuple(palette[255]) == (0, 0, 0)


def test_custom_color_overrides_the_first_labels():
    palette = get_palette(19, custom_color=[1, 2, 3, 4, 5, 6])
    assert tuple(palette[0]) == (1, 2, 3) and tuple(palette[1]) == (4, 5, 6)
    assert tuple(palette[2]) == (70, 70, 70)
    with pytest.raises(ConfigError, match="R G B triples"):
        get_palette(19, custom_color=[1, 2])
    with pytest.raises(ConfigError, match="R G B triples"):
        get_palette(19, custom_color=[1, 2, 300])


def test_colorize_and_overlay():
    palette = get_palette(19)
    label = np.array([[0, 10], [255, 18]])
    rgb = colorize(label, palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 1]) == (70, 130, 180) and tuple(rgb[1, 0]) == (0, 0, 0)
    with pytest.raises(ValueError, match="outside the palette"):
        colorize(np.array([[256]]), palette)
    np.testing.assert_array_equal(colorize(label[None], palette), rgb)  # [1, H, W] from a loader
    with pytest.raises(ValueError, match="H, W"):
        colorize(np.zeros((2, 2, 2, 2)), palette)
    image = np.full((2, 2, 3), 100, dtype=np.float32)
    blended = overlay(image, label, palette, weight=0.5)
    assert tuple(blended[0, 1]) == (140, 115, 85)  # BGR: (100 + 180) / 2, (100 + 130) / 2, (100 + 70) / 2


def test_save_prediction_writes_palette_png_and_overlay(tmp_path):
    palette = get_palette(19)
    label = np.random.RandomState(0).randint(0, 19, (5, 7))
    image = np.zeros((5, 7, 3), np.float32)
    paths = save_prediction(str(tmp_path), "city/frame.jpg", label, palette, image)
    assert paths == [str(tmp_path / "pseudo_color_prediction" / "city" / "frame.png"),
                     str(tmp_path / "added_prediction" / "city" / "frame.jpg")]
    saved = Image.open(paths[0])
    assert saved.mode == "P"
    np.testing.assert_array_equal(np.array(saved), label)  # pixel values are the class ids
    assert saved.getpalette()[:6] == [128, 64, 128, 244, 35, 232]
    assert "5x7" in label_summary(label)
