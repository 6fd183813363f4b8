"""`trainer.ddp_timeout` holds in a multi-process CPU run: a collective one process never joins fails after the
timeout, not after transformers' 30-minute default (which it silently used under use_cpu=True)."""

import os
import subprocess
import sys
import time

import pytest

from medix.testing.stub_server import free_port

SCRIPT = """
import sys, torch.distributed as dist
from medix.train.config import load_train_config
from medix.train.trl_args import grpo_args
cfg = load_train_config(None, ["data.train=x.jsonl", "trainer.output_dir=" + sys.argv[1], "trainer.ddp_timeout=5"])
args = grpo_args(cfg)
assert dist.is_initialized() and dist.get_world_size() == 2
if dist.get_rank() == 0:
    dist.barrier()  # rank 1 never comes
else:
    import time; time.sleep(40)
"""


@pytest.mark.slow
def test_ddp_timeout_holds_on_cpu(tmp_path):
    (tmp_path / "hang.py").write_text(SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(free_port()), str(tmp_path / "hang.py"), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Timed out" in done.stderr or "timed out" in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - start < 120  # 5 s timeout + start-up, far from the 1800 s default
