"""labsupport.teaching.notebook: the seeded session, fast mode and `pick`, the timer, progress bars and `team`."""
from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch

from labsupport.device import get_device
from labsupport.grading.submission import MAX_TEAM, TEAM_FILE, split_team
from labsupport.teaching import notebook
from labsupport.teaching.notebook import fast_mode, pick, progress, setup, team, timer


# -- setup ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 123])
def test_setup_seeds_torch_and_says_what_it_chose(capsys, monkeypatch, seed):
    monkeypatch.delenv("LABSUPPORT_FAST", raising=False)
    torch.manual_seed(seed + 1)  # some other state first
    device = setup(seed)
    drawn = torch.rand(5)
    torch.manual_seed(seed)
    assert torch.equal(drawn, torch.rand(5))  # setup(seed) leaves torch exactly where manual_seed(seed) does
    assert device == get_device()
    assert capsys.readouterr().out == f"device: {device} · seed {seed} · fast mode off\n"


def test_setup_follows_the_device_override_and_fast_mode(capsys, monkeypatch):
    monkeypatch.setenv("LABSUPPORT_DEVICE", "cpu")
    monkeypatch.setenv("LABSUPPORT_FAST", "1")
    assert setup(7) == torch.device("cpu")
    assert capsys.readouterr().out == "device: cpu · seed 7 · fast mode on\n"


# -- fast mode and pick --------------------------------------------------------------------------
@pytest.mark.parametrize("value,fast", [("1", True), ("0", False), ("", False), ("true", False), ("yes", False)])
def test_fast_mode_only_for_1(monkeypatch, value, fast):
    monkeypatch.setenv("LABSUPPORT_FAST", value)
    assert fast_mode() is fast
    assert pick(1000, 10) == (10 if fast else 1000)


def test_pick_without_the_variable_is_the_default(monkeypatch):
    monkeypatch.delenv("LABSUPPORT_FAST", raising=False)
    assert not fast_mode()
    default, quick = {"steps": 50}, {"steps": 5}
    assert pick(default, quick) is default
    monkeypatch.setenv("LABSUPPORT_FAST", "1")
    assert pick(default, quick) is quick


# -- timer ---------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self, readings, log):
        self.readings, self.log = list(readings), log

    def __call__(self):
        self.log.append("clock")
        return self.readings.pop(0)


def test_timer_is_exit_minus_enter_synchronised_before_each_reading(monkeypatch):
    log = []
    monkeypatch.setattr(notebook, "time", SimpleNamespace(perf_counter=FakeClock([10.0, 12.5], log)))
    monkeypatch.setattr(notebook, "synchronize", lambda *a: log.append("sync"))
    with timer() as tm:
        log.append("work")
        assert tm.seconds == 0.0  # read only when the block ends
    assert tm.seconds == 2.5
    assert log == ["sync", "clock", "work", "sync", "clock"]  # GPU work finished before each clock reading


def test_timer_measures_a_known_sleep_and_longer_work_takes_longer():
    with timer() as short:
        time.sleep(0.01)
    with timer() as long:
        time.sleep(0.3)
    assert math.isfinite(short.seconds) and math.isfinite(long.seconds)
    assert 0.01 <= short.seconds < long.seconds
    assert 0.3 <= long.seconds < 0.3 + 5.0  # a busy machine may add delay, never remove it


def test_timer_still_times_a_block_that_raises():
    with pytest.raises(KeyError):
        with timer() as tm:
            time.sleep(0.02)
            raise KeyError("inside")
    assert tm.seconds >= 0.02


# -- progress ------------------------------------------------------------------------------------
@pytest.mark.parametrize("env,disabled", [("0", True), ("1", False)])
def test_progress_yields_everything_and_follows_the_switch(monkeypatch, env, disabled):
    monkeypatch.setenv("LABSUPPORT_PROGRESS", env)
    bar = progress(iter(range(4)), "count", total=4)
    assert bar.disable is disabled and bar.total == 4
    assert list(bar) == [0, 1, 2, 3]


# -- team ----------------------------------------------------------------------------------------
@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_team_writes_what_the_grader_reads(in_tmp, capsys):
    team("alice", "bob.smith@uni.edu")
    text = (in_tmp / TEAM_FILE).read_text(encoding="utf-8")
    assert text.startswith("#")  # a comment line the grader skips
    assert split_team(text) == ["alice", "bob.smith@uni.edu"]
    out = capsys.readouterr().out
    assert f"team: alice, bob.smith@uni.edu, recorded in {in_tmp / TEAM_FILE}" in out
    assert f"Submit {TEAM_FILE}" in out and "before" not in out


def test_team_splits_like_the_grader_and_says_what_it_replaced(in_tmp, capsys):
    team("alice")
    capsys.readouterr()
    team("carol, dave;erin")  # one string, separated as team.txt would be
    assert split_team((in_tmp / TEAM_FILE).read_text(encoding="utf-8")) == ["carol", "dave", "erin"]
    assert "(it named alice before)" in capsys.readouterr().out
    team("carol", "dave", "erin")  # the same team again: nothing to report
    assert "before" not in capsys.readouterr().out


@pytest.mark.parametrize("ids,error,message", [
    ((), ValueError, r"team\(\) needs the members' student ids, yourself included"),
    (("alice", 7), TypeError, r"team\(\) takes student ids as strings, got 7"),
    (("alice#2",), ValueError, r"'alice#2' is not a student id: ids have no '#'"),
    (("al!ce",), ValueError, r"'al!ce' is not a student id: ids use letters, digits"),
    ((".alice",), ValueError, r"'.alice' is not a student id"),
    (("alice", "bob", "alice"), ValueError, r"'alice' is listed twice; name each member once"),
    (("alice", "bob alice"), ValueError, r"'alice' is listed twice"),
    (tuple(f"s{i}" for i in range(MAX_TEAM + 1)), ValueError, rf"a Lab 5 team has at most {MAX_TEAM} members, "
                                                              rf"got {MAX_TEAM + 1}"),
    (("  ",), ValueError, r"team\(\) needs the members' student ids"),
])
def test_team_refuses_what_the_grader_could_not_read(in_tmp, ids, error, message):
    with pytest.raises(error, match=message):
        team(*ids)
    assert not (in_tmp / TEAM_FILE).exists()  # nothing written


def test_team_of_the_largest_size_is_accepted(in_tmp):
    ids = [f"s{i}" for i in range(MAX_TEAM)]
    team(*ids)
    assert split_team((in_tmp / TEAM_FILE).read_text(encoding="utf-8")) == ids
