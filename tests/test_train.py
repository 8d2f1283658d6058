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
