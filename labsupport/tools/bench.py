"""`labsupport bench`: what sampling costs on this machine and what each optimization buys (notebook 06).

Measured with warm-up and, on CUDA, a device synchronisation around every timed call:
- one forward of the U-Net at each batch size;
- DDIM-{10, 20, 50, 100} and DDPM-1000, with the overhead ratio wall time / (NFE x forward time),
  the forward time taken from forwards run right before and after each sampler run;
- DDIM-50 against DDPM-1000, also at equal forward cost (CPU), which a change of load between
  the two runs does not move;
- guidance: one forward of 2B against two forwards of B, and the choice `guided_eps` makes by itself;
- the default path (`load_pretrained`'s fast path) against the plain fp32 model on DDIM-50;
- loop overhead per sampler: wall time of `sample()` / time spent inside the network calls;
- each optimization of `labsupport.tools.speedups` against fp32 eager on the same x_T: speedup and the
  largest absolute difference of the final samples;
- samples per second, and peak memory on CUDA.
Every clock reading goes through `labsupport.tools.timing`. Writes a Markdown table (also printed)
and a JSON file.
"""
from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..device import get_device
from ..maths.schedule import NoiseSchedule
from ..models.pretrained import WEIGHTS_DIR, WeightsError, fast_path_enabled, load_pretrained, use_fast_path
from ..models.unet import UNet, UNetConfig
from ..samplers import DDIMSampler, DDPMSampler
from ..samplers.guidance import guidance_batching, guided_eps
from .speedups import optimize_sampler, plain_model, unavailable_reason, use_autograd, with_model
from .bench_report import loadavg, machine_info, ms_stats, s_stats, to_markdown, write_results
from .bench_loops import FEW_STEP_SOLVERS, NetworkClock, bench_default_path, bench_loop_overhead, overhead_samplers
from .timing import repeat_times, synchronize, timed

__all__ = ["run_benchmark", "bench_forward", "bench_sampler", "bench_guidance", "bench_optimizations", "speedup_row",
           "bench_default_path", "bench_loop_overhead", "overhead_samplers", "check_goals", "load_bench_model",
           "shipped_metadata", "to_markdown", "write_results", "add_parser", "NetworkClock", "GOALS", "SECTIONS",
           "FEW_STEP_SOLVERS"]

SHIPPED_MODEL = "unet_mnist"  # weights/unet_mnist.json holds its configuration and schedule
DDIM_STEPS = (10, 20, 50, 100)
QUICK_DDPM_STEPS = 100  # --quick times DDPM on a 100-step respaced schedule instead of all 1000 steps
OPTIMIZATION_ROWS = {  # row name -> optimizations stacked (all run under inference mode, like `sample`)
    "inference mode": ("inference_mode",),
    "default path (load_pretrained)": ("fast_path", "inference_mode"),
    "channels_last": ("channels_last", "inference_mode"),
    "autocast": ("autocast", "inference_mode"),
    "torch.compile": ("compile", "inference_mode"),
    "CUDA graphs": ("cuda_graphs", "inference_mode"),
    "stack: channels_last + autocast": ("channels_last", "autocast", "inference_mode"),
    "stack: channels_last + autocast + compile": ("channels_last", "autocast", "compile", "inference_mode"),
    "stack: channels_last + autocast + CUDA graphs": ("channels_last", "autocast", "cuda_graphs", "inference_mode"),
}
GOALS = {  # issue 4's targets, then issue 16's
    "overhead_cpu": 1.03, "overhead_gpu": 1.10, "ddim50_vs_ddpm1000": 19.0, "guidance_cpu": 1.3,
    "best_stack_gpu": 3.0, "best_stack_diff": 2e-2,
    "default_path": 1.15, "default_path_diff": 1e-4, "guidance_choice": 0.97, "in_loop": 1.02,
}
SECTIONS = ("forward", "samplers", "guidance", "default", "overhead", "optimizations")

# -- timing --------------------------------------------------------------------------------------
def summarize(seconds: Sequence[float]) -> dict:
    """Median, quartiles, min and max of a list of timings (seconds)."""
    s = sorted(seconds)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    return {"median": statistics.median(s), "q1": q[0], "q3": q[2], "min": s[0], "max": s[-1], "n": len(s)}


def peak_memory(device: torch.device, fn: Callable[[], object]) -> float | None:
    """Peak CUDA memory (MiB) allocated while `fn` runs; None on other devices."""
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def forward_times(model: nn.Module, x: torch.Tensor, calls: int, y: torch.Tensor | None = None, *,
                  warmup: int = 0) -> list[float]:
    """Seconds of each of `calls` forwards of `model` on x (at a middle timestep), after `warmup` untimed ones."""
    t = torch.tensor(500, device=x.device)
    with torch.inference_mode():
        return repeat_times(lambda: model(x, t, y), x.device, repeats=calls, warmup=warmup)


# -- the measurements ----------------------------------------------------------------------------
def bench_forward(model: nn.Module, batch: int, image_shape, *, calls: int, warmup: int = 3) -> dict:
    x = torch.randn((batch, *image_shape), device=next(model.parameters()).device)
    row = {"batch": batch, **ms_stats(summarize(forward_times(model, x, calls, warmup=warmup)))}
    row["samples_per_s"] = batch / (row["median_ms"] / 1e3)
    row["peak_mib"] = peak_memory(x.device, lambda: forward_times(model, x, 1))
    return row


def bench_sampler(name: str, sampler, nfe: int, batch: int, image_shape, *, repeats: int, calls_around: int = 10,
                  **sample_kwargs) -> dict:
    """Time `sampler.sample` from a fixed x_T, `repeats` times.

    overhead: wall / (NFE × mean forward time), the forwards timed just before and after each run.
    in_loop (CPU): wall / seconds spent inside the network during the same run, which the machine's
    load affects alike in numerator and denominator.
    """
    device, model = sampler.device, sampler.model
    clock = NetworkClock(model) if device.type == "cpu" else None
    run_sampler = with_model(sampler, clock) if clock is not None else sampler
    x_T = torch.randn((batch, *image_shape), device=device, generator=torch.Generator(device).manual_seed(0))

    def run():
        return run_sampler.sample(x_T.shape, x_T=x_T, progress=False, **sample_kwargs)
    walls, ratios, in_loop = [], [], []
    for _ in range(repeats):
        before = forward_times(model, x_T, calls_around)
        if clock is not None:
            clock.seconds = 0.0
        wall, _ = timed(run, device)
        around = before + forward_times(model, x_T, calls_around)
        walls.append(wall)
        ratios.append(wall / (nfe * statistics.fmean(around)))
        if clock is not None:
            in_loop.append(wall / clock.seconds)
    stats = summarize(walls)
    return {"batch": batch, "sampler": name, "nfe": nfe, **s_stats(stats), "overhead": statistics.median(ratios),
            "overhead_min": min(ratios), "overhead_max": max(ratios),
            "in_loop": statistics.median(in_loop) if in_loop else None, "samples_per_s": batch / stats["median"],
            "peak_mib": peak_memory(device, run)}


def bench_guidance(model: nn.Module, batch: int, image_shape, *, calls: int) -> dict:
    """ε with guidance: one forward of [cond; null] (2B) against a conditional and a null forward of B,
    and `guided_eps`'s own choice (batched=None, measured once before the timing starts).

    auto_vs_best: the faster batching's time / the automatic choice's time (1 when it picks the faster).
    """
    device = next(model.parameters()).device
    x = torch.randn((batch, *image_shape), device=device)
    y = torch.arange(batch, device=device) % getattr(model, "num_classes", 10)
    t = torch.tensor(500, device=device)

    with torch.inference_mode():
        choice = guidance_batching(model, x, t, y)
    times: dict[bool | None, list[float]] = {True: [], False: [], None: []}
    with torch.inference_mode():
        for i in range(calls + 2):  # alternating, so a change in the machine's load hits all alike
            for batched in (True, False, None):
                seconds, _ = timed(lambda: guided_eps(model, x, t, y, 3.0, batched=batched), device)
                if i >= 2:  # the first two of each are warm-up
                    times[batched].append(seconds)
    batched_ms, two_ms, auto_ms = (1e3 * statistics.median(times[b]) for b in (True, False, None))
    return {"batch": batch, "batched_ms": batched_ms, "two_forwards_ms": two_ms, "speedup": two_ms / batched_ms,
            "auto_ms": auto_ms, "auto_batched": choice, "auto_vs_best": min(batched_ms, two_ms) / auto_ms}


def bench_optimizations(model: nn.Module, schedule: NoiseSchedule, batch: int, steps: int, image_shape, *,
                        repeats: int, skip: dict[str, str], log: Callable[[str], None]) -> list[dict]:
    """DDIM-`steps` (η = 0) from one x_T with each optimization row against fp32 eager (autograd on).

    Every row starts from the plain model (a plain copy of `model` when it is on the fast path)."""
    model = plain_model(model)
    device = next(model.parameters()).device
    base = DDIMSampler(model, schedule)
    x_T = torch.randn((batch, *image_shape), device=device, generator=torch.Generator(device).manual_seed(1))
    rows, reference, ref_s, inference_s = [], None, None, None
    for row, names in {"fp32 eager (autograd on)": (), **OPTIMIZATION_ROWS}.items():
        reasons = [skip.get(n) or unavailable_reason(n, device) for n in names]
        if any(reasons):
            rows.append({"name": row, "status": "skipped: " + next(r for r in reasons if r)})
            continue
        log(f"  optimization: {row}")
        try:
            sampler = optimize_sampler(base, *names) if names else with_model(base, use_autograd(model))

            def run():
                return sampler.sample(x_T.shape, x_T=x_T, num_steps=steps, progress=False)
            first_s, out = timed(run, device)  # warm-up; compiles or captures where the row does
            walls = repeat_times(run, device, repeats=repeats, warmup=0)
        except Exception as err:  # a failing optimization is a result to report, not a reason to stop
            rows.append({"name": row, "status": f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            continue
        stats = summarize(walls)
        if reference is None:
            reference, ref_s = out.float(), stats["median"]
        if row == "inference mode":
            inference_s = stats["median"]
        rows.append({"name": row, "status": "ok", "batch": batch, "steps": steps, **s_stats(stats), "first_call_s": first_s,
                     "speedup_vs_eager": ref_s / stats["median"],
                     "speedup_vs_inference": inference_s / stats["median"] if inference_s else None,
                     "max_abs_diff": float((out.float() - reference).abs().max()),
                     "mean_abs_diff": float((out.float() - reference).abs().mean()),
                     "samples_per_s": batch / stats["median"], "peak_mib": peak_memory(device, run)})
    return rows


def run_benchmark(model: nn.Module, schedule: NoiseSchedule, *, batch_sizes: Sequence[int] = (1, 16, 64),
                  ddim_steps: Sequence[int] = DDIM_STEPS, repeats: int = 3, quick: bool = False,
                  image_shape: Sequence[int] = (1, 28, 28), opt_batch: int | None = None, opt_steps: int | None = None,
                  model_source: str = "the given model", sections: Sequence[str] = SECTIONS,
                  log: Callable[[str], None] = print) -> dict:
    """Every measurement of the module docstring for `model` on its own device; returns a JSON-ready dict.

    The forwards, samplers, guidance and loop overhead run on the default path (what `load_pretrained`
    hands out: `model` put on the fast path, unless LABSUPPORT_FAST_PATH=0); the optimizations start
    from the plain model. sections: which of SECTIONS to run.
    quick: DDPM on a 100-step respaced schedule instead of all T steps (its DDPM-T time and the
    speedup are then estimates, scaled by T/100), DDIM-100 and torch.compile left out.
    """
    unknown = [n for n in sections if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    plain = plain_model(model).eval()
    default = use_fast_path(copy.deepcopy(plain)) if fast_path_enabled() else plain
    device = next(plain.parameters()).device
    T = schedule.T
    ddim_steps = [n for n in ddim_steps if n <= T and not (quick and n > 50)]
    ddpm_steps = min(T, QUICK_DDPM_STEPS) if quick else T
    calls = max(20, 10 * repeats)
    res: dict = {"machine": {**machine_info(device), "model": model_source}, "settings": {
        "quick": quick, "repeats": repeats, "batch_sizes": list(batch_sizes), "ddim_steps": ddim_steps, "T": T,
        "ddpm_steps_timed": ddpm_steps, "image_shape": list(image_shape), "forward_calls": calls,
        "sections": list(sections), "default_path": default.fast_path},
        "forward": [], "samplers": [], "speedup": [], "guidance": [], "default_path": [], "overhead": [],
        "optimizations": [], "notes": []}
    if quick:
        ddpm_note = (f"DDPM timed on a {ddpm_steps}-step respaced schedule (DDPM-{T} time and the DDIM-50 speedup "
                     f"scaled by {T}/{ddpm_steps}); " if ddpm_steps != T else "")
        res["notes"].append(f"--quick: {ddpm_note}DDIM-100 and torch.compile left out; {repeats} repeat(s)")
    if device.type != "cuda":
        res["notes"].append("GPU: not measured (this run is on the CPU)")
    for batch in batch_sizes:
        if "forward" in sections:
            log(f"batch {batch}: forward")
            res["forward"].append(bench_forward(default, batch, image_shape, calls=calls))
        if "samplers" in sections:
            rows = {}
            for n in ddim_steps:
                log(f"batch {batch}: DDIM-{n}")
                rows[f"DDIM-{n}"] = bench_sampler(f"DDIM-{n}", DDIMSampler(default, schedule), n, batch, image_shape,
                                                  repeats=repeats, num_steps=n)
            log(f"batch {batch}: DDPM-{ddpm_steps}")
            ddpm = DDPMSampler(default, schedule if ddpm_steps == T else schedule.respace(
                torch.linspace(0, T - 1, ddpm_steps).round().long()))
            rows[f"DDPM-{ddpm_steps}"] = bench_sampler(f"DDPM-{ddpm_steps}", ddpm, ddpm_steps, batch, image_shape,
                                                       repeats=repeats,
                                                       generator=torch.Generator(device).manual_seed(0))
            res["samplers"].extend(rows.values())
            if "DDIM-50" in rows:
                res["speedup"].append(speedup_row(rows["DDIM-50"], rows[f"DDPM-{ddpm_steps}"], T))
        if "guidance" in sections:
            log(f"batch {batch}: guidance")
            res["guidance"].append(bench_guidance(default, batch, image_shape, calls=calls))
    opt_batch = opt_batch or (64 if device.type == "cuda" else 16)
    opt_steps = min(opt_steps or (10 if quick else 50), T)
    if "default" in sections:
        log(f"default path vs plain model at batch {opt_batch}, DDIM-{opt_steps}")
        res["default_path"].append(bench_default_path(plain, schedule, opt_batch, opt_steps, image_shape,
                                                      repeats=repeats))
    if "overhead" in sections and device.type == "cpu":
        # the loop's share only shrinks as the batch grows: up to the optimizations' batch is enough (DDPM-1000
        # at batch 64 alone would take several minutes per repeat on a small CPU)
        for batch in [b for b in batch_sizes if b <= opt_batch] or batch_sizes[:1]:
            log(f"batch {batch}: loop overhead")
            res["overhead"].extend(bench_loop_overhead(default, schedule, batch, image_shape, repeats=repeats,
                                                       quick=quick, log=log))
    if "optimizations" in sections:
        log(f"optimizations at batch {opt_batch}, DDIM-{opt_steps}")
        skip = {"compile": "left out by --quick (compiling takes minutes on a small CPU)"} if quick else {}
        res["optimizations"] = bench_optimizations(plain, schedule, opt_batch, opt_steps, image_shape,
                                                   repeats=repeats, skip=skip, log=log)
    res["goals"] = check_goals(res, device)
    res["machine"]["loadavg_end"] = loadavg()
    return res


def speedup_row(ddim: dict, ddpm: dict, T: int) -> dict:
    """DDIM-50 against DDPM-T from their rows (DDPM scaled to T steps when it ran fewer).

    at_equal_forward: the same ratio with each run's wall time counted in its own forward time
    (wall / in-loop network time per call), i.e. as if the machine's speed had not changed between
    the two runs; only where the in-loop time was measured (CPU).
    """
    ddpm_s = ddpm["median_s"] * T / ddpm["nfe"]
    row = {"batch": ddim["batch"], "ddim50_s": ddim["median_s"], f"ddpm{T}_s": ddpm_s,
           "speedup": ddpm_s / ddim["median_s"], "estimated": ddpm["nfe"] != T, "at_equal_forward": None}
    if ddim["in_loop"] is not None and ddpm["in_loop"] is not None:
        row["at_equal_forward"] = (T * ddpm["in_loop"]) / (ddim["nfe"] * ddim["in_loop"])
    return row


def check_goals(res: dict, device: torch.device) -> list[dict]:
    """Issue 4's goals against the measured numbers (a goal whose row was not measured is left out)."""
    gpu, goals = device.type == "cuda", []
    at = 64 if gpu else 16
    limit = GOALS["overhead_gpu" if gpu else "overhead_cpu"]
    for r in res["samplers"]:
        if r["batch"] == at and (r["sampler"] == "DDIM-50" or r["sampler"].startswith("DDPM")):
            goals.append({"goal": f"overhead {r['sampler']} at batch {at} <= {limit}", "value": r["overhead"],
                          "met": r["overhead"] <= limit})
            if r["in_loop"] is not None:
                goals.append({"goal": "same, in-loop measure", "value": r["in_loop"], "met": r["in_loop"] <= limit})
    for r in res["speedup"]:
        if r["batch"] == 16 or gpu:
            goals.append({"goal": f"DDIM-50 vs DDPM-{res['settings']['T']} at batch {r['batch']} >= "
                                  f"{GOALS['ddim50_vs_ddpm1000']}x" + (" (estimated)" if r["estimated"] else ""),
                          "value": r["speedup"], "met": r["speedup"] >= GOALS["ddim50_vs_ddpm1000"]})
            if r["at_equal_forward"] is not None:
                goals.append({"goal": "same, at equal forward cost", "value": r["at_equal_forward"],
                              "met": r["at_equal_forward"] >= GOALS["ddim50_vs_ddpm1000"]})
    for r in res["guidance"]:
        if r["batch"] == 16 and not gpu:
            goals.append({"goal": f"batched guidance at batch 16 >= {GOALS['guidance_cpu']}x", "value": r["speedup"],
                          "met": r["speedup"] >= GOALS["guidance_cpu"]})
    for r in [r for r in res.get("default_path", []) if r["batch"] == at]:
        goals.append({"goal": f"default path vs plain fp32 model, DDIM-{r['steps']} at batch {r['batch']} >= "
                              f"{GOALS['default_path']}x with max |diff| <= {GOALS['default_path_diff']:g}",
                      "value": r["speedup"], "met": r["speedup"] >= GOALS["default_path"]
                      and r["max_abs_diff"] <= GOALS["default_path_diff"]})
    for r in res["guidance"]:
        if "auto_vs_best" in r and r["batch"] in (1, 16, 64):
            goals.append({"goal": f"guidance's own batching at batch {r['batch']} within 3% of the faster "
                                  f"(faster / chosen >= {GOALS['guidance_choice']})",
                          "value": r["auto_vs_best"], "met": r["auto_vs_best"] >= GOALS["guidance_choice"]})
    for r in res.get("overhead", []):
        if r["status"] == "ok" and r["batch"] == at:
            goals.append({"goal": f"loop overhead {r['sampler']} at batch {at} <= {GOALS['in_loop']} (in-loop)",
                          "value": r["in_loop"], "met": r["in_loop"] <= GOALS["in_loop"]})
    stacks = [r for r in res["optimizations"] if r["status"] == "ok" and r["name"].startswith("stack")]
    if gpu and stacks:
        best = max(stacks, key=lambda r: r["speedup_vs_eager"])
        goals.append({"goal": f"best stack vs fp32 eager at batch {best['batch']} >= {GOALS['best_stack_gpu']}x with "
                              f"max |diff| <= {GOALS['best_stack_diff']} ({best['name']})",
                      "value": best["speedup_vs_eager"], "met": best["speedup_vs_eager"] >= GOALS["best_stack_gpu"]
                      and best["max_abs_diff"] <= GOALS["best_stack_diff"]})
    return goals


# -- model and machine ---------------------------------------------------------------------------
def shipped_metadata(folder: str | Path | None = None) -> dict:
    """The shipped U-Net's metadata, weights/unet_mnist.json: its configuration ("unet"), schedule and T."""
    path = (Path(folder) if folder is not None else WEIGHTS_DIR) / f"{SHIPPED_MODEL}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"the shipped model's configuration {path} could not be read ({err}); reinstall the "
                           "package (pip install -e .)") from err


def load_bench_model(device: torch.device, *, folder: str | Path | None = None
                     ) -> tuple[nn.Module, NoiseSchedule, str]:
    """(shipped U-Net, its schedule, where it came from), or a random-init model of the configuration
    the weights' metadata records if the weights are missing: speed is the same, the optimization
    differences are only indicative."""
    try:
        model, schedule = load_pretrained(device=device, folder=folder)
        return model, schedule, "shipped pretrained U-Net"
    except WeightsError as err:
        meta = shipped_metadata(folder)
        torch.manual_seed(0)
        model = UNet(UNetConfig.from_dict(meta["unet"])).to(device).eval()
        schedule = NoiseSchedule.from_name(meta["schedule"], meta["T"])
        return model, schedule, f"random-init U-Net of the shipped config (weights missing: {err})"


# -- command line --------------------------------------------------------------------------------
def add_parser(sub) -> None:
    """Register `labsupport bench` on the CLI's subparsers."""
    p = sub.add_parser("bench", help="time forwards, samplers, guidance and optimizations on this device")
    p.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")],
                   help="comma-separated, default 1,16,64 (and 256 on CUDA); 16 with --quick")
    p.add_argument("--repeats", type=int, help="timed runs per sampler and optimization (default 3, 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a few minutes on a laptop CPU: batch 16, DDPM on 100 steps, no DDIM-100, no torch.compile")
    p.add_argument("--out", default="bench", help="folder for bench_<device>.md and .json (default ./bench)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--only", type=lambda s: [v.strip() for v in s.split(",")],
                   help=f"comma-separated sections to run (default all): {','.join(SECTIONS)}")
    p.set_defaults(func=_run)


def _run(a) -> None:
    if a.threads:
        torch.set_num_threads(a.threads)
    device = get_device(a.device)
    model, schedule, source = load_bench_model(device)
    print(f"labsupport bench on {device}: {source}")
    default_batches = [16] if a.quick else [1, 16, 64] + ([256] if device.type == "cuda" else [])
    res = run_benchmark(model, schedule, batch_sizes=a.batch_sizes or default_batches,
                        repeats=a.repeats or (2 if a.quick else 3), quick=a.quick, model_source=source,
                        sections=a.only or SECTIONS)
    md, js = write_results(res, a.out)
    print(to_markdown(res))
    print(f"wrote {md} and {js}")
