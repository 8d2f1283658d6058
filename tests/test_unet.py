"""labsupport.models.unet: shapes, conditioning, dtype/device following, timestep handling, bad inputs."""
import math

import pytest
import torch

from conftest import TINY
from labsupport.models.unet import UNet, UNetConfig, timestep_embedding


def x_of(shape=(2, 1, 8, 8), dtype=torch.float64, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (1, 1, 28, 28), (3, 1, 12, 16)])
def test_output_shape_equals_input_shape(tiny_model, shape):
    with torch.no_grad():
        assert tiny_model(x_of(shape), 10).shape == shape


def test_three_levels_with_attention_shape():
    torch.manual_seed(0)
    model = UNet(base_channels=8, channel_mults=(1, 2, 2), mid_attention=True).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28), 5).shape == (2, 1, 28, 28)


def test_y_none_is_the_null_class(tiny_model):
    x = x_of()
    null = torch.full((2,), tiny_model.null_class)
    assert tiny_model.null_class == tiny_model.config.num_classes == 10
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(x, 7), tiny_model(x, 7, null), rtol=0, atol=0)
        # and the label does reach the output (otherwise the check above proves nothing)
        assert not torch.allclose(tiny_model(x, 7), tiny_model(x, 7, torch.tensor([3, 3])))


def test_follows_dtype():
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).eval()
    with torch.no_grad():
        assert model(x_of(dtype=torch.float32), 3).dtype == torch.float32
        model = model.double()
        out = model(x_of(dtype=torch.float64), 3)
    assert out.dtype == torch.float64


@pytest.mark.parametrize("device", ["meta", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_follows_device(device):
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY)).to(device).eval()
    x = torch.randn(2, 1, 8, 8, device=device)
    with torch.no_grad():
        out = model(x, 5, torch.tensor([1, 2], device=device))
        out_t = model(x, torch.tensor([5, 9], device=device))
    assert out.device.type == device and out_t.device.type == device
    assert out.shape == x.shape


def test_t_int_and_tensor_agree(tiny_model):
    x = x_of()
    with torch.no_grad():
        ref = tiny_model(x, 250)
        for t in (torch.tensor(250), torch.tensor([250]), torch.tensor([250, 250])):
            torch.testing.assert_close(tiny_model(x, t), ref, rtol=0, atol=0)
        assert not torch.allclose(tiny_model(x, 251), ref)


def test_samples_in_a_batch_do_not_interact(tiny_model):
    """Row b of a batched forward equals the forward of row b alone (GroupNorm, not BatchNorm)."""
    x = x_of((3, 1, 8, 8))
    t = torch.tensor([0, 400, 999])
    y = torch.tensor([1, 10, 4])
    with torch.no_grad():
        batched = tiny_model(x, t, y)
        for b in range(3):
            torch.testing.assert_close(batched[b:b + 1], tiny_model(x[b:b + 1], t[b:b + 1], y[b:b + 1]),
                                       rtol=1e-10, atol=1e-12)


def test_timestep_embedding_formula():
    t = torch.tensor([0, 1, 37, 999])
    dim = 8
    emb = timestep_embedding(t, dim)
    assert emb.shape == (4, dim)
    for i, ti in enumerate(t.tolist()):
        for k in range(dim // 2):
            freq = math.exp(-math.log(10_000) * k / (dim // 2))
            assert emb[i, k].item() == pytest.approx(math.cos(ti * freq), abs=1e-4)
            assert emb[i, dim // 2 + k].item() == pytest.approx(math.sin(ti * freq), abs=1e-4)


def test_config_round_trip():
    cfg = UNetConfig(**TINY)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert UNetConfig.from_dict({**cfg.to_dict(), "channel_mults": [1, 2]}).channel_mults == (1, 2)


@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 3, 8, 8), (1, 2, 1, 8, 8)])
def test_bad_x_shape_names_x_t(tiny_model, shape):
    with pytest.raises(ValueError, match="x_t must have shape"):
        tiny_model(torch.zeros(shape, dtype=torch.float64), 1)


def test_spatial_size_must_divide(tiny_model):
    with pytest.raises(ValueError, match="x_t"):
        tiny_model(torch.zeros(1, 1, 9, 9, dtype=torch.float64), 1)


def test_t_of_wrong_length_names_t(tiny_model):
    with pytest.raises(ValueError, match="t must"):
        tiny_model(x_of(), torch.tensor([1, 2, 3]))


def test_y_of_wrong_length_names_y(tiny_model):
    with pytest.raises(ValueError, match="y must"):
        tiny_model(x_of(), 5, torch.tensor([1, 2, 3]))
