"""Model cards: golden front matter, ModelCard.load round trip, model-index == metrics.json, no invented numbers."""

import json
import re

import pytest
import yaml

from tests.conftest import tiny_detector

METRICS = {
    "model": "run/model",
    "test_sets": {
        "FF++ c23": {
            "frame": {"auroc": 0.912345, "eer": 0.1734, "ap": 0.9301, "accuracy": 0.85, "n": 100, "n_real": 50,
                      "n_fake": 50, "ci": {"auroc": [0.881, 0.9402]}},
            "video": {"auroc": 0.953, "eer": 0.125, "n": 10, "n_real": 5, "n_fake": 5},
            "per_method": {"Deepfakes": {"frame": {"auroc": 0.9731}, "video": None}},
        },
        "CDF": {"frame": {"auroc": 0.7013, "accuracy": None, "reasons": {"accuracy": "one class"}}, "video": None},
    },
    "robustness": {"FF++ c23": {"jpeg:90": {"auroc": 0.9012}}},
}
RECIPE = {
    "name": "clip-l14-ln",
    "reference": "published video AUROC 96.62 on CDFv2",
    "model": {"backbone": "openai/clip-vit-large-patch14", "detector": {"normalize_features": True}},
    "tuning": {"method": "ln_tuning"},
    "training": {"learning_rate": 8e-05, "num_train_epochs": 10},
    "data": {"train": ["data/ffpp"]},
}


def front_matter(text):
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    tiny_detector("vit").save_pretrained(run / "model")
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    (run / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    (run / "trainer_state.json").write_text(json.dumps(
        {"global_step": 40, "epoch": 2.0, "log_history": [{"loss": 0.6}, {"train_runtime": 93.5}]}))
    return run


def test_front_matter_golden(run_dir):
    from deepfake_hf.publish.model_card import render_model_card

    card = render_model_card(run_dir, repo_id="alice/detector")
    expected_index = [{
        "name": "detector",
        "results": [
            {"task": {"type": "image-classification", "name": "Deepfake detection"},
             "dataset": {"name": "FF++ c23", "type": "ff-c23", "split": "test"},
             "metrics": [
                 {"type": "roc_auc", "value": 0.912345, "name": "Frame AUROC", "config": "frame"},
                 {"type": "eer", "value": 0.1734, "name": "Frame EER", "config": "frame"},
                 {"type": "average_precision", "value": 0.9301, "name": "Frame AP", "config": "frame"},
                 {"type": "accuracy", "value": 0.85, "name": "Frame Accuracy", "config": "frame"},
                 {"type": "roc_auc", "value": 0.953, "name": "Video AUROC", "config": "video"},
                 {"type": "eer", "value": 0.125, "name": "Video EER", "config": "video"},
             ]},
            {"task": {"type": "image-classification", "name": "Deepfake detection"},
             "dataset": {"name": "CDF", "type": "cdf", "split": "test"},
             "metrics": [{"type": "roc_auc", "value": 0.7013, "name": "Frame AUROC", "config": "frame"}]},
        ],
    }]
    assert front_matter(str(card)) == {
        "base_model": "openai/clip-vit-large-patch14",
        "library_name": "transformers",
        "license": "mit",
        "metrics": ["roc_auc", "eer", "average_precision", "accuracy"],
        "pipeline_tag": "image-classification",
        "tags": ["deepfake-detection", "image-classification", "vision", "vit", "custom_code"],
        "model-index": expected_index,
    }
    body = str(card)
    assert "trust_remote_code=True" in body and 'model="alice/detector"' in body
    assert "Yermakov" in body and "2503.19683" in body  # the recipe's card source: citation merged in
    assert "| `tuning.method` | `ln_tuning` |" in body
    assert "training time 1.6 min (94 s)" in body  # from trainer_state.json


def test_model_card_load_round_trip(run_dir, tmp_path):
    from huggingface_hub import ModelCard

    from deepfake_hf.publish.model_card import render_model_card

    card = render_model_card(run_dir, repo_id="alice/detector")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.to_dict() == card.data.to_dict()
    assert loaded.text == card.text
    assert len(loaded.data.eval_results) == 7


def test_model_index_values_equal_metrics_json(run_dir, tmp_path):
    from huggingface_hub import ModelCard

    from deepfake_hf.evaluation.metric_defs import model_index_metrics
    from deepfake_hf.publish.model_card import render_model_card

    render_model_card(run_dir).save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    key_of = {metric.model_index_type: metric.name for metric in model_index_metrics()}
    reported = {(r.dataset_name, r.metric_config, key_of[r.metric_type]): r.metric_value
                for r in loaded.data.eval_results}
    computed = {(name, level, key): values[key]
                for name, levels in METRICS["test_sets"].items() for level in ("frame", "video")
                for key in key_of.values() if (values := levels.get(level)) and values.get(key) is not None}
    assert reported == computed  # every value equal, nothing missing, nothing extra


def test_no_metric_the_run_did_not_compute(tmp_path):
    from deepfake_hf.publish.model_card import render_model_card

    model_dir = tmp_path / "model"
    tiny_detector("vit").save_pretrained(model_dir)
    metrics = {"model": "m", "test_sets": {"DFDC": {"frame": {"auroc": 0.6234}, "video": None}}}
    card = render_model_card(model_dir, metrics=metrics, recipe=RECIPE)
    data = front_matter(str(card))
    assert data["metrics"] == ["roc_auc"]
    assert [m["type"] for m in data["model-index"][0]["results"][0]["metrics"]] == ["roc_auc"]
    evaluation = card.text.split("## Evaluation")[1].split("## Hardware")[0]
    assert "| DFDC | frame | – | 0.6234 |" in evaluation
    for absent in ("EER", "AP", "Accuracy", "video", "Robustness", "Per manipulation"):
        assert absent not in evaluation
    # the recipe's `reference` holds published numbers that this run did not produce
    assert "96.62" not in str(card) and "reference" not in card.text


def test_card_without_evaluation_is_valid_and_has_no_model_index(tmp_path):
    from huggingface_hub import ModelCard

    from deepfake_hf import export_native
    from deepfake_hf.publish.model_card import render_model_card

    model_dir = tmp_path / "model"
    tiny_detector("vit").save_pretrained(model_dir)
    card = render_model_card(model_dir)
    data = front_matter(str(card))
    assert "model-index" not in data and "metrics" not in data
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "image-classification"
    assert "has not been evaluated yet" in card.text
    assert not re.search(r"\b0\.\d{4}\b", card.text)  # no metric-like number anywhere
    card.save(tmp_path / "README.md")
    assert ModelCard.load(tmp_path / "README.md").data.eval_results is None

    native = export_native(model_dir, tmp_path / "native")
    native_card = render_model_card(native)
    assert "custom_code" not in front_matter(str(native_card))["tags"]
    assert "trust_remote_code" not in native_card.text and "ViTForImageClassification" in native_card.text


def test_card_says_which_face_crops_the_model_expects(tmp_path):
    from deepfake_hf.publish.model_card import render_model_card

    tiny_detector("vit", face_preprocessing="deepfakebench").save_pretrained(tmp_path / "bench")
    tiny_detector("vit").save_pretrained(tmp_path / "plain")
    assert "`face_preprocessing: deepfakebench`" in render_model_card(tmp_path / "bench").text
    assert "face_preprocessing" not in render_model_card(tmp_path / "plain").text


def test_every_builtin_card_source_renders(tmp_path):
    from deepfake_hf.publish.model_card import load_card_source, model_cards_dir, render_model_card

    model_dir = tmp_path / "model"
    tiny_detector("vit").save_pretrained(model_dir)
    names = sorted(path.stem for path in model_cards_dir().glob("*.yaml"))
    assert {"vit-in21k", "clip-b32-cosine", "clip-l14-ln", "clip-l14-ln-gend", "cnn-dfdc", "frozen-probe",
            "quickstart"} <= set(names)
    for name in names:
        source = load_card_source(name)
        assert source["title"] and source["description"] and source["citation"], name
        card = render_model_card(model_dir, recipe={"name": name})
        assert card.text.startswith(f"\n# {source['title']}"), name
        assert source["citation"].strip().splitlines()[0] in card.text, name


def test_card_says_which_way_in_does_what_and_how_to_deploy_the_handler(tmp_path):
    from deepfake_hf import export_native
    from deepfake_hf.publish.endpoint import write_handler
    from deepfake_hf.publish.model_card import render_model_card

    tiny_detector("vit", face_preprocessing="deepfakebench").save_pretrained(tmp_path / "model")
    write_handler(tmp_path / "model")
    native = export_native(tmp_path / "model", tmp_path / "native")
    for card, faces in ((render_model_card(tmp_path / "model"), "deepfakebench"),
                        (render_model_card(native, face_mode="deepfakebench"), "deepfakebench"),
                        (render_model_card(native, face_mode="none"), "none")):
        text = card.text
        assert "scores **the picture as given**" in text
        assert "deepfake-hf predict" in text and "Inference Endpoints" in text
        assert "requirements.txt" in text and "deepfake-hf[video,faces]" in text and '"allow_url": true' in text
        assert ("face mode `deepfakebench`" in text) == (faces == "deepfakebench")
        assert "ships no widget example" in text  # none was given
    assert "trust_remote_code" not in render_model_card(native).text


def test_card_without_handler_has_no_endpoint_section(tmp_path):
    from deepfake_hf.publish.model_card import render_model_card

    tiny_detector("vit").save_pretrained(tmp_path / "model")
    text = render_model_card(tmp_path / "model", face_mode="none").text
    assert "scores **the picture as given**" in text and "## Deploy on Inference Endpoints" not in text
