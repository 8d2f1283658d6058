"""MNIST from IDX files, split the way the model card records (no download at test time).

The folder is $LABSUPPORT_DATA (CI and tests: ../shared/data/mnist), else ~/.cache/labsupport/mnist.
Splits:
    train   = train5k + t10k[0:8000] when only the 5k training sample is present,
              or the standard 60k training split when the full files are there
    heldout = t10k[8000:10000], never seen in training (metrics' reference statistics)
Images come back as float32 in [-1, 1], shape (N, 1, 28, 28); labels as int64.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["data_dir", "load_mnist", "read_idx", "MNISTNotFound", "HELDOUT_SLICE"]

HELDOUT_SLICE = slice(8000, 10000)


class MNISTNotFound(FileNotFoundError):
    pass


def data_dir() -> Path:
    return Path(os.environ.get("LABSUPPORT_DATA", Path.home() / ".cache" / "labsupport" / "mnist")).expanduser()


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims, then uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for sub in (folder, folder / "MNIST" / "raw"):  # torchvision's layout too
            if (sub / name).exists():
                return sub / name
    return None


def _pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    imgs, labels = _find(folder, f"{prefix}-images-idx3-ubyte"), _find(folder, f"{prefix}-labels-idx1-ubyte")
    if imgs is None or labels is None:
        return None
    return read_idx(imgs), read_idx(labels)


def _download(folder: Path) -> None:
    try:
        from torchvision.datasets import MNIST
        for train in (True, False):
            MNIST(str(folder), train=train, download=True)
    except Exception as err:  # offline, or no torchvision
        raise MNISTNotFound(
            f"MNIST was not found in {folder} and could not be downloaded ({type(err).__name__}: {err}). "
            "Set LABSUPPORT_DATA to a folder holding t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz and "
            "train-images/train5k-images files (in the course repo: export LABSUPPORT_DATA=../shared/data/mnist), "
            "or connect to the internet once so the package can download MNIST.") from err


def load_mnist(split: str = "train", folder: str | Path | None = None, *, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] of shape (N, 1, 28, 28), labels (N,)) for split "train" or "heldout"."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    folder = Path(folder) if folder is not None else data_dir()
    test = _pair(folder, "t10k")
    if test is None and download:
        _download(folder)
        test = _pair(folder, "t10k")
    if test is None:
        raise MNISTNotFound(f"no t10k-images/labels IDX files in {folder}; set LABSUPPORT_DATA to the MNIST folder")
    if split == "heldout":
        x, y = test[0][HELDOUT_SLICE], test[1][HELDOUT_SLICE]
    else:
        full = _pair(folder, "train")
        if full is not None:
            x, y = full
        else:
            small = _pair(folder, "train5k")
            if small is None:
                raise MNISTNotFound(f"no train or train5k IDX files in {folder}; set LABSUPPORT_DATA to the MNIST folder")
            x = np.concatenate([small[0], test[0][:HELDOUT_SLICE.start]])
            y = np.concatenate([small[1], test[1][:HELDOUT_SLICE.start]])
    images = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)
    return images, torch.from_numpy(y.astype(np.int64))
