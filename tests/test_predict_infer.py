"""`lpsnet predict` and `lpsnet infer` on the images users have: what works, and the errors.

Gray, gray + alpha, RGBA, 16-bit and odd-sized images must predict at their own
size; too-small, missing and unreadable images must give a one-line error that
names the file (exit code 2).
"""
import argparse
import os

import cv2
import numpy as np
import paddle
import pytest
from PIL import Image
from test_deploy import TINY_LPSNET, make_checkpoint, run_cli, smooth_image, write_config

from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.deploy import DeployedSegmenter, export_model
from paddleseg_lpsnet.deploy.config import build_transforms, val_transforms_of
from paddleseg_lpsnet.errors import DataError
from paddleseg_lpsnet.tools.predict import predict_image
from paddleseg_lpsnet.utils.config import load_config
from paddleseg_lpsnet.utils.image import list_images, read_image
from paddleseg_lpsnet.utils.visualize import ADDED_DIR, PSEUDO_COLOR_DIR, get_palette

H, W = 40, 72


def _rgb8():
    return np.clip(smooth_image(H, W, 7), 0, 255).astype(np.uint8)  # BGR


# name -> (writer(path), the 8-bit BGR image the model should see)
def _cases():
    bgr = _rgb8()
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    gray3 = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    alpha = np.linspace(0, 255, H * W).reshape(H, W).astype(np.uint8)
    odd = np.ascontiguousarray(bgr[:37, :53])
    return {
        "rgb.png": (lambda p: cv2.imwrite(p, bgr), bgr),
        "gray.png": (lambda p: cv2.imwrite(p, gray), gray3),
        "gray_alpha.png": (lambda p: Image.fromarray(np.dstack([gray, alpha]), "LA").save(p), gray3),
        "rgba.png": (lambda p: cv2.imwrite(p, np.dstack([bgr, alpha])), bgr),
        "rgb16.png": (lambda p: cv2.imwrite(p, bgr.astype(np.uint16) * 257), bgr),
        "sub/odd.jpg": (lambda p: cv2.imwrite(p, odd, [cv2.IMWRITE_JPEG_QUALITY, 100]), None),
    }


GOOD = _cases()
BAD = {"tiny.png": lambda p: cv2.imwrite(p, _rgb8()[:2, :3]),
       "corrupt.png": lambda p: open(p, "wb").write(b"this is not a png"),
       "empty.png": lambda p: open(p, "wb").close()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """good/ holds the readable cases, bad/ one file per failure case."""
    root = tmp_path_factory.mktemp("images")
    for folder, table in (("good", {k: v[0] for k, v in GOOD.items()}), ("bad", BAD)):
        for name, write in table.items():
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write(str(path))
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny LPS-Net config, its checkpoint, the model and its export directory."""
    folder = str(tmp_path_factory.mktemp("tiny_model"))
    cfg = write_config(folder, TINY_LPSNET)
    ckpt, model = make_checkpoint(folder, cfg, seed=4)
    export_dir = os.path.join(folder, "export")
    export_model(model, export_dir, transforms=val_transforms_of(load_config(cfg)))
    return cfg, ckpt, model, export_dir


@pytest.mark.parametrize("name", [n for n in GOOD if GOOD[n][1] is not None])
def test_read_image_maps_every_format_to_bgr(files, name):
    image = read_image(str(files / "good" / name))
    assert image.dtype == np.float32 and image.shape == (H, W, 3)
    np.testing.assert_allclose(image, GOOD[name][1].astype(np.float32), atol=0.51)


def test_read_image_grayscale_request(files):
    gray = read_image(str(files / "good" / "rgba.png"), channels=1)
    assert gray.shape == (H, W)


@pytest.mark.parametrize("name, message", [("corrupt.png", "not an image OpenCV can decode"),
                                           ("empty.png", "is empty"), ("missing.png", "does not exist")])
def test_read_image_errors_name_the_file(files, name, message):
    path = str(files / "bad" / name)
    with pytest.raises(DataError, match=message) as info:
        read_image(path)
    assert path in str(info.value)


def test_list_images(files, tmp_path):
    images, root = list_images(str(files / "good"))
    assert [os.path.relpath(p, root) for p in images] == sorted(GOOD)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{files}/good/rgb.png label.png\n\n{files}/good/gray.png\n")
    assert list_images(str(listing))[0] == [f"{files}/good/rgb.png", f"{files}/good/gray.png"]
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="holds no image"):
        list_images(str(tmp_path / "empty_dir"))
    with pytest.raises(DataError, match="does not exist"):
        list_images(str(tmp_path / "nowhere"))


def _predict_args(**kwargs):
    base = dict(aug_pred=False, scales=[1.0], flip_horizontal=False, flip_vertical=False,
                is_slide=False, crop_size=None, stride=None)
    return argparse.Namespace(**{**base, **kwargs})


def _dygraph(tiny_model, image, **kwargs):
    cfg, _, model, _ = tiny_model
    return predict_image(model, image, build_transforms(val_transforms_of(load_config(cfg))), _predict_args(**kwargs))


@pytest.mark.parametrize("name", sorted(GOOD))
def test_predict_and_infer_each_image_kind_at_its_size(files, tiny_model, name):
    """Both paths predict every readable kind at the image's size, and a converted image
    (gray, alpha, 16-bit) gets the prediction of its 8-bit BGR equivalent."""
    image = read_image(str(files / "good" / name))
    deployed = DeployedSegmenter(tiny_model[3], cpu_threads=2).predict([image])[0]
    dygraph = _dygraph(tiny_model, image)
    assert deployed.shape == dygraph.shape == image.shape[:2]
    assert (deployed == dygraph).mean() >= 0.9999
    equivalent = GOOD[name][1]
    if equivalent is not None:
        np.testing.assert_array_equal(dygraph, _dygraph(tiny_model, equivalent.astype(np.float32)))


def test_aug_pred_with_one_scale_and_no_flip_is_plain_prediction(files, tiny_model):
    image = read_image(str(files / "good" / "rgb.png"))
    plain = _dygraph(tiny_model, image)
    np.testing.assert_array_equal(_dygraph(tiny_model, image, aug_pred=True), plain)
    flipped = _dygraph(tiny_model, image, aug_pred=True, flip_horizontal=True, scales=[0.75, 1.0])
    assert flipped.shape == plain.shape


def test_too_small_image_is_a_data_error_naming_it(files, tiny_model):
    path = str(files / "bad" / "tiny.png")
    image = read_image(path)
    with pytest.raises(DataError, match=r"tiny\.png \(2x3\).*too small"):
        DeployedSegmenter(tiny_model[3], cpu_threads=2).predict([image], names=[path])


def _cli_args(command, tiny_model, image_path, save_dir):
    cfg, ckpt, _, export_dir = tiny_model
    if command == "predict":
        return ["predict", "--config", cfg, "--model_path", ckpt, "--image_path", image_path,
                "--save_dir", save_dir]
    return ["infer", "--model_dir", export_dir, "--image_path", image_path, "--save_dir", save_dir,
            "--cpu_threads", "2", "--batch_size", "2"]


def _check_outputs(save_dir):
    palette = get_palette(19).reshape(-1).tolist()
    for name in GOOD:
        size = (53, 37) if name.endswith("odd.jpg") else (W, H)
        colour = Image.open(os.path.join(save_dir, PSEUDO_COLOR_DIR, os.path.splitext(name)[0] + ".png"))
        assert colour.mode == "P" and colour.size == size, name
        assert colour.getpalette()[:len(palette)] == palette  # Cityscapes colours
        added = cv2.imread(os.path.join(save_dir, ADDED_DIR, name))
        assert added.shape == (size[1], size[0], 3), name


@pytest.mark.parametrize("command", ["predict", "infer"])
def test_commands_write_colour_maps_and_overlays_for_every_kind(files, tiny_model, tmp_path, capsys, command):
    """In-process `lpsnet predict|infer` (cli.main) over the folder of every readable kind."""
    assert main(_cli_args(command, tiny_model, str(files / "good"), str(tmp_path))) == 0
    _check_outputs(str(tmp_path))


@pytest.mark.parametrize("command", ["predict", "infer"])
@pytest.mark.parametrize("name, needle", [("tiny.png", "too small"), ("corrupt.png", "decode"),
                                          ("empty.png", "is empty"), ("missing.png", "does not exist")])
def test_commands_fail_on_a_bad_image_with_one_line_naming_it(files, tiny_model, tmp_path, capsys,
                                                             command, name, needle):
    assert main(_cli_args(command, tiny_model, str(files / "bad" / name), str(tmp_path))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lpsnet {command}: error: "), err
    assert name in err[0] and needle in err[0], err[0]


def test_real_processes_exit_2_with_one_line_and_write_outputs(files, tiny_model, tmp_path):
    """The installed entry point, in its own process: one good run, one bad image."""
    good = run_cli(*_cli_args("infer", tiny_model, str(files / "good"), str(tmp_path / "good")))
    assert good.returncode == 0, good.stderr[-3000:]
    assert "Backend: onnxruntime (CPU, 2 threads) (faster than Paddle Inference on CPU" in good.stdout
    _check_outputs(str(tmp_path / "good"))
    bad = run_cli(*_cli_args("predict", tiny_model, str(files / "bad" / "corrupt.png"), str(tmp_path / "bad")))
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr
    lines = [line for line in bad.stderr.splitlines() if line.startswith("lpsnet ")]
    assert len(lines) == 1 and "corrupt.png" in lines[0] and "decode" in lines[0], bad.stderr[-2000:]
