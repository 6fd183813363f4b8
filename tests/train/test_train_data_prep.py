"""Data prep on a node with several processes: the first prepares, the others wait for it without a collective,
so a preparation longer than the process group's timeout (a 51K-row hub download) does not end the run."""

import json
import os
import subprocess
import sys

import pytest

from medix.testing.stub_server import free_port

SCRIPT = """
import json, os, sys, time
from pathlib import Path
import medix.train.trl_rows as dataset
from medix.train.config import load_train_config
from medix.train.trl_args import grpo_args
from medix.testing.tiny import tiny_text_lm

tmp = Path(sys.argv[1])
cfg = load_train_config(None, [f"data.train={tmp / 'd.jsonl'}", f"trainer.output_dir={tmp / 'out'}",
                               "trainer.ddp_timeout=4"])
grpo_args(cfg)  # the gloo process group, with the 4 s timeout
slow = dataset.load_rows
def load_rows(*args, **kwargs):
    if os.environ["LOCAL_RANK"] == "0":
        time.sleep(12)  # longer than the timeout: a slow download on the first process
    return slow(*args, **kwargs)
dataset.load_rows = load_rows
_, tokenizer = tiny_text_lm()
for source in (cfg.data.train, cfg.data.train):  # train, then a held-out set: two preparations in a row
    rows = dataset.prepare(source, cfg.data, tokenizer, False).dataset
(tmp / f"rank{os.environ['RANK']}.txt").write_text(str(len(rows)))
"""


@pytest.mark.slow
def test_a_slow_first_process_does_not_time_the_others_out(tmp_path):
    rows = [{"id": f"s{i}", "problem": f"Question {i}?", "solution": "Radial nerve"} for i in range(4)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prep.py").write_text(SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), str(tmp_path / "prep.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == ["4", "4"]  # both prepared every row
