"""Head sampling: a fresh trace is sampled with probability ``rate``; a trace that arrives
with a sampled flag (W3C ``traceparent``) keeps the caller's decision.

An unsampled trace is still traced locally at almost no cost, so that a request that
turns out slow or errored, and calls over their slow threshold, are exported anyway
(see ``RootSpan``).
"""
import random


class Sampler:
    __slots__ = ("rate", "_random")

    def __init__(self, rate: float):
        self.rate = rate
        self._random = random.random

    def sample_new_trace(self) -> bool:
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and self._random() < rate)
