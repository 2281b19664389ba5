"""report.md and the plots of an evaluation (or a probe's cross-validation).

The tables' columns are the registered metrics (`metric_defs`) that name the table in their `tables`:
"report" for the cross-dataset table, "report_per_method" for the per-method table and the notes on
undefined values and missing intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.evaluation.errors import EvaluationError
from deepfake_hf.evaluation.metric_defs import MetricDef, get_metric, in_table
from deepfake_hf.evaluation.metrics import binary_metrics
from deepfake_hf.evaluation.perturbations import PERTURBATIONS

# the metric the robustness table and plot follow across perturbation strengths
ROBUSTNESS_METRIC = "auroc"


# ----------------------------------------------------------------------------------------- report
def _cell(metrics: dict[str, Any] | None, key: str, percent: bool = True) -> str:
    if not metrics or metrics.get(key) is None:
        return "n/a"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{metrics[key] * scale:.{digits}f}"
    interval = (metrics.get("ci") or {}).get(key)
    if interval:
        text += f" [{interval[0] * scale:.{digits}f}, {interval[1] * scale:.{digits}f}]"
    return text


def _columns(table: str) -> list[tuple[str, MetricDef, str]]:
    """(level, metric, header) of a report table: each metric's frame level, then its video level if it has one."""
    columns = []
    for metric in in_table(table):
        if metric.video_column:
            columns += [(level, metric, f"{level} {metric.report_label}") for level in ("frame", "video")]
        else:
            columns.append(("frame", metric, metric.report_label))
    return columns


def summary_table(result: dict[str, Any]) -> list[str]:
    """The cross-dataset table as markdown lines: rows test sets, columns as in the papers."""
    columns = _columns("report")
    lines = ["| test set | frames | videos | " + " | ".join(header for _, _, header in columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for name, entry in result["test_sets"].items():
        videos = entry["video"]["n"] if entry["video"] else "-"
        cells = [_cell(entry[level], metric.name, metric.percent) for level, metric, _ in columns]
        lines.append(f"| {name} | {entry['frame']['n']} | {videos} | " + " | ".join(cells) + " |")
    return lines


def render_report(result: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """report.md: cross-dataset table (percent, 95% bootstrap intervals), per-method and robustness tables."""
    lines = [f"# Evaluation of `{result['model']}`", "",
             f"Decision threshold {result['threshold']:g} (fake probability), calibration temperature "
             f"{result['calibration_temperature']:g}, video score: {result['video_aggregation']} of frame "
             "scores per video (grouped by full path). Values in percent; brackets: 95% bootstrap intervals "
             "that resample whole videos (stills: single images).", ""]
    lines += summary_table(result)
    for name, message in result.get("errors", {}).items():
        lines += ["", f"**{name} not evaluated**: {message}"]
    method_columns = _columns("report_per_method")
    noted = {metric.name for _, metric, _ in method_columns}  # undefined values and missing intervals explained
    undefined = {(name, level, key): reason for name, entry in result["test_sets"].items()
                 for level in ("frame", "video") if entry[level]
                 for key, reason in entry[level]["reasons"].items() if key in noted}
    if undefined:
        lines += ["", "n/a: " + "; ".join(sorted({f"{name} {level}: {reason}"
                                                   for (name, level, _), reason in undefined.items()}))]
    method_rows = [(name, method, m) for name, entry in result["test_sets"].items()
                   for method, m in entry["per_method"].items()]
    if method_rows:
        lines += ["", "## Per manipulation method (real samples vs. that method's fakes)", "",
                  "| test set | method | " + " | ".join(header for _, _, header in method_columns) + " |",
                  "|---|---|" + "---|" * len(method_columns)]
        for name, method, m in method_rows:
            cells = [_cell(m[level], metric.name, metric.percent) for level, metric, _ in method_columns]
            lines.append(f"| {name} | {method} | " + " | ".join(cells) + " |")
        missing = sorted({f"{name} {method} {level}: {reason}" for name, method, m in method_rows
                          for level in ("frame", "video") if m[level]
                          for key, reason in m[level].get("ci_reasons", {}).items() if key in noted})
        if missing:
            lines += ["", "No interval: " + "; ".join(missing)]
    if result.get("robustness"):
        followed = get_metric(ROBUSTNESS_METRIC)
        keys = list(next(iter(result["robustness"].values())))
        lines += ["", f"## Robustness (frame {followed.label} under perturbation)", "",
                  "| test set | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, entries in result["robustness"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(entries[key], followed.name, followed.percent)
                                                     for key in keys) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    lines += ["", "Metric definitions: AUROC and AP (average precision) from the ranking of fake probabilities; "
              "EER is the interpolated ROC point where FPR = 1 - TPR; EER (DeepfakeBench) is the FPR of the "
              "existing ROC point nearest to that line (no interpolation), as DeepfakeBench reports it; "
              "accuracy at the decision threshold. "
              "Full values, log loss, Brier score and ECE: metrics.json.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- plots
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EvaluationError("plots need matplotlib: pip install 'deepfake-hf[app]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: str | Path,
                robustness: dict[str, Any] | None = None) -> list[str]:
    """ROC curves, score histograms per class, reliability diagram (and robustness) as PNG files."""
    from sklearn.calibration import calibration_curve

    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []

    figure, axis, _ = roc_figure(curves, plt)
    written.append(_save(figure, out_dir / "roc.png", plt))

    count = len(curves)
    figure, axes = plt.subplots(1, count, figsize=(4.5 * count, 3.5), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for axis, (name, (labels, scores)) in zip(axes[0], curves.items()):
        axis.hist(scores[labels == 0], bins=bins, alpha=0.6, label=f"real (n={int((labels == 0).sum())})")
        axis.hist(scores[labels == 1], bins=bins, alpha=0.6, label=f"fake (n={int((labels == 1).sum())})")
        axis.set(title=name, xlabel="fake probability", ylabel="frames")
        axis.legend(fontsize=8)
    figure.suptitle("Score distribution per class")
    written.append(_save(figure, out_dir / "score_histograms.png", plt))

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfectly calibrated")
    for name, (labels, scores) in curves.items():
        if labels.size:
            prob_true, prob_pred = calibration_curve(labels, scores, n_bins=15, strategy="uniform")  # ECE's bins
            ece = binary_metrics(labels, scores)["ece"]
            axis.plot(prob_pred, prob_true, "o-", label=f"{name} (ECE {ece:.3f})")
    axis.set(xlabel="mean predicted fake probability", ylabel="fraction fake", title="Reliability diagram",
             xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="upper left", fontsize=8)
    written.append(_save(figure, out_dir / "reliability.png", plt))

    if robustness:
        written.append(plot_robustness(robustness, out_dir / "robustness.png"))
    return written


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], plt=None):
    """(figure, ROC axis, legend) for {name: (labels, scores)}.

    The legend sits in its own panel below the plot: inside the axes, a corner legend with several
    test sets covered the curves (a weak detector's curve runs through every corner).
    """
    from sklearn.metrics import roc_curve

    plt = plt or _pyplot()
    entries = 2 + len(curves)
    legend_height = 0.25 + 0.2 * entries
    figure, (axis, legend_axis) = plt.subplots(2, 1, figsize=(5, 5 + legend_height),
                                               gridspec_kw={"height_ratios": [5, legend_height]})
    for name, (labels, scores) in curves.items():
        if 0 < labels.sum() < labels.size:
            fpr, tpr, _ = roc_curve(labels, scores)
            auroc = binary_metrics(labels, scores)["auroc"]
            axis.plot(fpr, tpr, label=f"{name} (AUROC {auroc:.3f})")
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    axis.plot([0, 1], [1, 0], ":", color="grey", linewidth=0.8, label="EER line")
    axis.set(xlabel="false-positive rate (real called fake)", ylabel="true-positive rate (fake caught)",
             title="ROC (frame level)", xlim=(0, 1), ylim=(0, 1.01))
    legend_axis.axis("off")
    legend = legend_axis.legend(*axis.get_legend_handles_labels(), loc="center", fontsize=8, frameon=False)
    return figure, axis, legend


def plot_robustness(robustness: dict[str, Any], path: str | Path) -> str:
    """ROBUSTNESS_METRIC against perturbation strength, one panel per perturbation kind, one line per test set."""
    plt = _pyplot()
    followed = get_metric(ROBUSTNESS_METRIC)
    key = followed.name
    kinds = [kind for kind in PERTURBATIONS
             if any(name.startswith(kind + ":") for entries in robustness.values() for name in entries)]
    figure, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.5), squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        label, smaller_is_stronger, unperturbed = PERTURBATIONS[kind]
        for name, entries in robustness.items():
            points = sorted((float(perturbation.split(":")[1]), entry[key]) for perturbation, entry in entries.items()
                            if perturbation.startswith(kind + ":") and entry[key] is not None)
            if entries["clean"][key] is not None:  # the unperturbed score starts each line
                points = sorted(points + [(unperturbed, entries["clean"][key])])
            if points:
                axis.plot(*zip(*points), "o-", label=name)
        if smaller_is_stronger:
            axis.invert_xaxis()
        axis.set(title=kind, xlabel=f"{label} (stronger ->)", ylabel=f"frame {followed.label}", ylim=(0, 1.02))
        axis.legend(fontsize=8)
    figure.suptitle(f"Robustness: frame {followed.label} against perturbation strength")
    return _save(figure, path, plt)


def _save(figure, path, plt):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)
