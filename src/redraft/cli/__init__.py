"""The `redraft` command line: each command loads a stage config and calls one function."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from redraft.cli.commands import eval_, generate, pretrain, rl, run, score, score_seeds, sft
from redraft.cli.config_commands import CONFIGS, config_app, config_reference, load_named_config
from redraft.errors import RedraftError
from redraft.feedback.cli import feedback_app
from redraft.rlhf.cli import dpo_app, rlhf, rm_app

# the config commands' helpers stay importable from the CLI itself, where their callers look for them
__all__ = ["CONFIGS", "app", "config_reference", "load_named_config", "main"]

app = typer.Typer(
    help="redraft: train language models with reinforcement learning — pretraining, SFT, RL (GRPO, RLOO, "
    "REINFORCE++, PPO) on verifiable rewards, evaluation and reports. Every command reads a YAML config "
    "(built-in defaults when --config is omitted) and accepts --set section.key=value overrides.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_app, name="config")
app.add_typer(feedback_app, name="feedback")
app.add_typer(rm_app, name="rm")
app.add_typer(dpo_app, name="dpo")
# `redraft --help` lists the commands in this order
app.command("rlhf")(rlhf)
for command in (run, pretrain, sft, rl, score):
    app.command()(command)
app.command("score-seeds")(score_seeds)
app.command("eval")(eval_)
app.command()(generate)


def _quiet_libraries() -> None:
    """Keep library chatter (per-save progress bars, tied-weight notices) out of our output."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.ERROR)


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _print_interrupted() -> None:
    Console(stderr=True).print("interrupted; rerun the same command with --resume to continue from the last checkpoint")


def main() -> None:
    _quiet_libraries()
    try:
        app()
    except SystemExit as exit_:
        if exit_.code in (0, None) and "torch.distributed" in sys.modules:  # typer exits so on success too
            from redraft.distributed import end_processes

            end_processes()
        if exit_.code == INTERRUPTED:  # typer turns Ctrl-C into this exit before our handler below sees it
            _print_interrupted()
        raise
    except RedraftError as exc:
        from rich.markup import escape

        # escaped: a message's own brackets (pip install 'redraft[wandb]') are text, not markup
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _print_interrupted()
        sys.exit(INTERRUPTED)
