"""`calibrate`: fitted temperature and threshold land in config.json, and predictions use them."""

import json

import numpy as np
import pytest

from deepfake_hf.evaluation.calibrate import calibrate_model
from deepfake_hf.evaluation.errors import EvaluationError
from deepfake_hf.evaluation.evaluate import load_model, score_dataset

from .conftest import tiny_detector, write_image


@pytest.fixture
def setup(tmp_path):
    model_dir = tmp_path / "model"
    tiny_detector("vit", seed=5).save_pretrained(model_dir)
    for label, offset in (("real", 0), ("fake", 100)):
        for i in range(8):
            write_image(tmp_path / "val" / label / f"{i}.png", size=(32, 32), seed=offset + i)
    return model_dir, tmp_path / "val"


def fake_probabilities(model_dir, folder):
    from deepfake_hf.evaluation.testsets import load_test_set

    scored = load_model(model_dir, device="cpu")
    dataset = load_test_set(str(folder), cache_dir=False)
    return scored, np.asarray(dataset["label"]), dataset["path"], score_dataset(scored, dataset)


def test_calibrate_fpr_changes_threshold_and_pipeline_uses_it(setup):
    from transformers import pipeline

    import deepfake_hf

    model_dir, val = setup
    before = json.loads((model_dir / "config.json").read_text())
    _, labels, paths, margins = fake_probabilities(model_dir, val)
    record = calibrate_model(model_dir, {"val": val}, method="fpr", target_fpr=0.0)
    after = json.loads((model_dir / "config.json").read_text())
    assert after["threshold"] == pytest.approx(record["threshold"]) != before["threshold"]
    assert after["calibration_temperature"] == pytest.approx(record["calibration_temperature"])
    assert after["calibration_temperature"] != before["calibration_temperature"]
    assert record["previous"]["threshold"] == before["threshold"]
    assert json.loads((model_dir / "calibration.json").read_text())["threshold"] == record["threshold"]
    assert record["false_positive_rate"] == 0.0

    # the reloaded model applies the stored values: re-scored validation reals are all below the threshold
    scored, labels2, _, new_margins = fake_probabilities(model_dir, val)
    assert scored.threshold == pytest.approx(after["threshold"])
    probabilities = scored.probabilities(new_margins)
    assert (probabilities[labels2 == 0] < after["threshold"]).all()
    # temperature scaling: new margin = old raw margin / T - logit(threshold)
    raw = margins  # the saved model had T = 1, threshold 0.5
    expected = raw / after["calibration_temperature"] - np.log(after["threshold"] / (1 - after["threshold"]))
    assert new_margins == pytest.approx(expected, abs=1e-4)

    # pipeline's label is the thresholded decision (in-process, registered classes)
    deepfake_hf.register()
    classify = pipeline("image-classification", model=str(model_dir))
    for path, probability in zip(paths, probabilities):
        top = classify(path)[0]["label"]
        assert top == ("fake" if probability >= after["threshold"] else "real")
    real_labels = {classify(p)[0]["label"] for p, y in zip(paths, labels2) if y == 0}
    assert real_labels == {"real"}

    # predict's Detector reads the same stored values: same probabilities, labels by the new threshold
    from deepfake_hf.scoring.detector import Detector

    results = Detector.from_pretrained(str(model_dir), device="cpu")(list(paths))
    assert [r.fake_probability for r in results] == pytest.approx(probabilities.tolist(), abs=1e-5)
    assert [r.label for r in results] == ["fake" if p >= after["threshold"] else "real" for p in probabilities]
    assert {r.label for r, y in zip(results, labels2) if y == 0} == {"real"}


def test_calibrate_eer_cli(setup, capsys):
    from deepfake_hf.cli import main

    model_dir, val = setup
    assert main(["calibrate", "--faces", "none", str(model_dir), str(val)]) == 0
    assert "threshold 0.5 ->" in capsys.readouterr().out
    config = json.loads((model_dir / "config.json").read_text())
    record = json.loads((model_dir / "calibration.json").read_text())
    assert record["method"] == "eer" and config["threshold"] == pytest.approx(record["threshold"])
    # at the EER threshold the validation FPR and FNR are close (16 samples: within a couple of samples)
    assert abs(record["false_positive_rate"] - (1 - record["true_positive_rate"])) <= 0.25
    assert main(["calibrate", "--faces", "none", str(model_dir), str(val), "--method", "fpr"]) == 1
    assert "--target-fpr" in capsys.readouterr().err


def test_calibrate_needs_both_classes(setup, tmp_path):
    model_dir, _ = setup
    for i in range(3):
        write_image(tmp_path / "only_real" / "real" / f"{i}.png", size=(32, 32), seed=i)
    with pytest.raises(EvaluationError, match="both real and fake"):
        calibrate_model(model_dir, {"v": tmp_path / "only_real"})
    assert json.loads((model_dir / "config.json").read_text())["threshold"] == 0.5  # untouched


def test_evaluate_reports_the_calibration(setup, tmp_path):
    from deepfake_hf.evaluation.evaluate import evaluate_model

    model_dir, val = setup
    record = calibrate_model(model_dir, {"val": val}, method="fpr", target_fpr=0.0)
    result = evaluate_model(model_dir, {"val": val}, tmp_path / "eval", n_resamples=0, plots=False)
    assert result["threshold"] == pytest.approx(record["threshold"])
    assert result["calibration"]["method"] == "fpr"
    # evaluation applies the stored threshold: no validation real is called fake
    import csv

    rows = list(csv.DictReader(open(tmp_path / "eval" / "predictions.csv")))
    real_scores = [float(r["score"]) for r in rows if r["label"] == "0"]
    assert len(real_scores) == 8 and max(real_scores) < result["threshold"]
    assert result["test_sets"]["val"]["frame"]["precision"] in (None, 1.0)


def test_calibrate_refuses_a_result_the_config_would_not_validate(setup, monkeypatch):
    """The config is rewritten through DeepfakeDetectorConfig: an invalid fit is refused and config.json kept."""
    import deepfake_hf.evaluation.calibrate as calibration

    model_dir, val = setup
    before = (model_dir / "config.json").read_text()
    monkeypatch.setattr(calibration, "fit_temperature", lambda labels, margins: -1.0)
    with pytest.raises(EvaluationError, match="calibration_temperature"):
        calibrate_model(model_dir, {"val": val})
    assert (model_dir / "config.json").read_text() == before
    assert not (model_dir / "calibration.json").exists()
