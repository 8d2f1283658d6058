"""`labsupport bench`'s report: the machine it ran on, and the results as Markdown tables and JSON."""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

__all__ = ["machine_info", "to_markdown", "write_results", "loadavg", "ms_stats", "s_stats"]


def loadavg() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    info = {"device": str(device), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "loadavg_start": loadavg()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# -- output --------------------------------------------------------------------------------------
def ms_stats(stats: dict) -> dict:
    return {f"{k}_ms": 1e3 * v for k, v in stats.items() if k != "n"} | {"n": stats["n"]}


def s_stats(stats: dict) -> dict:
    return {f"{k}_s": v for k, v in stats.items() if k != "n"} | {"n": stats["n"]}


def _f(v, spec: str = ".3g") -> str:
    return "–" if v is None else format(v, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def to_markdown(res: dict) -> str:
    """The benchmark as Markdown tables, machine first."""
    m, st = res["machine"], res["settings"]
    lines = [f"**Machine**: {m.get('gpu') or m['cpu']} ({m['device']}; {m['cpu_count']} CPU cores, "
             f"{m['torch_threads']} torch threads), torch {m['torch']}, Python {m['python']}, {m['date']}; "
             f"load average {m['loadavg_start']} at start, {m.get('loadavg_end')} at end.  ",
             f"**Model**: {m['model']}.  ",
             f"**Settings**: {'quick' if st['quick'] else 'full'} run, {st['repeats']} repeat(s) per sampler, "
             f"{st['forward_calls']} timed calls per forward row.", ""]
    lines += [f"> {note}" for note in res["notes"]] + ([""] if res["notes"] else [])
    lines += ["### One forward", _table(
        ["batch", "median ms", "IQR ms", "min–max ms", "samples/s", "peak MiB"],
        [[str(r["batch"]), _f(r["median_ms"]), f"{_f(r['q1_ms'])}–{_f(r['q3_ms'])}",
          f"{_f(r['min_ms'])}–{_f(r['max_ms'])}", _f(r["samples_per_s"], ".4g"), _f(r["peak_mib"], ".4g")]
         for r in res["forward"]]), ""] if res["forward"] else []
    lines += ["### Samplers", "overhead = wall / (NFE × mean forward time, forwards timed right before and after "
              "the run); in-loop = wall / time spent inside the network during the run (CPU only).", "", _table(
        ["batch", "sampler", "NFE", "median s", "min–max s", "overhead (min–max)", "in-loop", "samples/s",
         "peak MiB"],
        [[str(r["batch"]), r["sampler"], str(r["nfe"]), _f(r["median_s"], ".4g"),
          f"{_f(r['min_s'], '.4g')}–{_f(r['max_s'], '.4g')}",
          f"{r['overhead']:.3f} ({r['overhead_min']:.3f}–{r['overhead_max']:.3f})", _f(r["in_loop"], ".4f"),
          _f(r["samples_per_s"]), _f(r["peak_mib"], ".4g")] for r in res["samplers"]]), ""] if res["samplers"] else []
    if res["speedup"]:
        T = st["T"]
        lines += [f"### DDIM-50 vs DDPM-{T}", "at equal forward cost: each run's wall time divided by its own "
                  "in-loop forward time (removes changes of the machine's speed between the runs).", "", _table(
            ["batch", "DDIM-50 s", f"DDPM-{T} s", "speedup", "at equal forward cost"],
            [[str(r["batch"]), _f(r["ddim50_s"], ".4g"),
              _f(r[f"ddpm{T}_s"], ".4g") + (" (est.)" if r["estimated"] else ""), f"{r['speedup']:.1f}×",
              "–" if r["at_equal_forward"] is None else f"{r['at_equal_forward']:.1f}×"]
             for r in res["speedup"]]), ""]
    if res["guidance"]:
        lines += ["### Guidance: one forward of 2B vs two forwards of B, and `guided_eps`'s own choice",
                  "chosen: what `guided_eps(..., batched=None)` measured and picked; faster / chosen: the faster "
                  "batching's time over the chosen one's (1.00 when it picked the faster; timed alternating).", "",
                  _table(["batch B", "batched 2B ms", "two × B ms", "speedup of 2B", "chosen", "chosen ms",
                          "faster / chosen"],
                         [[str(r["batch"]), _f(r["batched_ms"]), _f(r["two_forwards_ms"]), f"{r['speedup']:.2f}×",
                           ("one call of 2B" if r["auto_batched"] else "two calls of B") if "auto_batched" in r else "–",
                           _f(r.get("auto_ms")), _f(r.get("auto_vs_best"), ".3f")] for r in res["guidance"]]), ""]
    for r in res.get("default_path", []):
        lines += [f"### Default path vs plain fp32 model (DDIM-{r['steps']}, η = 0, batch {r['batch']}, same x_T)",
                  f"default path: `load_pretrained`'s model ({r['fast_path'] or 'fast path off'}); plain: "
                  "`load_pretrained(fast=False)`; both under the samplers' inference mode, runs alternating.", "",
                  _table(["plain s (min–max)", "default s (min–max)", "speedup", "max abs diff"],
                         [[f"{_f(r['plain_s'], '.4g')} ({_f(r['plain_min_max_s'][0], '.4g')}–"
                           f"{_f(r['plain_min_max_s'][1], '.4g')})",
                           f"{_f(r['default_s'], '.4g')} ({_f(r['default_min_max_s'][0], '.4g')}–"
                           f"{_f(r['default_min_max_s'][1], '.4g')})",
                           f"{r['speedup']:.3f}×", _f(r["max_abs_diff"], ".2e")]]), ""]
    if res.get("overhead"):
        lines += ["### Loop overhead per sampler (in-loop measure, default path)",
                  "in-loop = wall time of `sample()` / seconds spent inside the network's forward calls during "
                  "that run (median over the repeats; min–max in brackets).", "", _table(
                      ["batch", "sampler", "network calls", "median s", "network s", "in-loop (min–max)"],
                      [[str(r["batch"]), r["sampler"], str(r["calls"]), _f(r["median_s"], ".4g"),
                        _f(r["network_s"], ".4g"),
                        f"{r['in_loop']:.4f} ({r['in_loop_min']:.4f}–{r['in_loop_max']:.4f})"]
                       if r["status"] == "ok" else [str(r["batch"]), r["sampler"], r["status"], "", "", ""]
                       for r in res["overhead"]]), ""]
    ok = [r for r in res["optimizations"] if r["status"] == "ok"]
    title = f" (DDIM-{ok[0]['steps']}, η = 0, batch {ok[0]['batch']}, same x_T)" if ok else ""
    lines += [f"### Optimizations{title}", _table(
        ["variant", "median s", "vs fp32 eager", "vs inference mode", "max abs diff", "mean abs diff", "samples/s",
         "peak MiB", "first call s"],
        [[r["name"], _f(r["median_s"], ".4g"), f"{r['speedup_vs_eager']:.2f}×",
          "–" if r["speedup_vs_inference"] is None else f"{r['speedup_vs_inference']:.2f}×",
          _f(r["max_abs_diff"], ".2e"), _f(r["mean_abs_diff"], ".2e"), _f(r["samples_per_s"]), _f(r["peak_mib"], ".4g"),
          _f(r["first_call_s"], ".3g")]
         if r["status"] == "ok" else [r["name"], r["status"]] + [""] * 7 for r in res["optimizations"]]), ""] \
        if res["optimizations"] else []
    if res.get("goals"):
        lines += ["### Goals of issues 4 and 16", _table(["goal", "measured", "met"],
                                                 [[g["goal"], f"{g['value']:.3f}", "yes" if g["met"] else "no"]
                                                  for g in res["goals"]]), ""]
    return "\n".join(lines)


def write_results(res: dict, out: str | Path) -> tuple[Path, Path]:
    """Write bench_<device>[_quick].md and .json into `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_{torch.device(res['machine']['device']).type}{'_quick' if res['settings']['quick'] else ''}"
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(to_markdown(res) + "\n")
    js.write_text(json.dumps(res, indent=2) + "\n")
    return md, js
