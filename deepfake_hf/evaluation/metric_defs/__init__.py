"""The metric registry: one module per metric, named after it, each defining `METRIC = MetricDef(...)`.

A definition says everything the package needs to know about one metric: its key in metrics.json, its
display label, whether the report shows it in percent, whether higher is better, its model-index type on
the model card, where it appears (the report's tables, the card's tables, the robustness entries,
bootstrap intervals) and how it is computed from labels, scores and the decision threshold.
`binary_metrics`, `evaluate_scores`, the report, the robustness entries and the model card all read
`registered_metrics()`; adding a metric is one new module in this folder (found with pkgutil), no edit
elsewhere. This package imports nothing heavy: the model card reads it.

A metric's `compute(inputs)` returns a float, or raises `Undefined(reason)` when the metric does not exist
on these inputs (AUROC on one class, ...): the result then holds None and `reasons[name]` says why.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deepfake_hf.evaluation.errors import MetricDefinitionError

if TYPE_CHECKING:
    import numpy as np

# Where a metric can appear (MetricDef.tables):
TABLES = {
    "report": "a column of report.md's cross-dataset table (and of the summary `evaluate` prints)",
    "report_per_method": "a column of report.md's per-method table; its n/a and missing-interval notes",
    "card": "a column of the model card's evaluation tables (per level, per method, robustness)",
    "card_calibration": "a column of the model card's probability-quality table",
    "robustness": "a value of each robustness entry in metrics.json (frame, and video_<name> for video metrics)",
}


class Undefined(Exception):
    """Raised by a metric's `compute`: the metric does not exist on these inputs; the message says why."""


@dataclass(frozen=True)
class MetricDef:
    """One metric, defined once. Positions order the metric among the others where several are listed."""

    name: str  # key in binary_metrics' result and metrics.json
    label: str  # display name (report, card tables, model-index metric name)
    compute: Callable[[MetricInputs], float]
    order: float  # position among metrics.json's metric keys
    percent: bool = False  # the report shows it in percent
    higher_is_better: bool | None = True  # None: not a quality score (e.g. a threshold)
    model_index_type: str | None = None  # the card's model-index metric type; None: not in model-index
    column: float | None = None  # position among table columns (report and card) and in model-index
    interval: float | None = None  # position among the metrics given bootstrap intervals; None: no interval
    tables: AbstractSet[str] = field(default_factory=frozenset)  # keys of TABLES (kept as a frozenset)
    video_column: bool = False  # the report's tables and robustness entries also show its video level
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", frozenset(self.tables))
        unknown = sorted(self.tables - set(TABLES))
        if unknown:
            raise MetricDefinitionError(f"metric {self.name!r}: unknown table(s) {', '.join(unknown)} "
                                        f"(known: {', '.join(TABLES)})")
        if (self.tables or self.model_index_type) and self.column is None:
            raise MetricDefinitionError(f"metric {self.name!r}: shown in a table or model-index but has no column")

    @property
    def report_label(self) -> str:
        """The label in report.md, where words other than acronyms are lower case ("accuracy", "AUROC")."""
        return self.label[:1].lower() + self.label[1:] if self.label[1:2].islower() else self.label


class MetricInputs:
    """Labels (0 real, 1 fake), scores and threshold, with the quantities several metrics share, computed once."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, threshold: float, ece_bins: int = 15,
                 metrics: dict[str, MetricDef] | None = None) -> None:
        self.labels, self.scores, self.threshold, self.ece_bins = labels, scores, float(threshold), ece_bins
        self.n, self.n_fake = int(labels.size), int(labels.sum())
        self.n_real = self.n - self.n_fake
        self._metrics = registered_metrics() if metrics is None else metrics
        self._values: dict[str, float | None] = {}
        self.reasons: dict[str, str] = {}

    @functools.cached_property
    def predicted(self) -> np.ndarray:
        """1 where the score is at or above the threshold (called fake), as the model's config.threshold applies."""
        return (self.scores >= self.threshold).astype(int)

    @functools.cached_property
    def true_positive(self) -> int:
        return int((self.predicted & self.labels).sum())

    @functools.cached_property
    def predicted_fake(self) -> int:
        return int(self.predicted.sum())

    @functools.cached_property
    def equal_error(self) -> tuple[float, float]:
        """(EER, its threshold), shared by `eer` and `eer_threshold`."""
        from deepfake_hf.evaluation.curves import equal_error_rate

        return equal_error_rate(self.labels, self.scores)

    def need_both_classes(self) -> None:
        if not 0 < self.n_fake < self.n:
            raise Undefined(f"only one class present ({'fake' if self.n_fake else 'real'} only)")

    def need_probabilities(self) -> None:
        if not (self.scores.min() >= 0.0 and self.scores.max() <= 1.0):
            raise Undefined("scores are not probabilities (outside [0, 1])")

    def value(self, name: str) -> float | None:
        """Metric `name` on these inputs (computed once; None when undefined, with its reason recorded)."""
        if name not in self._values:
            try:
                self._values[name] = self._metrics[name].compute(self)
            except Undefined as why:
                self._values[name] = None
                self.reasons[name] = str(why)
        return self._values[name]


@functools.cache
def registered_metrics() -> dict[str, MetricDef]:
    """{name: MetricDef} of every module in this folder, in metrics.json order (`MetricDef.order`)."""
    found: dict[str, MetricDef] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        metric = getattr(module, "METRIC", None)
        if not isinstance(metric, MetricDef):
            raise MetricDefinitionError(f"{module.__file__}: defines no METRIC = MetricDef(...)")
        if metric.name != module_info.name:  # one file per metric, named after it: the folder lists them all
            raise MetricDefinitionError(f"{module.__file__}: defines metric {metric.name!r}; the file must be "
                                        f"named {metric.name}.py")
        found[metric.name] = metric
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def metric_names() -> tuple[str, ...]:
    """The metric keys of binary_metrics' result, in metrics.json order."""
    return tuple(registered_metrics())


def get_metric(name: str) -> MetricDef:
    return registered_metrics()[name]


def interval_metrics() -> tuple[str, ...]:
    """The metrics that get bootstrap intervals by default, in the order of metrics.json's "ci"."""
    chosen = [(metric.interval, metric.name) for metric in registered_metrics().values() if metric.interval is not None]
    return tuple(name for _, name in sorted(chosen, key=lambda pair: pair[0]))


def in_table(table: str) -> list[MetricDef]:
    """The metrics shown in `table` (a key of TABLES), in column order (robustness: interval order, then the rest)."""
    if table not in TABLES:
        raise MetricDefinitionError(f"unknown table {table!r} (known: {', '.join(TABLES)})")
    chosen = [metric for metric in registered_metrics().values() if table in metric.tables]
    if table == "robustness":  # metrics.json's robustness entries list their keys as the "ci" intervals do
        return sorted(chosen, key=lambda m: (m.interval is None, m.interval or 0.0, m.order))
    return _by_column(chosen)


def model_index_metrics() -> list[MetricDef]:
    """The metrics in the model card's model-index, in column order."""
    chosen = [metric for metric in registered_metrics().values() if metric.model_index_type]
    return _by_column(chosen)


def _by_column(metrics: list[MetricDef]) -> list[MetricDef]:
    # every metric in a table or the model-index has a column (MetricDef.__post_init__ checks it)
    return sorted(metrics, key=lambda metric: metric.column if metric.column is not None else float("inf"))


__all__ = ["TABLES", "MetricDef", "MetricInputs", "Undefined", "get_metric", "in_table",
           "interval_metrics", "metric_names", "model_index_metrics", "registered_metrics"]
