"""In-process aggregation: counters, gauges and explicit-bucket histograms, keyed by series.

Only the reporter thread touches these (``Registry`` folds the app's recorded values into
them under its lock), so they need no locks of their own. ``collect`` runs once per
interval; with delta temporality it swaps the series out (memory is bounded by what one
interval saw), with cumulative it copies them.

A series is identified by a hashable key; ``attributes_of(key)`` turns it into OTLP
attributes only at export.
"""
import logging
import time
from bisect import bisect_left

from ..report import otlp

log = logging.getLogger("spyglass")

DELTA = otlp.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = otlp.AGGREGATION_TEMPORALITY_CUMULATIVE

# OpenTelemetry's advisory buckets for durations in seconds (http.server.request.duration).
DURATION_BOUNDARIES = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                       7.5, 10.0)
# OpenTelemetry SDK's default explicit buckets, for histograms of anything else.
DEFAULT_BOUNDARIES = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                      2500.0, 5000.0, 7500.0, 10000.0)

# The series every value goes to once an instrument has ``max_series`` of them.
OVERFLOW = object()
OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}

# Histogram point layout: [count, sum, min, max, bucket counts...]
_COUNT, _SUM, _MIN, _MAX, _BUCKETS = 0, 1, 2, 3, 4


class Instrument:
    kind = ""

    def __init__(self, name, unit, description, attributes_of, max_series, temporality):
        self.name = name
        self.unit = unit
        self.description = description
        self.attributes_of = attributes_of
        self.max_series = max_series
        self.temporality = temporality
        self._warned_overflow = False
        self.reset()

    def reset(self):
        """No series (in a forked child: the parent's data is the parent's to export)."""
        self._series = {}
        self.start_ns = time.time_ns()

    def _new_series(self, key):
        """For a key not seen yet: a new series, or the overflow one past the cap."""
        if len(self._series) >= self.max_series:
            if not self._warned_overflow:
                self._warned_overflow = True
                log.warning("spyglass: metric %r has more than %d label sets (metrics_max_series); "
                            "further ones are counted in one series marked otel.metric.overflow",
                            self.name, self.max_series)
            key = OVERFLOW
            point = self._series.get(OVERFLOW)
            if point is not None:
                return point
        point = self._series[key] = self._empty_point()
        return point

    def _take(self):
        """The series to export now, reset when delta; and the interval's start."""
        now = time.time_ns()
        if self.temporality == DELTA and self.kind != "gauge":
            series, self._series = self._series, {}
            start, self.start_ns = self.start_ns, now
        else:
            series, start = self._series, self.start_ns
        return series, start, now

    def _attributes(self, key):
        return OVERFLOW_ATTRIBUTES if key is OVERFLOW else self.attributes_of(key)


class _OneNumber(Instrument):
    """An instrument whose point is one number (a counter's sum, a gauge's last value)."""

    def _empty_point(self):
        return [0]

    def collect(self):
        series, start, now = self._take()
        if not series:
            return None
        start = self._point_start(start)
        points = [otlp.number_point(point[0], now, start, self._attributes(key))
                  for key, point in series.items()]
        return self._metric(points)


class Counter(_OneNumber):
    """A monotonic sum."""

    kind = "counter"

    def record(self, key, value):
        point = self._series.get(key) or self._new_series(key)
        point[0] += value

    def _point_start(self, start):
        return start

    def _metric(self, points):
        return otlp.sum_metric(self.name, self.unit, self.description, points,
                               monotonic=True, temporality=self.temporality)


class Gauge(_OneNumber):
    """The last value set, per series; never reset."""

    kind = "gauge"

    def record(self, key, value):
        point = self._series.get(key) or self._new_series(key)
        point[0] = value

    def _point_start(self, start):
        return 0  # a gauge's value is of its moment: no start time

    def _metric(self, points):
        return otlp.gauge_metric(self.name, self.unit, self.description, points)


class Histogram(Instrument):
    """Explicit buckets: bucket i counts values in (boundaries[i-1], boundaries[i]]."""

    kind = "histogram"

    def __init__(self, name, unit, description, attributes_of, max_series, temporality,
                 boundaries=DEFAULT_BOUNDARIES):
        self.boundaries = tuple(float(b) for b in boundaries)
        super().__init__(name, unit, description, attributes_of, max_series, temporality)

    def _empty_point(self):
        return [0, 0.0, float("inf"), float("-inf")] + [0] * (len(self.boundaries) + 1)

    def record(self, key, value):
        point = self._series.get(key) or self._new_series(key)
        point[_COUNT] += 1
        point[_SUM] += value
        if value < point[_MIN]:
            point[_MIN] = value
        if value > point[_MAX]:
            point[_MAX] = value
        point[_BUCKETS + bisect_left(self.boundaries, value)] += 1

    def collect(self):
        series, start, now = self._take()
        if not series:
            return None
        points = [otlp.histogram_point(point[_COUNT], point[_SUM], point[_BUCKETS:],
                                       self.boundaries, now, start, self._attributes(key),
                                       point[_MIN], point[_MAX])
                  for key, point in series.items() if point[_COUNT]]
        return otlp.histogram_metric(self.name, self.unit, self.description, points,
                                     self.temporality)


KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
