"""lpsnet data synth: generate street scenes in the Cityscapes layout.

Writes leftImg8bit/{train,val}/<city>/*_leftImg8bit.png, gtFine/.../*_gtFine_polygons.json,
*_gtFine_labelIds.png and *_gtFine_labelTrainIds.png (ids from cityscapesscripts),
train.txt / val.txt (PaddleSeg file lists) and synth_cityscapes.json (parameters and
class statistics). PaddleSeg's `Cityscapes` dataset reads the folder as it is.
"""
import sys
import time


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    parser.add_argument("--num_train", type=int, default=300, help="training images (default 300)")
    parser.add_argument("--num_val", type=int, default=60, help="validation images (default 60)")
    parser.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"),
                        help="image height and width (default 256 512)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier `lpsnet data synth` output in --out")


def _progress(done, total):
    if done == total or done % 20 == 0:
        print(f"\r  {done}/{total} images", end="\n" if done == total else "", file=sys.stderr, flush=True)


def class_table(meta):
    """Markdown-ish table of the per-class pixel share and image presence per split."""
    splits = list(meta["classes"])
    lines = ["class".ljust(14) + "".join(f"{s + ' px%':>12}{s + ' img%':>12}" for s in splits)]
    for name in meta["classes"][splits[0]]:
        cells = "".join(f"{100 * meta['classes'][s][name]['pixels']:>12.2f}"
                        f"{100 * meta['classes'][s][name]['images']:>12.1f}" for s in splits)
        lines.append(name.ljust(14) + cells)
    return "\n".join(lines)


def run(args):
    from paddleseg_lpsnet.datasets.synth_cityscapes import generate_dataset
    start = time.time()
    meta = generate_dataset(args.out, args.num_train, args.num_val, tuple(args.size), args.seed,
                            force=args.force, progress=_progress)
    print(class_table(meta))
    print(f"Wrote {args.num_train} train + {args.num_val} val images of {args.size[0]}x{args.size[1]} "
          f"(seed {args.seed}) to {args.out} in {time.time() - start:.0f}s; file lists "
          f"{', '.join(meta['file_lists'].values())}.")
    return 0
