"""Shared by the benchmark scripts: best-of-N timing, and the bar check printout."""
import time


def per_call(function, number, repeat=7):
    """Best per-call seconds over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function(number)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def verdict(value, bar, lower_is_better=True):
    ok = value <= bar if lower_is_better else value >= bar
    return "ok" if ok else "OVER THE BAR"
