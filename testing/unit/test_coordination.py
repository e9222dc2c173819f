"""How xdist workers share devices: never two engines on one GPU, one engine on the CPU."""

from __future__ import annotations

import os

import pytest

from pytest_structeval.coordination import Worker, pin_worker_to_gpu, shard_count, visible_gpus


def test_without_xdist_one_worker_owns_everything():
    assert Worker.from_workerinput(None) == Worker(0, 1)
    assert Worker.from_workerinput({"workerid": "gw3", "workercount": 4}) == Worker(3, 4)


@pytest.mark.parametrize(
    ("worker_count", "gpus", "shards"),
    [
        (1, ["0", "1"], 1),
        (2, [], 1),
        (2, ["0"], 1),
        (2, ["0", "1"], 2),
        (4, ["0", "1"], 2),
        (2, ["0", "1", "2"], 2),
    ],
)
def test_one_shard_per_device_in_use(worker_count, gpus, shards):
    assert shard_count(Worker(0, worker_count), gpus) == shards


def test_shard_owners_get_their_own_gpu_from_the_callers_list(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    gpus = visible_gpus()
    assert gpus == ["4", "6"]
    assert pin_worker_to_gpu(Worker(1, 2), gpus) == "6"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"


def test_workers_beyond_the_devices_and_single_device_runs_are_not_pinned(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert pin_worker_to_gpu(Worker(2, 3), ["0", "1"]) is None
    assert pin_worker_to_gpu(Worker(0, 2), ["0"]) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_hidden_devices_mean_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []
