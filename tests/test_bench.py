"""labsupport.tools.bench: a tiny smoke run of every measurement, the report, the goals and the command line.

Nothing here checks a speed; the tiny model and a short schedule keep the whole file to seconds.
"""
import argparse
import functools
import json

import pytest
import torch

from conftest import TINY
from labsupport import NoiseSchedule, UNet, UNetConfig
from labsupport.tools import bench, speedups as optimize
from labsupport.models.fast_path import PLAIN_MEASURED
from labsupport.models.pretrained import WEIGHTS_DIR, WeightsError
from labsupport.samplers import DDIMSampler

IMAGE = (1, 8, 8)


@pytest.fixture(scope="module")
def model32() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def quick_result(model32):
    """One quick run: T = 60, batches 1 and 2, DDIM-5 and DDIM-50, DDPM-60, optimizations on DDIM-3."""
    return bench.run_benchmark(model32, NoiseSchedule.linear(60), batch_sizes=(1, 2), ddim_steps=(5, 50, 100),
                               repeats=1, quick=True, image_shape=IMAGE, opt_batch=2, opt_steps=3,
                               model_source="tiny test model", log=lambda msg: None)


def test_summarize():
    s = bench.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    one = bench.summarize([0.5])
    assert one["median"] == one["q1"] == one["q3"] == 0.5


def test_network_clock_passes_through_and_counts(model32):
    clock = bench.NetworkClock(model32)
    x = torch.randn(2, *IMAGE)
    with torch.inference_mode():
        torch.testing.assert_close(clock(x, 10), model32(x, 10), rtol=0, atol=0)
    assert clock.seconds > 0 and clock.null_class == model32.null_class


def test_quick_run_has_every_section(quick_result):
    res = quick_result
    assert res["machine"]["model"] == "tiny test model" and res["settings"]["quick"]
    assert [r["batch"] for r in res["forward"]] == [1, 2]
    assert all(r["median_ms"] > 0 and r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] for r in res["forward"])
    # quick leaves DDIM-100 out; DDPM runs on all 60 steps since T < 100
    assert [r["sampler"] for r in res["samplers"]] == ["DDIM-5", "DDIM-50", "DDPM-60"] * 2
    for r in res["samplers"]:
        assert r["overhead_min"] <= r["overhead"] <= r["overhead_max"] and r["in_loop"] >= 1.0
        assert r["samples_per_s"] == pytest.approx(r["batch"] / r["median_s"])
    assert [r["batch"] for r in res["speedup"]] == [1, 2] and not res["speedup"][0]["estimated"]
    for r in res["guidance"]:
        assert r["speedup"] == pytest.approx(r["two_forwards_ms"] / r["batched_ms"])
    assert any("DDIM-100 and torch.compile left out" in note for note in res["notes"])


def test_quick_run_issue16_sections(quick_result):
    guidance = quick_result["guidance"]
    for r in guidance:
        chosen = r["batched_ms"] if r["auto_batched"] else r["two_forwards_ms"]
        assert r["auto_ms"] > 0 and r["auto_vs_best"] == pytest.approx(min(r["batched_ms"], r["two_forwards_ms"])
                                                                       / r["auto_ms"])
        assert chosen > 0
    (default,) = quick_result["default_path"]
    assert default["fast_path"] in ("channels_last", PLAIN_MEASURED) and default["max_abs_diff"] < 1e-4 and default["speedup"] > 0
    rows = {(r["batch"], r["sampler"]): r for r in quick_result["overhead"]}
    for batch in (1, 2):
        for name in ("DDPM-60", "DDIM-50", "guided DDIM-50 (w = 3)", "DDPM respaced to 60 steps", "DDIM-50, η = 0.5"):
            r = rows[batch, name]
            assert r["status"] == "ok" and r["in_loop_min"] <= r["in_loop"] <= r["in_loop_max"] and r["in_loop"] >= 1
        assert rows[batch, "DDIM-50"]["calls"] == 50
        assert rows[batch, "guided DDIM-50 (w = 3)"]["calls"] in (50, 100)  # one call of 2B or two of B per step
        for name, *_ in bench.FEW_STEP_SOLVERS:  # the few-step solvers: timed once they exist, else said so
            assert rows[batch, name]["status"] == "ok" or rows[batch, name]["status"].startswith("not available")


def test_sections_can_be_chosen(model32):
    res = bench.run_benchmark(model32, NoiseSchedule.linear(20), batch_sizes=(2,), repeats=1, quick=True,
                              image_shape=IMAGE, opt_batch=2, opt_steps=2, sections=("default", "guidance"),
                              log=lambda msg: None)
    assert res["forward"] == res["samplers"] == res["overhead"] == res["optimizations"] == []
    assert len(res["default_path"]) == 1 and len(res["guidance"]) == 1
    md = bench.to_markdown(res)
    assert "### Default path" in md and "### Guidance" in md and "### Samplers" not in md
    with pytest.raises(ValueError, match="unknown section"):
        bench.run_benchmark(model32, NoiseSchedule.linear(20), sections=("speed",), log=lambda msg: None)


def test_quick_run_optimizations(quick_result):
    rows = {r["name"]: r for r in quick_result["optimizations"]}
    assert rows["fp32 eager (autograd on)"]["max_abs_diff"] == 0.0
    assert rows["inference mode"]["max_abs_diff"] == 0.0
    assert rows["default path (load_pretrained)"]["max_abs_diff"] < 1e-5
    assert rows["channels_last"]["max_abs_diff"] < 1e-5
    assert rows["autocast"]["max_abs_diff"] < 5e-2
    assert rows["torch.compile"]["status"].startswith("skipped: left out by --quick")
    if not torch.cuda.is_available():
        assert rows["CUDA graphs"]["status"] == "skipped: CUDA graphs need a CUDA device; this run is on cpu"
    assert all(r["status"] == "ok" or r["status"].startswith("skipped") for r in rows.values())


def test_markdown_and_json_files(quick_result, tmp_path):
    md_path, json_path = bench.write_results(quick_result, tmp_path / "out")
    assert md_path.name == "bench_cpu_quick.md" and json_path.name == "bench_cpu_quick.json"
    md = md_path.read_text()
    for heading in ("### One forward", "### Samplers", "### DDIM-50 vs DDPM-60", "### Guidance", "### Optimizations",
                    "### Default path vs plain fp32 model", "### Loop overhead per sampler"):
        assert heading in md
    # the goals are stated at batch 16, issue 16's guidance goal at batches 1, 16 and 64: only batch 1 ran here
    assert [g["goal"].split(" within")[0] for g in quick_result["goals"]] == ["guidance's own batching at batch 1"]
    assert "GPU: not measured" in md or torch.cuda.is_available()
    assert "tiny test model" in md and "skipped: CUDA graphs need a CUDA device" in md
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(quick_result))


def test_optimization_failure_is_reported_not_raised(model32, monkeypatch):
    def broken(model):
        raise RuntimeError("no kernel for this\nsecond line")
    monkeypatch.setitem(bench.OPTIMIZATION_ROWS, "broken", ("channels_last",))
    monkeypatch.setitem(optimize.OPTIMIZATIONS, "channels_last", broken)
    rows = bench.bench_optimizations(model32, NoiseSchedule.linear(20), 2, 2, IMAGE, repeats=1,
                                     skip={"compile": "off"}, log=lambda msg: None)
    by_name = {r["name"]: r for r in rows}
    assert by_name["broken"]["status"] == "failed: RuntimeError: no kernel for this"
    assert by_name["torch.compile"]["status"] == "skipped: off"
    assert by_name["inference mode"]["status"] == "ok"


def test_goals():
    res = {"settings": {"T": 1000},
           "samplers": [{"batch": 16, "sampler": "DDIM-50", "overhead": 1.01, "in_loop": 1.002},
                        {"batch": 16, "sampler": "DDPM-1000", "overhead": 1.05, "in_loop": None},
                        {"batch": 1, "sampler": "DDIM-50", "overhead": 2.0, "in_loop": 1.5}],
           "speedup": [{"batch": 16, "speedup": 19.5, "estimated": False, "at_equal_forward": 18.0}],
           "guidance": [{"batch": 16, "speedup": 1.2}],
           "optimizations": [{"name": "stack: a", "status": "ok", "batch": 16, "speedup_vs_eager": 4.0,
                              "max_abs_diff": 0.1}]}
    goals = bench.check_goals(res, torch.device("cpu"))
    assert [(g["value"], g["met"]) for g in goals] == [(1.01, True), (1.002, True), (1.05, False), (19.5, True),
                                                       (18.0, False), (1.2, False)]
    gpu = bench.check_goals(res, torch.device("cuda"))
    assert gpu[-1]["value"] == 4.0 and not gpu[-1]["met"]  # fast, but the samples moved by 0.1 > 2e-2


def test_speedup_row():
    ddim = {"batch": 16, "nfe": 50, "median_s": 3.0, "in_loop": 1.01}
    ddpm = {"nfe": 100, "median_s": 6.6, "in_loop": 1.0}  # a --quick stand-in for DDPM-1000
    row = bench.speedup_row(ddim, ddpm, 1000)
    assert row["ddpm1000_s"] == pytest.approx(66.0) and row["speedup"] == pytest.approx(22.0) and row["estimated"]
    assert row["at_equal_forward"] == pytest.approx(1000 / (50 * 1.01))
    assert bench.speedup_row({**ddim, "in_loop": None}, {**ddpm, "nfe": 1000}, 1000)["at_equal_forward"] is None


def test_load_bench_model_falls_back_to_random_init(monkeypatch):
    def missing(**kwargs):
        raise WeightsError("weights/unet_mnist.safetensors is missing")
    monkeypatch.setattr(bench, "load_pretrained", missing)
    model, schedule, source = bench.load_bench_model(torch.device("cpu"))
    assert source.startswith("random-init U-Net") and "is missing" in source
    shipped = json.loads((WEIGHTS_DIR / "unet_mnist.json").read_text())
    assert model.config == UNetConfig.from_dict(shipped["unet"]) and schedule.T == shipped["T"] == 1000


def test_random_init_model_follows_the_weights_metadata(tmp_path):
    """Without weights, bench builds the configuration and schedule that the metadata records, not a copy."""
    meta = {"unet": {**UNetConfig(**TINY).to_dict(), "mid_attention": True}, "schedule": "cosine", "T": 60}
    (tmp_path / "unet_mnist.json").write_text(json.dumps(meta))
    model, schedule, source = bench.load_bench_model(torch.device("cpu"), folder=tmp_path)
    assert source.startswith("random-init U-Net") and model.config == UNetConfig.from_dict(meta["unet"])
    assert model.config.mid_attention and schedule.T == 60
    torch.testing.assert_close(schedule.alphas_cumprod, NoiseSchedule.from_name("cosine", 60).alphas_cumprod)
    assert bench.shipped_metadata()["unet"] == json.loads((WEIGHTS_DIR / "unet_mnist.json").read_text())["unet"]


def test_missing_metadata_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="configuration"):
        bench.load_bench_model(torch.device("cpu"), folder=tmp_path)


def test_command_line(model32, monkeypatch, tmp_path, capsys):
    """`labsupport bench --quick` end to end, on the tiny model and a 20-step schedule."""
    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--quick", "--batch-sizes", "1,2", "--repeats", "1", "--out", str(tmp_path),
                              "--device", "cpu", "--threads", str(torch.get_num_threads())])
    assert args.batch_sizes == [1, 2] and args.quick
    monkeypatch.setattr(bench, "load_bench_model", lambda device: (model32, NoiseSchedule.linear(20), "tiny"))
    monkeypatch.setattr(bench, "run_benchmark", functools.partial(bench.run_benchmark, image_shape=IMAGE, opt_batch=2))
    args.func(args)
    out = capsys.readouterr().out
    assert "### Optimizations" in out and (tmp_path / "bench_cpu_quick.json").exists()
    res = json.loads((tmp_path / "bench_cpu_quick.json").read_text())
    assert [r["sampler"] for r in res["samplers"]] == ["DDIM-10", "DDIM-20", "DDPM-20"] * 2


def test_bench_sampler_on_any_sampler(model32):
    row = bench.bench_sampler("DDIM-4", DDIMSampler(model32, NoiseSchedule.linear(20)), 4, 2, IMAGE, repeats=2,
                              calls_around=2, num_steps=4, eta=0.5)
    assert row["n"] == 2 and row["nfe"] == 4 and row["overhead"] > 0
