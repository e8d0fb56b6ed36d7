"""lpsnet data synth-imagenet: a small generated ImageNet-style set (PaddleClas layout).

Classes differ by shape and texture (see paddleseg_lpsnet.datasets.synth_imagenet);
the file lists are PaddleClas ImageNetDataset lists, so a pretraining config runs on
the tree with `-o DataLoader.Train.dataset.image_root=OUT` and the list paths.
"""


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="new directory for the tree")
    parser.add_argument("--classes", type=int, default=4, help="number of classes (2-30)")
    parser.add_argument("--per_class", type=int, default=40, help="training images per class")
    parser.add_argument("--val_per_class", type=int, default=10, help="validation images per class")
    parser.add_argument("--size", type=int, default=48, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


def run(args):
    from paddleseg_lpsnet.datasets.synth_imagenet import write_synth_imagenet

    counts = write_synth_imagenet(args.out, num_classes=args.classes, per_class=args.per_class,
                                  val_per_class=args.val_per_class, size=args.size, seed=args.seed)
    print(f"Wrote {counts['train']} training and {counts['val']} validation images of "
          f"{args.classes} classes ({args.size}x{args.size}) to {args.out} "
          f"(train_list.txt, val_list.txt, labels.txt).")
    return 0
