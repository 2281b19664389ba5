"""ECE: expected calibration error over equal-width probability bins."""

from deepfake_hf.evaluation.metric_defs import MetricDef, MetricInputs


def compute(inputs: MetricInputs) -> float:
    from deepfake_hf.evaluation.curves import expected_calibration_error

    inputs.need_probabilities()
    return expected_calibration_error(inputs.labels, inputs.scores, n_bins=inputs.ece_bins)


METRIC = MetricDef(name="ece", label="ECE", compute=compute, order=13, higher_is_better=False, column=10,
                   tables={"card_calibration"}, description="expected calibration error (equal-width bins)")
