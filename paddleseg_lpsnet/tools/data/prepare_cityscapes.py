"""lpsnet data prepare-cityscapes: make a Cityscapes download trainable with PaddleSeg.

Draws gtFine/*/*/*_gtFine_labelTrainIds.png from the *_gtFine_polygons.json files
with cityscapesscripts (its createLabelImage and label table, as its
createTrainIdLabelImgs does) and writes train.txt / val.txt at the root.
"""
import os
import sys


def add_arguments(parser):
    parser.add_argument("--root", required=True,
                        help="Cityscapes root holding leftImg8bit/ and gtFine/ (the two "
                             "*_trainvaltest.zip archives extracted)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val", "test"],
                        help="splits to convert and list (default: train val)")
    parser.add_argument("--num_workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes drawing labels (default: up to 4)")
    parser.add_argument("--force", action="store_true", help="redraw labelTrainIds that exist")


def _progress(done, total):
    if done == total or done % 100 == 0:
        print(f"\r  {done}/{total} annotations", end="\n" if done == total else "",
              file=sys.stderr, flush=True)


def run(args):
    from paddleseg_lpsnet.datasets.cityscapes import prepare_cityscapes
    result = prepare_cityscapes(args.root, tuple(args.splits), force=args.force,
                                num_workers=args.num_workers, progress=_progress)
    lists = ", ".join(f"{os.path.basename(path)} ({n} samples)" for path, n in result["lists"].values())
    print(f"{args.root}: drew {result['converted']} labelTrainIds images "
          f"({result['skipped']} existed and were kept); wrote {lists}.")
    return 0
