"""lpsnet infer: run an exported model (lpsnet export's --save_dir) on images.

PaddleSeg's deploy/python/infer.py flags. Pre-processing is deploy.yaml's
transforms; each prediction has the size of its image. With --save_dir the
colour-mapped predictions and overlays are written as `lpsnet predict` writes them.
"""
from paddleseg_lpsnet.deploy.predictor import BACKENDS, DEVICES


def add_arguments(parser):
    parser.add_argument("--model_dir", required=True, help="export directory (holds deploy.yaml)")
    parser.add_argument("--image_path", required=True, help="an image, a directory of images or a file list")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="inference engine; default: see deploy.predictor.default_backend (printed)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="cpu or gpu")
    parser.add_argument("--save_dir", default=None,
                        help="write pseudo_color_prediction/ and added_prediction/ here")
    parser.add_argument("--cpu_threads", type=int, default=None, help="CPU threads; default: all usable cores")
    parser.add_argument("--batch_size", type=int, default=1, help="images per run (same-size images batch)")
    parser.add_argument("--custom_color", nargs="+", type=int, default=None,
                        help="R G B triples replacing the colours of classes 0, 1, ...")


def run(args):
    from paddleseg_lpsnet.deploy.segmenter import DeployedSegmenter
    from paddleseg_lpsnet.errors import ConfigError
    from paddleseg_lpsnet.utils.image import list_images, output_name, read_image
    from paddleseg_lpsnet.utils.visualize import get_palette, label_summary, save_prediction

    if args.batch_size < 1:
        raise ConfigError(f"--batch_size must be >= 1, got {args.batch_size}.")
    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise ConfigError(f"--cpu_threads must be >= 1, got {args.cpu_threads}.")
    images, root = list_images(args.image_path)
    segmenter = DeployedSegmenter(args.model_dir, args.backend, args.device, args.cpu_threads)
    print(f"Backend: {segmenter.predictor.describe()} ({segmenter.backend_reason}).")
    palette = get_palette(segmenter.config.num_classes, args.custom_color)
    channels = segmenter.config.in_channels
    for start in range(0, len(images), args.batch_size):
        paths = images[start:start + args.batch_size]
        arrays = [read_image(p, channels) for p in paths]
        labels = segmenter.predict(arrays, names=paths)
        for path, array, label in zip(paths, arrays, labels):
            print(f"{path}: {label_summary(label)}")
            if args.save_dir:
                save_prediction(args.save_dir, output_name(path, root), label, palette, array)
    where = f"; predictions in {args.save_dir}" if args.save_dir else ""
    print(f"Ran {len(images)} image(s) through {args.model_dir} with {segmenter.backend}{where}.")
    return 0
