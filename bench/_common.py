"""Shared helpers of the bench scripts: model building, device peak, timing, memory, environment, output."""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from flr.kernel.models import resolve_device, resolve_dtype

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "bench" / "configs"
RESULTS_DIR = REPO / "bench" / "results"


def add_model_args(ap) -> None:
    """--model / --random-init and the device flags every bench script takes."""
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", default="default", help="flr model spec (default: the embedded SmolLM2-135M)")
    src.add_argument("--random-init", help="a config in bench/configs (random weights, real shape)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--attn", default=None)


def config_path(name: str) -> Path:
    """A config name shipped in bench/configs (``llama-3-8b``) or a path to a config JSON."""
    path = Path(name)
    if path.suffix == ".json" and path.exists():
        return path
    candidate = CONFIG_DIR / f"{name}.json"
    if not candidate.exists():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise SystemExit(f"unknown --random-init {name!r}: use one of {known} or a path to a config .json")
    return candidate


def random_init_model(name: str, device: torch.device, dtype: torch.dtype, attn: str | None = None):
    """A model of a real architecture with random weights, built directly on the device (no weights to load)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    raw = json.loads(config_path(name).read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    model_type = raw.pop("model_type")
    config = AutoConfig.for_model(model_type, **raw)
    kwargs = {"dtype": dtype}
    if attn:
        kwargs["attn_implementation"] = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def load(args):
    """(model, tokenizer or None, model label) from --model / --random-init."""
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)  # flr.kernel.models: the same rules as the CLI
    if getattr(args, "random_init", None):
        model = random_init_model(args.random_init, device, dtype, args.attn)
        name = args.random_init
        return model, None, f"random-init:{Path(name).stem if name.endswith('.json') else name}"
    from flr.kernel.models import load_model, model_name

    model, tok = load_model(args.model, device=str(device), dtype=dtype, attn_implementation=args.attn)
    return model, tok, model_name(args.model)


def num_params(model) -> int:
    """Parameters, tied embeddings counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device: torch.device, dtype: torch.dtype) -> dict:
    """Dense matmul FLOP/s on this device: 8192^3 in bf16 (or the run's half dtype) on GPU, 1024^3 in the run's
    dtype on CPU; each product timed alone after 3 warm-ups. ``flops_per_s`` (the MFU denominator) is the best
    product, the conservative choice: back-to-back products for a second or more run slower on a power-capped GPU
    (``flops_per_s_sustained``), while a model's mixed kernels do not hold the card at its power limit."""
    if device.type == "cuda":
        n, reps, sustain_s = 8192, 20, 1.0
        mm_dtype = dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
    else:
        n, reps, sustain_s = 1024, 15, 0.0
        mm_dtype = dtype
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=mm_dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=mm_dtype, generator=gen)
    for _ in range(3):
        a @ b
    sync(device)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - t)
    flops = 2 * n**3
    result = {
        "what": f"{n}x{n}x{n} {str(mm_dtype).removeprefix('torch.')} matmul, random data, best of {reps} "
        "after 3 warm-ups",
        "dtype": str(mm_dtype).removeprefix("torch."),
        "flops_per_s": flops / min(times),
        "flops_per_s_mean": flops / (sum(times) / reps),
    }
    if sustain_s:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < sustain_s:
            a @ b
            count += 1
        sync(device)
        result["flops_per_s_sustained"] = flops * count / (time.perf_counter() - start)
    return result


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator stats, or the process RSS sampled every 2 ms on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _rss()
            self._high = self.base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._high = max(self._high, _rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            sync(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._high, _rss()) - self.base
        return False


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def environment(device: torch.device) -> dict:
    import transformers

    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_bytes=props.total_memory, sm_count=props.multi_processor_count)
    else:
        env["cpu"] = _cpu_name()
        try:
            env["load_average_at_start"] = os.getloadavg()
        except OSError:
            pass
    return env


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_result(payload: dict, out: str | None, stem: str) -> Path:
    payload.setdefault("command", " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    payload.setdefault("date", datetime.now(UTC).isoformat(timespec="seconds"))
    path = Path(out) if out else RESULTS_DIR / f"{stem}.json"
    if path.suffix != ".json":
        path = path / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return str(x)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Markdown table of ``rows`` with ``columns`` = [(key, header)]."""
    cells = [[fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.rjust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line([h for _, h in columns]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)


def scoring_table(result: dict, batches: list[int] | None, peak: float | None) -> str:
    rows = []
    for r in result["rows"]:
        if r.get("oom") or (batches and r["batch"] not in batches):
            continue
        row = dict(r)
        row["mem_mib"] = r["fast_peak_mem_bytes"] / 2**20
        row["mfu_pct"] = 100 * r["mfu"]
        if peak:
            row["mfu_alt_pct"] = 100 * r["fast_tflops"] * 1e12 / peak
        rows.append(row)
    columns = [
        ("K", "K"),
        ("P", "P"),
        ("batch", "B"),
        ("fast_examples_per_s", "fast ex/s"),
        ("fast_tokens_per_s", "fast tok/s"),
        ("fast_tflops", "TFLOP/s"),
        ("mfu_pct", "MFU %"),
    ]
    if peak:
        columns.append(("mfu_alt_pct", f"MFU % vs {peak / 1e12:.0f}"))
    columns += [
        ("mem_mib", "peak mem MiB"),
        ("ref_examples_per_s", "ref ex/s"),
        ("speedup", "speed-up"),
        ("ideal_speedup", "ideal"),
    ]
    return table(rows, columns)


def save_result(result: dict, out: str | Path, device: torch.device | None = None) -> Path:
    """Write a bench result with the command that produced it and the machine it ran on."""
    import shlex

    result = {
        **result,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "environment": environment(device or torch.device("cpu")),
    }
    out = Path(out)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out
