"""EER as DeepfakeBench reports it: the FPR of the existing ROC point nearest to FPR = 1 - TPR."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    from deepfake_hf.evaluation.curves import deepfakebench_equal_error_rate

    inputs.need_both_classes()
    return deepfakebench_equal_error_rate(inputs.labels, inputs.scores)


METRIC = MetricDef(
    name="eer_deepfakebench", label="EER (DeepfakeBench)", compute=compute, order=10, percent=True,
    higher_is_better=False, column=3, tables={"report"},
    description="the FPR of the existing ROC point nearest to FPR = 1 - TPR (no interpolation)",
)
