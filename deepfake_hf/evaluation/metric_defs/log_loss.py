"""Log loss of the fake probabilities (clipped away from 0 and 1)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    import numpy as np
    from sklearn.metrics import log_loss

    from deepfake_hf.evaluation.curves import PROBABILITY_EPS

    inputs.need_probabilities()
    clipped = np.clip(inputs.scores, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return float(log_loss(inputs.labels, clipped, labels=[0, 1]))


METRIC = MetricDef(name="log_loss", label="Log loss", compute=compute, order=11, higher_is_better=False,
                   column=8, tables={"card_calibration"}, description="log loss of the fake probabilities")
