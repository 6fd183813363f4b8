"""The `medix` command: thin Typer commands over the public API, one module per area.

    medix reward score --input examples/responses.jsonl --output scored.jsonl
    medix judge serve --model smollm2-135m --backend llamacpp
    medix eval run --model smollm2-135m --sample --protocol medix

cli/infer.py (infer, ui), cli/train.py (train, merge-lora, demo), cli/ablate.py (ablate), cli/reward.py (reward score),
cli/judge.py (judge serve, judge audit), cli/eval.py (eval run / list / submit / compare / contamination), cli/review.py
(review create / serve / report / backup), cli/common.py (the console, progress bars, given flags). A command
parses its flags, calls one public function and prints; merging flags with a YAML file lives in the config
modules (`EvalConfig.from_sources`, `JudgeConfig.from_sources`, `load_reward_config`). Exit codes: 0 done, 1 done
with failures (named), 2 bad input or setup, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from rich.markup import escape

from medix.cli import eval as eval_commands
from medix.cli import ablate, infer, judge, review, reward, train
from medix.cli.common import SafeRichHandler, console
from medix.errors import MedixError

app = typer.Typer(help="MediX-R1: open-ended medical RL — composite reward, LLM judge. Research use only.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(infer.app)  # infer, ui: top-level commands
app.add_typer(train.app)  # train, merge-lora, demo: top-level commands
app.add_typer(ablate.app)  # ablate (and its arm / score / report actions)
app.add_typer(reward.app, name="reward")
app.add_typer(judge.app, name="judge")
app.add_typer(eval_commands.app, name="eval")
app.add_typer(review.app, name="review")


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info-level logs.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[SafeRichHandler(console=console, show_path=False)])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:  # libraries' deprecation notices are for developers (-v shows them), not in user output
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main() -> None:
    """The console script: a MedixError or an OSError is one line on stderr (exit 2), Ctrl-C exits 130."""
    try:
        app()
    except MedixError as err:
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except OSError as err:  # e.g. the disk filled up while writing: one line naming the file, no traceback
        console.print(f"[bold red]error:[/bold red] {escape(err.strerror or str(err))}"
                      + (f": {escape(str(err.filename))}" if err.filename else ""), highlight=False)
        sys.exit(2)
