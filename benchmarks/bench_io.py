"""Time the fast submission writer against pandas DataFrame.to_csv on the full test size, and check identity.

python -m benchmarks.bench_io [--images 10022]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kit.competitions.mars.submission import csv_bytes, pandas_csv


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10022)
    args = parser.parse_args(argv)
    labels = np.random.default_rng(0).integers(1, 5, (args.images, 64, 128))
    started = time.perf_counter()
    fast = csv_bytes(labels)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    slow = pandas_csv(labels)
    slow_s = time.perf_counter() - started
    if fast != slow:
        raise SystemExit("the fast writer's bytes differ from pandas to_csv")
    ratio = slow_s / fast_s
    print(f"{args.images} images, {len(fast) / 1e6:.0f} MB: fast {fast_s:.2f} s, pandas to_csv {slow_s:.2f} s")
    print(f"byte-identical; speed-up {ratio:.1f}x")
    return ratio


if __name__ == "__main__":
    main()
