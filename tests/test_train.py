"""Training: two steps on a tiny config, then resuming reproduces an uninterrupted run."""
import torch

from labsupport.tools.train import TrainConfig, train_unet
from labsupport.models.unet import UNetConfig

TINY = UNetConfig(base_channels=8, channel_mults=(1, 2), num_classes=10).to_dict()


def _state(path):
    return torch.load(path, weights_only=False)


def test_two_steps_then_resume_equals_four_straight(tmp_path):
    cpu = torch.device("cpu")
    straight = train_unet(tmp_path / "a", TrainConfig(steps=4, batch_size=4, ckpt_every=2, unet=TINY), device=cpu,
                          progress=False)
    # stop after 2 steps (as an interrupted run would), then resume to 4
    train_unet(tmp_path / "b", TrainConfig(steps=2, batch_size=4, ckpt_every=2, unet=TINY), device=cpu, progress=False)
    resumed = train_unet(tmp_path / "b", TrainConfig(steps=4, batch_size=4, ckpt_every=2, unet=TINY), device=cpu,
                         progress=False)
    a, b = _state(straight), _state(resumed)
    assert a["state"]["step"] == b["state"]["step"] == 4
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    cpu = torch.device("cpu")
    cfg = TrainConfig(steps=1, batch_size=4, ckpt_every=1, unet=TINY)
    one = _state(train_unet(tmp_path / "one", cfg, device=cpu, progress=False))
    again = _state(train_unet(tmp_path / "again", cfg, device=cpu, progress=False))
    other = _state(train_unet(tmp_path / "other", TrainConfig(steps=1, batch_size=4, seed=1, unet=TINY),
                              device=cpu, progress=False))
    assert all(torch.equal(one["model"][k], again["model"][k]) for k in one["model"])
    assert any(not torch.equal(one["model"][k], other["model"][k]) for k in one["model"])


def test_init_from_a_shipped_model_starts_at_its_weights(tmp_path):
    """--init-from: the run starts at the shipped weights (model and EMA), in the shipped architecture."""
    import labsupport as lab
    shipped, _ = lab.load_pretrained(device="cpu", fast=False)
    cfg = TrainConfig(steps=1, batch_size=2, warmup=1, lr=1e-4, ckpt_every=1, init_from="unet_mnist", unet=TINY)
    ck = _state(train_unet(tmp_path / "v2", cfg, device=torch.device("cpu"), progress=False))
    assert ck["config"]["unet"] == shipped.config.to_dict() != TINY
    ref = shipped.state_dict()
    # one step of EMA 0.999 moves the EMA by 0.1% of one AdamW step (at most lr = 1e-4 per weight)
    assert max((ck["ema"][k] - ref[k]).abs().max().item() for k in ref) < 1e-6
    assert 0 < max((ck["model"][k] - ref[k]).abs().max().item() for k in ref) <= 1.5e-4
