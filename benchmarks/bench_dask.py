"""Serial vs Dask feature extraction: the same ``BottleneckFeatures.transform``, side by side.

Runs one transform of N generated images (random weights, cache disabled, so every image
goes through the CNN) in this process, then on a local Dask cluster of 1 and of 2 worker
processes that split the cores between them as ``LocalCluster`` does by default
(``threads_per_worker = cores // workers``; skanimal gives each worker's TensorFlow
``cores // workers`` intra-op threads), and prints images per second and the ratio to serial.
(A cluster with a single thread in all would not be used at all: joblib runs ``n_jobs=1``
in the calling process.)

"first call" includes starting TensorFlow and building the backbone in each worker (once per
worker process); the other columns are the best of ``--repeats`` warm runs.

Usage::

    python benchmarks/bench_dask.py                       # 64 images at 96 px, VGG16
    python benchmarks/bench_dask.py --n-images 256 --size 160 --workers 1 2 4

On a machine with few cores expect little or no speed-up: the serial run already uses every
core through TensorFlow's own thread pool. Dask pays off when it adds machines (or when
decoding, not the CNN, is the bottleneck).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _timed(function, repeats):
    start = time.perf_counter()
    result = function()
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        warm.append(time.perf_counter() - start)
    return result, first, min(warm) if warm else first


def _worker_threads(client):
    from skanimal import _parallel

    infos = client.run(_parallel.worker_info).values()
    return sorted({str(info["tf_threads"][0]) if info["tf_threads"] else "unset"
                   for info in infos if info["chunks"]})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=64)
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--backbone", default="vgg16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="warm runs per setup")
    args = parser.parse_args(argv)

    import numpy as np
    from distributed import Client, LocalCluster
    from joblib import cpu_count, parallel_config

    from skanimal import BottleneckFeatures, make_shapes
    from skanimal.datasets import SHAPE_CLASSES

    per_class = -(-args.n_images // len(SHAPE_CLASSES))
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(make_shapes(tmp, n_per_class=per_class, image_size=args.size).paths)
        paths = paths[: args.n_images]

        def transformer(n_jobs):
            return BottleneckFeatures(args.backbone, weights=None, image_size=args.size,
                                      batch_size=args.batch_size, cache=False,
                                      n_jobs=n_jobs).fit()

        rows = []
        serial = transformer(None)
        reference, first, warm = _timed(lambda: serial.transform(paths), args.repeats)
        rows.append(("serial (this process)", "all (TF default)", first, warm, True))

        for n_workers in args.workers:
            cluster = LocalCluster(n_workers=n_workers,
                                   threads_per_worker=max(1, cpu_count() // n_workers),
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
            try:
                parallel = transformer(-1)
                with parallel_config(backend="dask"):
                    result, first, warm = _timed(lambda p=parallel: p.transform(paths),
                                                 args.repeats)
                threads = ", ".join(_worker_threads(client))
                same = np.allclose(result, reference, rtol=0, atol=1e-6)
                rows.append((f"dask, {n_workers} worker{'s' * (n_workers > 1)}",
                             f"{threads or '?'} per worker", first, warm, same))
            finally:
                client.close()
                cluster.close()

    n = len(paths)
    base = n / rows[0][3]
    print(f"\n{n} images of {args.size}x{args.size} px, {args.backbone} (weights=None), "
          f"batch_size={args.batch_size}, cache off, {cpu_count()} usable cores\n")
    header = f"{'setup':<24}{'TF threads':>18}{'first call s':>14}{'warm s':>9}" \
             f"{'img/s':>9}{'vs serial':>11}{'same':>6}"
    print(header)
    print("-" * len(header))
    for name, threads, first, warm, same in rows:
        rate = n / warm
        print(f"{name:<24}{threads:>18}{first:>14.2f}{warm:>9.2f}{rate:>9.1f}"
              f"{rate / base:>10.2f}x{'yes' if same else 'NO':>6}")


if __name__ == "__main__":
    main()
