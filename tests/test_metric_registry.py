"""The metric registry (`evaluation.metric_defs`): one module per metric, read by every place that shows metrics.

A toy metric added as one new module (in a temporary folder on the registry's package path) appears in
binary_metrics, evaluate's metrics.json, its robustness entries, report.md's table, the summary the CLI
prints, the Trainer's metrics and the model card's model-index and tables, with no other edit.
"""

import json
import re
import sys

import numpy as np
import pytest
import yaml

from deepfake_hf.evaluation import metric_defs
from deepfake_hf.evaluation.errors import MetricDefinitionError
from deepfake_hf.evaluation.metric_defs import (
    TABLES,
    MetricDef,
    in_table,
    interval_metrics,
    metric_names,
    model_index_metrics,
    registered_metrics,
)

from .conftest import tiny_detector, write_image

TOY_METRIC = '''
"""Mean score: the mean fake probability (a toy metric for the registry test)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    return float(inputs.scores.mean())


METRIC = MetricDef(name="mean_score", label="Mean score", compute=compute, order=99, percent=True,
                   model_index_type="mean_score", column=99, tables={"report", "card", "robustness"})
'''


@pytest.fixture
def extra_metric_folder(tmp_path, monkeypatch):
    """A second folder on the registry package's path: a module written there is discovered like a built-in one."""
    folder = tmp_path / "more_metrics"
    folder.mkdir()
    monkeypatch.setattr(metric_defs, "__path__", [*metric_defs.__path__, str(folder)])
    registered_metrics.cache_clear()
    yield folder
    for name in [name for name in sys.modules if name.startswith(f"{metric_defs.__name__}.")]:
        if getattr(sys.modules[name], "__file__", "").startswith(str(folder)):
            del sys.modules[name]
    registered_metrics.cache_clear()


def test_builtin_metrics_in_metrics_json_order():
    assert metric_names() == ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "ap", "eer",
                              "eer_threshold", "eer_deepfakebench", "log_loss", "brier", "ece")
    assert interval_metrics() == ("auroc", "ap", "eer", "accuracy", "balanced_accuracy")
    assert [m.name for m in in_table("report")] == ["auroc", "eer", "eer_deepfakebench", "ap", "accuracy"]
    assert [m.name for m in in_table("card")] == ["auroc", "eer", "ap", "accuracy", "balanced_accuracy"]
    assert [m.name for m in in_table("robustness")] == ["auroc", "ap", "eer", "accuracy"]
    assert [(m.name, m.model_index_type) for m in model_index_metrics()] == [
        ("auroc", "roc_auc"), ("eer", "eer"), ("ap", "average_precision"), ("accuracy", "accuracy")]
    for metric in registered_metrics().values():
        assert metric.label and metric.tables <= set(TABLES), metric.name


def test_every_metric_is_a_key_of_binary_metrics():
    from deepfake_hf.evaluation.metrics import binary_metrics

    result = binary_metrics([0, 1, 1, 0], [0.1, 0.7, 0.4, 0.6])
    assert list(result)[: len(metric_names())] == list(metric_names())
    assert all(result[name] is not None for name in metric_names()) and result["reasons"] == {}


def test_bad_definitions_are_one_line_errors(extra_metric_folder):
    with pytest.raises(MetricDefinitionError, match="unknown table"):
        MetricDef(name="x", label="X", compute=float, order=1, column=1, tables={"nowhere"})
    with pytest.raises(MetricDefinitionError, match="no column"):
        MetricDef(name="x", label="X", compute=float, order=1, model_index_type="x")
    (extra_metric_folder / "wrong_name.py").write_text(TOY_METRIC)
    with pytest.raises(MetricDefinitionError, match="named mean_score.py"):
        registered_metrics()


def test_a_new_metric_is_one_file(extra_metric_folder, tmp_path):
    from deepfake_hf.evaluation.evaluate import evaluate_model
    from deepfake_hf.evaluation.metrics import binary_metrics, trainer_compute_metrics
    from deepfake_hf.evaluation.report import summary_table
    from deepfake_hf.publish.model_card import render_model_card

    (extra_metric_folder / "mean_score.py").write_text(TOY_METRIC)
    assert metric_names()[-1] == "mean_score"
    assert binary_metrics([0, 1], [0.2, 0.6])["mean_score"] == pytest.approx(0.4)

    class EvalPrediction:  # what transformers.Trainer hands compute_metrics
        predictions = np.array([[0.0, -1.0], [0.0, 1.0]])
        label_ids = np.array([0, 1])

    assert "mean_score" in trainer_compute_metrics(EvalPrediction())

    model_dir = tmp_path / "model"
    tiny_detector("vit", seed=3).save_pretrained(model_dir)
    for label, offset in (("real", 0), ("fake", 100)):
        for i in range(3):
            write_image(tmp_path / "data" / label / f"{i}.png", size=(40, 40), seed=offset + i)
    out = tmp_path / "eval"
    result = evaluate_model(model_dir, {"stills": tmp_path / "data"}, out, perturbations=["jpeg:50"], n_resamples=0,
                            plots=False)
    saved = json.loads((out / "metrics.json").read_text())
    frame = saved["test_sets"]["stills"]["frame"]
    assert frame["mean_score"] == pytest.approx(np.mean([r["score"] for r in _predictions(out)]))
    assert set(saved["robustness"]["stills"]["jpeg:50"]) == {"auroc", "ap", "eer", "accuracy", "mean_score"}

    header = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| test set |"))
    assert header.endswith("| accuracy | mean score |")
    assert summary_table(result)[0] == header  # the table `deepfake-hf evaluate` prints

    card = render_model_card(model_dir, metrics=out / "metrics.json")
    data = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", str(card), re.S).group(1))
    index = data["model-index"][0]["results"]
    assert {"type": "mean_score", "value": frame["mean_score"], "name": "Frame Mean score", "config": "frame"} in [
        metric for entry in index for metric in entry["metrics"]]
    assert "mean_score" in data["metrics"]
    evaluation = card.text.split("## Evaluation")[1]
    header = "| Test set | Level | n (real / fake) | AUROC | EER | AP | Accuracy | Balanced acc. | Mean score |"
    assert header in evaluation


def _predictions(out):
    import csv

    with open(out / "predictions.csv") as handle:
        return [{**row, "score": float(row["score"])} for row in csv.DictReader(handle)]
