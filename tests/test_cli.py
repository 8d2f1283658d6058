"""The `labsupport` command line: every documented subcommand is registered and parses its arguments."""
from __future__ import annotations

import subprocess
import sys

import pytest

from labsupport.cli import build_parser, main

COMMANDS = ["train", "train-classifier", "train-noisy-classifier", "train-autoencoder", "train-latent", "export",
            "evaluate", "evaluate-extra", "bench", "release", "workspace", "doctor", "grade"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_registered(command):
    parser = build_parser()
    extra = ["subs"] if command == "grade" else []
    args = parser.parse_args([command, *extra])
    assert args.command == command and callable(args.func)


def test_release_from_the_command_line(tmp_path, capsys):
    assert main(["release", "--out", str(tmp_path / "student")]) == 0
    assert len(list((tmp_path / "student").glob("*.ipynb"))) == 7
    assert "7 notebooks" in capsys.readouterr().out


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    missing = tmp_path / "nowhere"
    proc = subprocess.run([sys.executable, "-m", "labsupport", "release", "--source", str(missing), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and str(missing) in proc.stderr


def test_train_defaults_are_train_configs():
    """`labsupport train` takes its defaults from TrainConfig, so the two cannot drift apart."""
    import dataclasses

    from labsupport.cli import TRAIN_OPTIONS
    from labsupport.tools.train import TrainConfig
    args = build_parser().parse_args(["train"])
    defaults = TrainConfig()
    for name in TRAIN_OPTIONS:
        assert getattr(args, name) == getattr(defaults, name), name
    assert set(TRAIN_OPTIONS) <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert build_parser().parse_args(["train", "--lr", "1e-3", "--steps", "7"]).lr == 1e-3


def test_train_classifier_defaults_are_the_functions():
    import inspect

    from labsupport.tools.train import train_classifier
    args = build_parser().parse_args(["train-classifier"])
    params = inspect.signature(train_classifier).parameters
    assert (args.epochs, args.label_smoothing) == (params["epochs"].default, params["label_smoothing"].default)
