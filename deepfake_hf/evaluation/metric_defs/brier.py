"""Brier score: the mean squared error of the fake probabilities."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    from sklearn.metrics import brier_score_loss

    inputs.need_probabilities()
    return float(brier_score_loss(inputs.labels, inputs.scores, pos_label=1))


METRIC = MetricDef(name="brier", label="Brier", compute=compute, order=12, higher_is_better=False, column=9,
                   tables={"card_calibration"}, description="mean squared error of the fake probabilities")
