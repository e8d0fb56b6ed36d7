"""Deployment speed table: ours and upstream's models, each backend, against the fp32 GEMM peak.

The same suite as `lpsnet bench` (paddleseg_lpsnet/deploy/suite.py), runnable from a
checkout without installing:

    python benchmarks/deploy_speed.py                      # everything: ~1 hour on 2 cores
    python benchmarks/deploy_speed.py --models lpsnet_m upstream_lpsnet_m --sizes 1024x2048
    python benchmarks/deploy_speed.py --sizes 512x1024 --repeats 3   # quick look

Prints the Markdown table and writes bench.json (every run's time, the machine,
the GEMM peaks) and bench.md to --save_dir (default benchmarks/results/deploy_speed).
Quote numbers only from a quiet machine: the table states the load average.
"""
import argparse
import os
import sys

from common import ROOT, main_with_errors

from paddleseg_lpsnet.tools import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench.add_arguments(parser)
    parser.set_defaults(save_dir=os.path.join(ROOT, "benchmarks", "results", "deploy_speed"))
    return bench.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_with_errors(main))
