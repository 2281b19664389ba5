"""The benchmarks' child processes: `python -m deepfake_hf.cli.bench.child KIND ARGS...` prints one JSON line.

Memory is measured in a fresh process so that each mode's or method's peak is its own (not the parent's,
which already holds other models), and the start-up benchmark needs a fresh interpreter to see which heavy
modules building the CLI parser imports. Each kind is a plain function, so tests call it directly. This
module uses measure.py's helpers; measure.py only starts it as a program (it never imports it).

    peak-rss NAME MODE FOLDER          peak resident memory (MB) of scoring 16 files in one inference mode
    train-steps MODEL METHOD BATCH STEPS DTYPE   step times and peak memory of one tuning method
    heavy-imports                      the heavy modules imported by building the `deepfake-hf` parser
    predict-peak ARGS...               `deepfake-hf predict ARGS` in this process: exit code, peak memory (MB)
    forward-loop MODE START STEPS      seconds of STEPS forwards of a small ViT, started at wall time START;
                                       MODE "default" leaves torch's threads alone, "configured" calls
                                       threads.configure_threads() first
"""

import json
import os
import sys


def score_in_one_mode(name, mode, folder):
    """Score 16 generated files in one inference mode (a-d, see benchmark.Modes) with the models in `folder`.

    Returns the peak resident memory in MB (meaningful in a fresh process).
    """
    from deepfake_hf.cli.bench.measure import Modes, peak_rss_mb, write_images

    paths = write_images(folder, 16, seed=1)
    modes = Modes(f"{folder}/{name}-custom", f"{folder}/{name}-native", batch_size=8, modes=mode)
    if mode == "d":
        modes.d(modes.pixel_values(paths), 8)
    else:
        getattr(modes, mode)(paths)
    return peak_rss_mb()


def train_steps(model_name, method, batch, steps, dtype):
    """Time `steps` training steps (after one warm-up) of one tuning method on random inputs.

    A step is what the Trainer does per batch: forward with labels (the model's own loss), backward, AdamW
    step, zero_grad, on the parameters `training.apply_tuning` leaves trainable. Returns step times, peak
    memory (CUDA allocation on GPU, process RSS on CPU), the RSS before the model, and parameter counts.
    """
    import time

    import torch

    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification
    from deepfake_hf.cli.bench.measure import CONFIGS, peak_rss_mb
    from deepfake_hf.training.recipes import TuningRecipe
    from deepfake_hf.training.train import apply_tuning, count_parameters

    device = "cuda" if torch.cuda.is_available() else "cpu"
    baseline = peak_rss_mb()  # interpreter + libraries, before the model
    torch.manual_seed(0)
    model = DeepfakeDetectorForImageClassification(DeepfakeDetectorConfig(**CONFIGS[model_name]))
    model = apply_tuning(model, TuningRecipe(method=method)).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    size = getattr(model.config, "image_size", 224)
    pixels = torch.randn(batch, 3, size, size, device=device)
    labels = torch.arange(batch, device=device) % 2
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16")
    times = []
    for step in range(steps + 1):  # the first step warms up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mb()
    return {"step_times": times, "peak_memory_mb": peak, "baseline_rss_mb": baseline, "device": device,
            **count_parameters(model)}


def forward_loop(mode, start_at, steps):
    """A predict-like CPU workload: `steps` forwards (batch 4, 224 px) of a small random ViT (4 layers, width
    256), timed from wall-clock time `start_at` on, so concurrent children run their loops together.

    `mode` "configured" calls `threads.configure_threads()` before torch is imported; "default" does not.
    """
    import time

    configured = None
    if mode == "configured":
        from deepfake_hf.runtime.threads import configure_threads

        configured = configure_threads()
    elif mode != "default":
        raise SystemExit(f"forward-loop: mode {mode!r} is not default or configured")
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    model = ViTModel(ViTConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                               image_size=224, patch_size=16), add_pooling_layer=False).eval()
    pixels = torch.randn(4, 3, 224, 224)
    with torch.inference_mode():
        model(pixel_values=pixels)  # warm-up
        time.sleep(max(0.0, start_at - time.time()))
        late = time.time() - start_at
        start = time.perf_counter()
        for _ in range(steps):
            model(pixel_values=pixels)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "threads": torch.get_num_threads(), "started_late_s": late,
            "wait_policy": os.environ.get("OMP_WAIT_POLICY"), "configured": configured}


def heavy_imports_of_cli_parser():
    """The benchmark's HEAVY modules imported once `deepfake-hf`'s parser is built (run in a fresh interpreter)."""
    from deepfake_hf.cli import build_parser

    build_parser()
    imported = set(sys.modules)  # before the import below adds its own
    from deepfake_hf.cli.bench.measure import HEAVY

    return [name for name in HEAVY if name in imported]


def predict_peak(*argv):
    """Run `deepfake-hf predict ARGV` in this process; its exit code and peak resident memory (MB)."""
    from deepfake_hf.cli import main as cli_main
    from deepfake_hf.cli.bench.measure import peak_rss_mb

    code = cli_main(["predict", *argv])
    return {"exit_code": code, "peak_rss_mb": peak_rss_mb()}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    kind, args = (argv[0], argv[1:]) if argv else (None, [])
    if kind == "peak-rss" and len(args) == 3:
        result = score_in_one_mode(*args)
    elif kind == "train-steps" and len(args) == 5:
        result = train_steps(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif kind == "forward-loop" and len(args) == 3:
        result = forward_loop(args[0], float(args[1]), int(args[2]))
    elif kind == "predict-peak" and args:
        result = predict_peak(*args)
    elif kind == "heavy-imports" and not args:
        result = heavy_imports_of_cli_parser()
    else:
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

