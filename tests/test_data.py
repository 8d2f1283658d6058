"""labsupport.tools.data: IDX parsing, the course's train/heldout split, and clear errors without data.

Small synthetic IDX files are written here byte by byte from the format's definition (two zero bytes,
type 0x08 = unsigned byte, number of dims, big-endian int32 sizes, then the data), so the parser is
checked against the format and not against itself. No test touches the network.
"""
import gzip
import struct
import sys
import types

import numpy as np
import pytest
import torch

from conftest import data_folder
from labsupport.tools import data
from labsupport.tools.data import MNISTNotFound, load_mnist, read_idx


def write_idx(path, array: np.ndarray, gz: bool = False, cut: int = 0):
    raw = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">i", n) for n in array.shape)
    raw += array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - cut]
    (gzip.open if gz else open)(path, "wb").write(raw)


def synthetic_folder(folder, n_test=10_000, n_small=5_000, full_train=0, gz=True, sub=""):
    """t10k: image i is filled with i % 256, label i % 10; train5k / train: filled with 200 / 100."""
    d = folder / sub
    d.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    idx = np.arange(n_test)
    write_idx(d / f"t10k-images-idx3-ubyte{ext}", np.broadcast_to((idx % 256)[:, None, None], (n_test, 2, 2)), gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{ext}", idx % 10, gz)
    if n_small:
        write_idx(d / f"train5k-images-idx3-ubyte{ext}", np.full((n_small, 2, 2), 200), gz)
        write_idx(d / f"train5k-labels-idx1-ubyte{ext}", np.full(n_small, 3), gz)
    if full_train:
        write_idx(d / f"train-images-idx3-ubyte{ext}", np.full((full_train, 2, 2), 100), gz)
        write_idx(d / f"train-labels-idx1-ubyte{ext}", np.full(full_train, 7), gz)
    return folder


# ---------------------------------------------------------------------------------------------
# The course's MNIST files
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_dir():
    folder = data_folder()
    if folder is None:
        pytest.skip("no MNIST folder: set LABSUPPORT_DATA (in the course repo: ../shared/data/mnist)")
    return folder


def test_reads_the_course_files(mnist_dir, monkeypatch):
    monkeypatch.setenv("LABSUPPORT_DATA", str(mnist_dir))
    x, y = load_mnist("train", download=False)
    xh, yh = load_mnist("heldout", download=False)
    assert x.shape == (13_000, 1, 28, 28) and y.shape == (13_000,)
    assert xh.shape == (2_000, 1, 28, 28) and yh.shape == (2_000,)
    for images, labels in ((x, y), (xh, yh)):
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.min().item() == -1.0 and images.max().item() == 1.0
        assert set(labels.unique().tolist()) == set(range(10))


def test_heldout_is_the_last_2000_test_images(mnist_dir):
    """Parse t10k by hand (16-byte header for images, 8 for labels) and compare."""
    raw_x = np.frombuffer(gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz").read()[16:], np.uint8)
    raw_y = np.frombuffer(gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
    xh, yh = load_mnist("heldout", folder=mnist_dir, download=False)
    expected = raw_x.reshape(10_000, 28, 28)[8000:].astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(xh[:, 0].numpy(), expected, atol=1e-6)
    assert yh.tolist() == raw_y[8000:].tolist()


# ---------------------------------------------------------------------------------------------
# Synthetic folders
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_against_the_format(tmp_path, gz):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, arr, gz)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert np.array_equal(out, arr)


def test_split_definition(tmp_path):
    folder = synthetic_folder(tmp_path)
    x, y = load_mnist("train", folder=folder, download=False)
    assert x.shape == (13_000, 1, 2, 2)
    # first the 5k training sample, then t10k[0:8000]
    assert bool((x[:5000] == 200 / 127.5 - 1).all()) and bool((y[:5000] == 3).all())
    idx = torch.arange(8000)
    torch.testing.assert_close(x[5000:, 0, 0, 0], ((idx % 256).float() / 127.5 - 1))
    assert torch.equal(y[5000:], idx % 10)
    xh, yh = load_mnist("heldout", folder=folder, download=False)
    idx = torch.arange(8000, 10_000)
    torch.testing.assert_close(xh[:, 0, 1, 1], ((idx % 256).float() / 127.5 - 1))
    assert torch.equal(yh, idx % 10)
    assert xh.min().item() >= -1 and xh.max().item() <= 1


def test_full_training_files_win(tmp_path):
    folder = synthetic_folder(tmp_path, n_small=0, full_train=60, gz=False)
    x, y = load_mnist("train", folder=folder, download=False)
    assert x.shape == (60, 1, 2, 2) and bool((y == 7).all())


def test_torchvision_layout(tmp_path):
    folder = synthetic_folder(tmp_path, sub="MNIST/raw")
    assert load_mnist("heldout", folder=folder, download=False)[0].shape == (2000, 1, 2, 2)


def test_folder_comes_from_environment(tmp_path, monkeypatch):
    synthetic_folder(tmp_path)
    monkeypatch.setenv("LABSUPPORT_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    assert load_mnist("heldout", download=False)[0].shape[0] == 2000


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def test_missing_files_without_download(tmp_path):
    with pytest.raises(MNISTNotFound, match="set LABSUPPORT_DATA"):
        load_mnist("train", folder=tmp_path, download=False)
    assert issubclass(MNISTNotFound, FileNotFoundError)


def test_missing_train_files(tmp_path):
    folder = synthetic_folder(tmp_path, n_small=0)
    with pytest.raises(MNISTNotFound, match="no train or train5k IDX files"):
        load_mnist("train", folder=folder, download=False)


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
    """A torchvision stand-in whose download fails as it would offline: no network is touched."""
    calls = []

    def offline_mnist(root, train=True, download=False):
        calls.append(root)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    fake_tv = types.ModuleType("torchvision")
    fake_ds = types.ModuleType("torchvision.datasets")
    fake_ds.MNIST = offline_mnist
    fake_tv.datasets = fake_ds
    monkeypatch.setitem(sys.modules, "torchvision", fake_tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_ds)
    with pytest.raises(MNISTNotFound) as info:
        load_mnist("heldout", folder=tmp_path, download=True)
    msg = str(info.value)
    assert calls == [str(tmp_path)]
    assert "could not be downloaded" in msg and "LABSUPPORT_DATA" in msg and str(tmp_path) in msg


def test_truncated_file(tmp_path):
    path = tmp_path / "t.idx"
    write_idx(path, np.zeros((3, 4, 4)), cut=5)
    with pytest.raises(ValueError, match=r"truncated: expected 48 values, found 43"):
        read_idx(path)
    folder = synthetic_folder(tmp_path / "cut")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 2, 2)), gz=True, cut=100)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz is truncated"):
        load_mnist("heldout", folder=folder, download=False)


@pytest.mark.parametrize("head", [b"", b"\x00\x00", b"\x00\x00\x0d\x01", b"PK\x03\x04"])
def test_not_an_idx_file(tmp_path, head):
    path = tmp_path / "bad.idx"
    path.write_bytes(head + b"\x00" * 8)
    with pytest.raises(ValueError, match="bad magic number"):
        read_idx(path)


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'heldout'"):
        load_mnist("test", folder=tmp_path, download=False)
