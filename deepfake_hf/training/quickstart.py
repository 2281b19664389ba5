"""Offline end-to-end run: synthesise data, train a small detector, evaluate it on held-out identities, predict.

Nothing is downloaded. Real faces come from public-domain photos that installed packages ship
(scikit-image's astronaut, camera and LFW subset, matplotlib's Grace Hopper); fakes are self-blended
images made from them (SBI, Shiohara and Yamasaki, CVPR 2022). Whole identities are held out for the
validation (model selection) and test (evaluation) splits. The detector is a tiny ResNet trained from
random initialisation (`recipes/quickstart.yaml`), because no pretrained weights can be fetched offline:
it learns to spot self-blending artefacts on these few faces, which shows the whole pipeline works; it is
not a useful detector of real-world deepfakes.

The folder it writes is a run folder:

    DIR/model/              the trained detector (loads with pipeline(), model card README.md)
    DIR/eval/metrics.json   held-out test metrics (auroc, accuracy, ... as `deepfake-hf evaluate` writes them)
    DIR/data/               the synthesised images and their manifests (train.csv, validation.csv, test.csv)
    DIR/recipe.yaml, DIR/trainer_state.json, DIR/val_metrics.json, DIR/checkpoints/
    DIR/summary.json        what the run printed
"""

import json
import time

from deepfake_hf.runtime.outputs import owned_output_dir

TEST_SET = "sbi-heldout"


def run_quickstart(out_dir, overwrite=False, overrides=(), seed=0, n_resamples=200):
    """Run the quickstart into `out_dir`; returns the summary dict (also written to DIR/summary.json).

    With `overwrite`, only the files an earlier quickstart wrote there are replaced."""
    from deepfake_hf.runtime.threads import configure_threads

    configure_threads()  # before torch is imported: its share of the cores, waiting threads sleep
    with owned_output_dir(out_dir, overwrite) as out:
        return _run_quickstart(out, overrides, seed, n_resamples)


def _run_quickstart(out, overrides, seed, n_resamples):
    from datasets import DatasetDict
    from transformers import pipeline

    import deepfake_hf
    from deepfake_hf.data.synthesis import make_sbi_dataset
    from deepfake_hf.evaluation.evaluate import evaluate_model
    from deepfake_hf.training.recipes import load_recipe
    from deepfake_hf.training.train import train, write_model_card

    started = time.perf_counter()
    recipe = load_recipe("quickstart", [f"data.seed={seed}", f"training.seed={seed}", *overrides])

    print("1/4 synthesising self-blended faces from packaged public-domain photos ...", flush=True)
    splits = make_sbi_dataset(out_dir=out / "data", seed=recipe.data.seed, **(recipe.data.sbi or {}))

    family = recipe.model.architecture["model_type"]
    print(f"2/4 training a tiny {family} from random init (selection on the validation identities) ...", flush=True)
    summary = train(recipe, out, datasets=DatasetDict(train=splits["train"], validation=splits["validation"]))

    print("3/4 evaluating on held-out identities ...", flush=True)
    metrics = evaluate_model(out / "model", {TEST_SET: str(out / "data" / "test.csv")}, out / "eval",
                             n_resamples=n_resamples, seed=seed, plots=False)
    frame = metrics["test_sets"][TEST_SET]["frame"]
    # The two numbers people look for first, next to the full evaluation record.
    metrics["auroc"], metrics["accuracy"] = frame["auroc"], frame["accuracy"]
    (out / "eval" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_model_card(out / "model", recipe=recipe, metrics=metrics)

    print("4/4 predicting one held-out sample with pipeline() ...", flush=True)
    deepfake_hf.register()
    sample = next(row for row in _manifest(out / "data" / "test.csv") if row[1] == "fake")
    sample_path = out / "data" / sample[0]
    prediction = pipeline("image-classification", model=str(out / "model"))(str(sample_path))
    result = {
        "model": str(out / "model"),
        "model_card": str(out / "model" / "README.md"),
        "metrics": str(out / "eval" / "metrics.json"),
        "data": str(out / "data"),
        "heldout_auroc": frame["auroc"],
        "heldout_accuracy": frame["accuracy"],
        "heldout_images": frame.get("n"),
        "validation_auroc": summary["val_metrics"].get("eval_auroc"),
        "train_steps": summary["global_step"],
        "sample": str(sample_path),
        "sample_truth": "fake",
        "sample_prediction": {row["label"]: round(row["score"], 4) for row in prediction},
        "seconds": round(time.perf_counter() - started, 1),
        "note": f"tiny {family} trained from random init on self-blended fakes of a few packaged public-domain "
                "faces; it shows the pipeline, not a real-world deepfake detector",
        "next": f'pipeline("image-classification", model="{out / "model"}", trust_remote_code=True)',
    }
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    return result


def _manifest(path):
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[1:]
