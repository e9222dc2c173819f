"""bench/bench_suite.py counts the processes a run starts: its sitecustomize records each one,
a child spawned by multiprocessing is told apart, and one that ends without exit handlers is
counted with no CPU figure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench_suite

TWO_CHILDREN = """
import multiprocessing, os, sys

def clean():
    sum(range(10**6))

def abrupt():
    os._exit(0)

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    for target in (clean, abrupt):
        child = context.Process(target=target)
        child.start()
        child.join()
"""


def test_processes_are_counted_by_kind(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(bench_suite.RECORDER), "utf-8")
    script = tmp_path / "main.py"
    script.write_text(TWO_CHILDREN, "utf-8")
    log = tmp_path / "processes.log"
    env = {**os.environ, "PYTHONPATH": str(site), bench_suite.LOG_VARIABLE: str(log)}
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120)

    processes = bench_suite.read_processes(log)
    assert processes["spawned_by_multiprocessing"] == 2
    assert processes["spawned_without_exit_record"] == 1  # the one that called os._exit
    assert processes["without_exit_record"] == 1
    assert processes["with_vllm"] == 0 and processes["spawned_with_vllm"] == 0
    # the script, its two children and multiprocessing's resource tracker
    assert processes["started"] == 4
    assert processes["without_vllm"] == 3 and processes["without_vllm_cpu_s"] > 0
