"""labsupport.device.get_device: the one place that picks a device."""
import pytest
import torch

from labsupport.device import get_device


@pytest.fixture
def no_cuda(monkeypatch):
    """Pretend this machine has no CUDA, so the tests mean the same on a GPU machine."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_default_without_cuda_is_cpu(monkeypatch, no_cuda):
    monkeypatch.delenv("LABSUPPORT_DEVICE", raising=False)
    assert get_device() == torch.device("cpu")


def test_default_with_cuda_is_cuda(monkeypatch):
    monkeypatch.delenv("LABSUPPORT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


def test_environment_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LABSUPPORT_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("LABSUPPORT_DEVICE", "cuda:1")
    assert get_device() == torch.device("cuda", 1)


def test_argument_beats_environment(monkeypatch, no_cuda):
    monkeypatch.setenv("LABSUPPORT_DEVICE", "cuda")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_cuda_without_cuda_is_a_clear_error(monkeypatch, no_cuda, how):
    if how == "argument":
        monkeypatch.delenv("LABSUPPORT_DEVICE", raising=False)
        call = lambda: get_device("cuda:0")
    else:
        monkeypatch.setenv("LABSUPPORT_DEVICE", "cuda")
        call = get_device
    with pytest.raises(ValueError, match=r"CUDA is not available here; use 'cpu'"):
        call()
