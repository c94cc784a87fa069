"""Benchmark harness for waba-monitor (issue 5): ``python -m benchmarks.run``.

Everything under test runs as its own process: the Graph API simulator
(:mod:`benchmarks.simulator`), the daemon (``python -m monitor run``) and the naive baseline
exporter (:mod:`benchmarks.baseline`). :mod:`benchmarks.run` drives them and writes the results
table of ``BENCHMARKS.md``. :mod:`benchmarks.templates` measures what message templates cost
(issue 12), :mod:`benchmarks.steady` (``python -m benchmarks.run --steady``) the daemon's
steady state with everything on (issue 14).
"""
