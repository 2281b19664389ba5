"""The score threshold at the equal-error point (what `calibrate --method eer` stores)."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    inputs.need_both_classes()
    return inputs.equal_error[1]


METRIC = MetricDef(name="eer_threshold", label="EER threshold", compute=compute, order=9, higher_is_better=None,
                   description="the score threshold at the equal-error point")
