"""Benchmarks: runnable timing scripts, not tests (pytest does not collect them).

Each prints a small table of timings measured in ONE run on the machine at hand, and
the ratios between them, which are more portable than the absolute numbers::

    python -m benchmarks.bench_conv                # L1 NumPy convolution vs PyTorch (CPU)
    python -m benchmarks.bench_conv --json out.json
    python -m benchmarks.bench_mlp_epoch           # an MNIST epoch of the MLP, L1 vs torch

How they time: ``time.perf_counter`` around each call, a few warm-up calls first
(caches, lazy initialisation, thread pools), then many repeats, and the MEDIAN, which
a busy machine's occasional stalls do not move the way they move a mean. NumPy's BLAS
and PyTorch run on the same number of threads (``--threads``), so neither side wins
by using more cores.
"""
