"""Benchmarks: inference (is anything but the model costing time?), training (LN-tuning vs full vs LoRA)
and start-up. `deepfake-hf bench {inference,training,startup} --json OUT` and benchmarks/*.py run them.

Inference: the same random weights are measured in one run, modes interleaved round by round so
machine noise hits all of them alike:
  (a) plain transformers `pipeline("image-classification")` on the stock class (native export),
  (b) the deepfake-hf model through the same `pipeline(...)`,
  (c) `deepfake_hf.inference.Detector` over the same files (decode + resize included),
  (d) a raw `model(pixel_values)` forward on preprocessed tensors at the best batch size.
It reports images/s, p50/p95 per-image latency at batch 1, peak RSS per mode (each in its own
process) and the ratios b/a, c/a, c/d.

Training: each method runs in its own fresh process (so peak memory is its own), interleaved over
rounds. A step is what the Trainer does per batch: forward with labels (the model's own loss),
backward, AdamW step, zero_grad, on the parameters `training.apply_tuning` leaves trainable.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


# Encoder hyperparameters of the published checkpoints, random weights (nothing is downloaded).
CONFIGS = {
    "vit-b16": dict(backbone_config=dict(model_type="vit", hidden_size=768, num_hidden_layers=12,
                                         num_attention_heads=12, intermediate_size=3072, image_size=224,
                                         patch_size=16), pooling="cls"),
    "clip-b32": dict(backbone_config=dict(model_type="clip_vision_model", hidden_size=768, num_hidden_layers=12,
                                          num_attention_heads=12, intermediate_size=3072, image_size=224,
                                          patch_size=32), pooling="mean"),
    # for the benchmark's own smoke test
    "tiny-vit": dict(backbone_config=dict(model_type="vit", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                          intermediate_size=37, image_size=32, patch_size=8), pooling="cls"),
}


def machine_description():
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def peak_rss_mb():
    """This process's peak resident memory in MB.

    /proc's VmHWM belongs to the current program image; `ru_maxrss` would carry the parent's peak over
    fork + exec, so a small child of a large benchmark process would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_images(folder, count, size=(640, 480), seed=0):
    """JPEG photos-to-be: smooth random fields (compress like photos, unlike white noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        small = rng.integers(0, 256, size=(size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.BILINEAR)
        path = Path(folder) / f"image_{index:03d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def build_models(name, folder):
    """Save the deepfake-hf model and its native export; return both folders."""
    import torch

    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification, export_native

    torch.manual_seed(0)
    model = DeepfakeDetectorForImageClassification(DeepfakeDetectorConfig(**CONFIGS[name])).eval()
    custom = Path(folder) / f"{name}-custom"
    native = Path(folder) / f"{name}-native"
    model.save_pretrained(custom)
    export_native(custom, native, overwrite=True)
    return str(custom), str(native)


class Modes:
    """The four ways of scoring the same files, each a callable over a list of paths.

    Only the modes named in `modes` are loaded, so a process can measure one mode's memory alone.
    """

    def __init__(self, custom_dir, native_dir, batch_size, modes="abcd"):
        import torch
        from transformers import AutoImageProcessor, pipeline

        import deepfake_hf
        from deepfake_hf.inference import Detector

        deepfake_hf.register()
        self.batch_size = batch_size
        self.torch = torch
        if "a" in modes:
            self.stock_pipeline = pipeline("image-classification", model=native_dir)
        if "b" in modes:
            self.our_pipeline = pipeline("image-classification", model=custom_dir)
        if "c" in modes:
            self.detector = Detector.from_pretrained(custom_dir, faces="none", batch_size=batch_size, progress=False)
        if "d" in modes:
            self.model = deepfake_hf.DeepfakeDetectorForImageClassification.from_pretrained(custom_dir).eval()
        self.processor = AutoImageProcessor.from_pretrained(custom_dir)

    def a(self, paths, batch_size=None):
        return self.stock_pipeline(paths, batch_size=batch_size or self.batch_size)

    def b(self, paths, batch_size=None):
        return self.our_pipeline(paths, batch_size=batch_size or self.batch_size)

    def c(self, paths, batch_size=None):
        self.detector.batch_size = batch_size or self.batch_size
        return self.detector(paths)

    def pixel_values(self, paths):
        from PIL import Image

        return self.processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]

    def d(self, pixel_values, batch_size):
        with self.torch.inference_mode():
            for start in range(0, len(pixel_values), batch_size):
                self.model(pixel_values=pixel_values[start:start + batch_size])


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def measure(name, images, rounds, latency_images, tmp, peak_memory=True):
    custom, native = build_models(name, tmp)
    paths = write_images(tmp, images)
    import torch

    modes = Modes(custom, native, batch_size=8)
    pixel_values = modes.pixel_values(paths)
    # (d) best batch size: the limit the hardware sets
    modes.d(pixel_values[:2], 2)  # warm-up
    forward_rates = {}
    for batch_size in (1, 4, 8, 16):
        forward_rates[batch_size] = len(paths) / timed(modes.d, pixel_values, batch_size)
    best_batch = max(forward_rates, key=forward_rates.get)
    modes.batch_size = best_batch
    for mode in "abc":  # warm-up each path once
        getattr(modes, mode)(paths[:2])
    seconds = {mode: [] for mode in "abcd"}
    for _ in range(rounds):
        for mode in "abc":
            seconds[mode].append(timed(getattr(modes, mode), paths))
        seconds["d"].append(timed(modes.d, pixel_values, best_batch))
    throughput = {mode: len(paths) / statistics.median(values) for mode, values in seconds.items()}
    latency = {}
    for mode in "abc":
        per_image = [timed(getattr(modes, mode), [path], batch_size=1) * 1000 for path in paths[:latency_images]]
        latency[mode] = {"p50_ms": float(np.percentile(per_image, 50)), "p95_ms": float(np.percentile(per_image, 95))}
    per_image = [timed(modes.d, pixel_values[i:i + 1], 1) * 1000 for i in range(latency_images)]
    latency["d"] = {"p50_ms": float(np.percentile(per_image, 50)), "p95_ms": float(np.percentile(per_image, 95))}
    scores_a = [next(r["score"] for r in row if r["label"] == "fake") for row in modes.a(paths[:8])]
    scores_c = [r["fake_probability"] for r in modes.c(paths[:8])]
    del torch
    return {
        "model": name,
        "images": len(paths),
        "image_size": "640x480 JPEG",
        "best_forward_batch": best_batch,
        "forward_images_per_s_by_batch": forward_rates,
        "images_per_s": throughput,
        "latency_batch1": latency,
        "ratios": {
            "b/a": throughput["b"] / throughput["a"],
            "c/a": throughput["c"] / throughput["a"],
            "c/d": throughput["c"] / throughput["d"],
        },
        "max_abs_score_difference_a_vs_c": float(np.max(np.abs(np.subtract(scores_a, scores_c)))),
        "peak_rss_mb": {mode: peak_rss(name, mode, tmp) for mode in "abcd"} if peak_memory else None,
    }


PEAK_RSS_CODE = r"""
import sys
from deepfake_hf.benchmark import Modes, peak_rss_mb, write_images
name, mode, tmp = sys.argv[1:4]
paths = write_images(tmp, 16, seed=1)
modes = Modes(f"{tmp}/{name}-custom", f"{tmp}/{name}-native", batch_size=8, modes=mode)
if mode == "d":
    modes.d(modes.pixel_values(paths), 8)
else:
    getattr(modes, mode)(paths)
print(peak_rss_mb())
"""


def peak_rss(name, mode, tmp):
    """Peak resident memory (MB) of a fresh process that scores 16 files in one mode."""
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_CODE, name, mode, tmp],
                            capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if result.returncode:
        return None
    return float(result.stdout.strip().splitlines()[-1])


def run_inference_benchmark(json_path, models=("vit-b16", "clip-b32"), images=32, rounds=3, latency_images=10,
                            peak_memory=True):
    results = {"benchmark": "inference", "machine": machine_description(), "command": " ".join(sys.argv), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            run = measure(name, images, rounds, latency_images, tmp, peak_memory)
            results["runs"].append(run)
            print(f"{name}: images/s " + ", ".join(f"{m} {v:.2f}" for m, v in run["images_per_s"].items())
                  + " | " + ", ".join(f"{k} {v:.3f}" for k, v in run["ratios"].items()))
    _write(json_path, results)
    return results


def _write(json_path, results):
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(results, indent=2))
    print(f"wrote {json_path}")


ONE_METHOD = r"""
import json, sys, time
import torch
from deepfake_hf.benchmark import CONFIGS, peak_rss_mb
from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification
from deepfake_hf.recipes import TuningRecipe
from deepfake_hf.training import apply_tuning, count_parameters

model_name, method, batch, steps, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
device = "cuda" if torch.cuda.is_available() else "cpu"
baseline = peak_rss_mb()  # interpreter + libraries, before the model
torch.manual_seed(0)
model = DeepfakeDetectorForImageClassification(DeepfakeDetectorConfig(**CONFIGS[model_name]))
model = apply_tuning(model, TuningRecipe(method=method)).to(device).train()
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=1e-5)
size = model.config.image_size if hasattr(model.config, "image_size") else 224
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
peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
        else peak_rss_mb())
print(json.dumps({"step_times": times, "peak_memory_mb": peak, "baseline_rss_mb": baseline, "device": device,
                  **count_parameters(model)}))
"""


def run_method(model_name, method, batch, steps, dtype):
    result = subprocess.run(
        [sys.executable, "-c", ONE_METHOD, model_name, method, str(batch), str(steps), dtype],
        capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
    if result.returncode:
        raise RuntimeError(f"{method}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_training_benchmark(json_path, model="vit-b16", methods=("ln_tuning", "full", "lora"), batch=8, steps=3,
                           rounds=2, dtype="fp32"):
    methods = list(methods)
    runs = {method: [] for method in methods}
    for _ in range(rounds):
        for method in methods:
            runs[method].append(run_method(model, method, batch, steps, dtype))
    summary = {}
    for method, results in runs.items():
        step = statistics.median(t for result in results for t in result["step_times"])
        summary[method] = {
            "step_seconds": step,
            "images_per_s": batch / step,
            "peak_memory_mb": max(result["peak_memory_mb"] for result in results),
            # on CPU the process's own footprint (Python, torch, libraries) is a large constant: the
            # training itself costs the peak above it
            "peak_memory_above_baseline_mb": max(result["peak_memory_mb"] - (result["baseline_rss_mb"]
                                                 if result["device"] == "cpu" else 0) for result in results),
            "trainable_params": results[0]["trainable_params"],
            "trainable_fraction": results[0]["trainable_fraction"],
            "device": results[0]["device"],
        }
    ratios = {}
    if "full" in summary:
        for method in methods:
            if method != "full":
                ratios[f"{method}/full"] = {
                    "step_time": summary[method]["step_seconds"] / summary["full"]["step_seconds"],
                    "peak_memory": summary[method]["peak_memory_mb"] / summary["full"]["peak_memory_mb"],
                    "peak_memory_above_baseline": (summary[method]["peak_memory_above_baseline_mb"]
                                                   / summary["full"]["peak_memory_above_baseline_mb"]),
                }
    results = {"benchmark": "training", "machine": machine_description(), "command": " ".join(sys.argv),
               "model": model, "batch": batch, "dtype": dtype,
               "memory_measure": "peak RSS of the process (CPU) / peak CUDA allocation (GPU); "
                                 "above_baseline subtracts the RSS after imports, before the model (CPU)",
               "methods": summary, "ratios": ratios,
               "targets": {"ln_tuning/full peak_memory": "<= 0.6", "ln_tuning/full step_time": "<= 0.8"}}
    print(f"{'method':12s} {'step s':>8s} {'img/s':>7s} {'peak MB':>9s} {'trainable':>10s}")
    for method, row in summary.items():
        print(f"{method:12s} {row['step_seconds']:8.2f} {row['images_per_s']:7.2f} {row['peak_memory_mb']:9.0f} "
              f"{row['trainable_fraction']:10.4%}")
    for name, ratio in ratios.items():
        print(f"{name}: step time x{ratio['step_time']:.2f}, peak memory x{ratio['peak_memory']:.2f} "
              f"(above the import baseline x{ratio['peak_memory_above_baseline']:.2f})")
    _write(json_path, results)
    return results


# ------------------------------------------------------------------------------------------------ video
def write_face_video(path, seconds=10, size=(1280, 720), fps=25):
    """An H.264 clip of a real face (scikit-image's astronaut) drifting across a textured 720p frame."""
    import av
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()).crop((120, 0, 400, 300)).resize((240, 260))
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(0, 256, size=(size[1] // 20, size[0] // 20, 3), dtype=np.uint8))
    background = background.resize(size, Image.BILINEAR)
    frames = int(seconds * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            canvas = background.copy()
            x = int((size[0] - face.width) * index / max(frames - 1, 1))
            canvas.paste(face, (x, (size[1] - face.height) // 2))
            for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def measure_video(model_dir, videos, num_frames=32, batch_size=8, face_modes=("none", "dlib")):
    """End-to-end `Detector` time per video vs the model alone on as many inputs; plus the split."""
    import torch

    from .faces import get_face_detector
    from .inference import Detector
    from .media import read_video_frames

    rows = []
    for face_mode in face_modes:
        detector = Detector.from_pretrained(model_dir, faces=face_mode, num_frames=num_frames, batch_size=batch_size,
                                            progress=False)
        detector([videos[0]])  # warm-up
        size = detector.model.config.image_size
        for video in videos:
            start = time.perf_counter()
            result = detector([video])[0]
            end_to_end = time.perf_counter() - start
            if result["error"]:
                rows.append({"video": video, "faces": face_mode, "error": result["error"]})
                continue
            inputs = torch.randn(result["frames"], 3, size, size)
            start = time.perf_counter()
            with torch.inference_mode():
                for first in range(0, len(inputs), batch_size):
                    detector.model(pixel_values=inputs[first:first + batch_size])
            model_only = time.perf_counter() - start
            start = time.perf_counter()
            frames = read_video_frames(video, num_frames)
            decode = time.perf_counter() - start
            detect = None
            if face_mode != "none":
                face_detector = get_face_detector(face_mode)
                start = time.perf_counter()
                for frame in frames:
                    face_detector.detect(frame)
                detect = time.perf_counter() - start
            rows.append({
                "video": Path(video).name, "faces": face_mode, "frames": result["frames"],
                "people": result["faces"], "resolution": f"{frames[0].width}x{frames[0].height}",
                "end_to_end_s": end_to_end, "model_only_s": model_only,
                "throughput_vs_model_only": model_only / end_to_end,
                "decode_alone_s": decode, "face_detection_alone_s": detect,
            })
            print(f"{rows[-1]['video']:>22s} faces={face_mode:5s} end-to-end {end_to_end:6.2f} s, "
                  f"model only {model_only:6.2f} s -> x{model_only / end_to_end:.2f} "
                  f"(decode {decode:.2f} s" + (f", detect {detect:.2f} s)" if detect is not None else ")"))
    return rows


def run_video_benchmark(json_path, model="vit-b16", videos=(), num_frames=32, batch_size=8, generated=True):
    """Generated 10 s 720p clip (plus any `videos`, e.g. the shared FF++ clips) with faces none and dlib."""
    with tempfile.TemporaryDirectory() as tmp:
        custom, _ = build_models(model, tmp)
        clips = [write_face_video(Path(tmp) / "generated_720p_10s.mp4")] if generated else []
        rows = measure_video(custom, [*clips, *map(str, videos)], num_frames, batch_size)
    summary = {}
    for face_mode in {row["faces"] for row in rows}:
        ratios = [row["throughput_vs_model_only"] for row in rows if row["faces"] == face_mode and "error" not in row]
        summary[face_mode] = {"median_throughput_vs_model_only": statistics.median(ratios) if ratios else None,
                              "min": min(ratios) if ratios else None}
    results = {"benchmark": "video", "machine": machine_description(), "command": " ".join(sys.argv),
               "model": model, "num_frames": num_frames, "batch_size": batch_size, "videos": rows,
               "summary": summary,
               "targets": {"faces none": ">= 0.8x model-only", "faces dlib (720p)": ">= 0.6x model-only"},
               "note": "model-only runs the same number of inputs as the detector scored (one per frame)"}
    _write(json_path, results)
    return results


HEAVY = ("torch", "transformers", "gradio", "av", "dlib", "matplotlib", "sklearn", "datasets", "peft")

STARTUP_COMMANDS = {
    "import deepfake_hf": [sys.executable, "-c", "import deepfake_hf"],
    "deepfake-hf --help": [sys.executable, "-m", "deepfake_hf.cli", "--help"],
    "deepfake-hf predict --help": [sys.executable, "-m", "deepfake_hf.cli", "predict", "--help"],
    "import deepfake_hf + model class": [sys.executable, "-c",
                                         "from deepfake_hf import DeepfakeDetectorForImageClassification"],
}

IMPORTED_CODE = (
    "import sys, json\n"
    "from deepfake_hf.cli import build_parser\n"
    "build_parser()\n"
    "print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
)


def median_seconds(command, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_startup_benchmark(json_path, repeats=5):
    seconds = {name: median_seconds(command, repeats) for name, command in STARTUP_COMMANDS.items()}
    imported = subprocess.run([sys.executable, "-c", IMPORTED_CODE.format(heavy=HEAVY)], capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
    results = {
        "benchmark": "startup",
        "machine": machine_description(),
        "command": " ".join(sys.argv),
        "median_seconds": seconds,
        "heavy_modules_imported_by_cli_parser": json.loads(imported),
        "target": "deepfake-hf --help under 2 s",
        "target_met": seconds["deepfake-hf --help"] < 2.0,
    }
    for name, value in seconds.items():
        print(f"{name:40s} {value:6.2f} s")
    print(f"heavy modules imported building the CLI parser: {results['heavy_modules_imported_by_cli_parser']}")
    _write(json_path, results)
    return results
