"""F1: the harmonic mean of precision and recall."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs, Undefined


def compute(inputs: MetricInputs) -> float:
    precision, recall = inputs.value("precision"), inputs.value("recall")
    if precision is not None and recall is not None:
        total = precision + recall
        return 2 * precision * recall / total if total else 0.0
    if inputs.n_fake == 0 and inputs.predicted_fake == 0:
        raise Undefined("no fake samples and no fake predictions")
    return 0.0  # one of precision/recall is undefined but the other is 0: F1 = 2TP/(2TP+FP+FN) = 0


METRIC = MetricDef(name="f1", label="F1", compute=compute, order=5, percent=True,
                   description="harmonic mean of precision and recall")
