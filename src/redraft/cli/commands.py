"""The commands that run a job or a stage, evaluate, and sample: each loads its config and calls one function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from redraft.cli.common import ConfigOption, console, say, set_option
from redraft.errors import RedraftError

RunSetOption = set_option("sft.max_steps=200")
PretrainSetOption = set_option("train.max_steps=200")
SFTSetOption = set_option("train.max_steps=200")
RLSetOption = set_option("rl.iterations=50")
ScoreSetOption = set_option("score.stage1_iterations=30")
EvalSetOption = set_option("eval.num_problems=100")
GenerateSetOption = set_option("sampling.batch_size=64")
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Run name (sets run.name; default: the command's name, main for `redraft run`): outputs go to "
        "<run.output_dir>/<name>/.",
    ),
]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Delete an existing run folder of the same name first.")
]


def _load(stage: str, config: Path | None, overrides: list[str] | None, name: str | None = None, **extra: str):
    """The stage's validated config. Commands call this before importing torch and the trainers
    (several seconds), so that a mistyped key or a missing file is reported at once."""
    from redraft.config import load_config

    sets = list(overrides or [])
    if name:
        sets.append(f"run.name={name}")
    sets += [f"{key}={value}" for key, value in extra.items() if value is not None]
    return load_config(stage, config, sets)


def _train_stage(runner, cfg, resume: bool, overwrite: bool) -> None:
    """Run one training stage on its own: outputs, config and metrics in <output_dir>/<name>/."""
    from redraft.pipeline import run_in_folder

    say(f"[green]done[/green]: model at {run_in_folder(runner, cfg, resume, overwrite)['model_dir']}")


def run(
    config: ConfigOption = None,
    set_: RunSetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> report (runs/<name>/report.md).

    Example: redraft run --set rl.iterations=80 (outputs in runs/main/)
    """
    cfg = _load("run", config, set_, name)
    from redraft.pipeline import run_pipeline

    report = run_pipeline(cfg, resume=resume, overwrite=overwrite)
    say(f"[green]done[/green]: report at {report}")
    for path in sorted((report.parent / "eval").glob("*/eval.json")):
        result = json.loads(path.read_text())
        say(
            f"{path.parent.name}: greedy accuracy {100 * result['greedy_accuracy']:.1f}%, "
            f"pass@{result['k']} {100 * result['pass_at_k'][str(result['k'])]:.1f}%"
        )


def pretrain(
    config: ConfigOption = None,
    set_: PretrainSetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a tokenizer (unless one is given) and pretrain a causal LM on the task corpus.

    Example: redraft pretrain --set model.preset=small --set train.max_steps=300 (outputs in runs/pretrain/)
    """
    cfg = _load("pretrain", config, set_, name)
    from redraft.pipeline import run_pretrain

    _train_stage(run_pretrain, cfg, resume, overwrite)


def sft(
    config: ConfigOption = None,
    set_: SFTSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id to fine-tune (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Supervised fine-tuning with loss on completion tokens only (freezing and LoRA optional).

    Example: redraft sft --model runs/pretrain/model --set train.max_steps=200 (outputs in runs/sft/)
    """
    cfg = _load("sft", config, set_, name, **{"model.path": model})
    from redraft.pipeline import run_sft

    _train_stage(run_sft, cfg, resume, overwrite)


def rl(
    config: ConfigOption = None,
    set_: RLSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id of the starting policy (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """RL against the task's verifiable reward: rl.algorithm = grpo | rloo | reinforce_pp | ppo.

    Example: redraft rl --model runs/sft/model --set task.reward=math --set rl.iterations=50 (outputs in runs/rl/)
    """
    cfg = _load("rl", config, set_, name, **{"model.path": model})
    from redraft.pipeline import run_rl

    _train_stage(run_rl, cfg, resume, overwrite)


def score(
    config: ConfigOption = None,
    set_: ScoreSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="Single-attempt SFT checkpoint to start from (sets model.path).")
    ] = None,
    resume: ResumeOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """SCoRe self-correction: Pair-SFT on the model's own drafts -> Stage I -> Stage II, plus the baselines
    (prompting, Pair-SFT, STaR, single-turn RL, naive multi-turn RL, single-attempt control); writes report.md.

    Example: redraft score --model runs/sft/model --set score.stage1_iterations=30 (outputs in runs/score/)
    """
    cfg = _load("score", config, set_, name, **{"model.path": model})
    from redraft.score import run_score_job

    _, report = run_score_job(cfg, resume, overwrite)
    say(f"[green]done[/green]: report at {report}")


def score_seeds(
    runs: Annotated[
        list[Path], typer.Argument(help="Folders of `redraft score` runs (or main jobs' score/ folders), one per seed.")
    ],
    split: Annotated[str, typer.Option(help="Which evaluation to summarise: test, test_sampled_t1 or val.")] = "test",
    out: Annotated[Path | None, typer.Option(help="Also write the table to this Markdown file.")] = None,
) -> None:
    """Mean ± sd over seeds of every method's self-correction metrics, and each seed's Δ with its CI."""
    from redraft.score import seeds_table

    summaries = {}
    for run in runs:
        path = run / "score.json"
        if not path.is_file():
            raise RedraftError(f"{path}: not found (is {run} a finished `redraft score` run?)")
        summaries[str(run)] = json.loads(path.read_text())
    table = seeds_table(summaries, split)
    if out is not None:
        out.write_text(table)
    typer.echo(table)


def eval_(
    config: ConfigOption = None,
    set_: EvalSetOption = None,
    name: NameOption = None,
    model: Annotated[
        str | None, typer.Option(help="HF checkpoint folder or Hub id to evaluate (sets model.path).")
    ] = None,
    self_correct: Annotated[
        bool,
        typer.Option(
            "--self-correct",
            help="Two-attempt self-correction metrics instead "
            "(Acc@t1, Acc@t2, Δ, Δ^{i→c}, Δ^{c→i}); writes self_correction.json.",
        ),
    ] = False,
    first_temperature: Annotated[
        float | None,
        typer.Option(
            help="Self-correction: attempt-1 temperature (0 = greedy, the headline; later attempts are greedy)."
        ),
    ] = None,
) -> None:
    """Greedy accuracy and pass@k on the task's test split; writes eval.json and samples.jsonl.

    Example: redraft eval --model runs/rl/model --set eval.num_problems=100 (outputs in runs/eval/)
    """
    cfg = _load(
        "eval",
        config,
        set_,
        name,
        **{
            "model.path": model,
            "eval.self_correct": "true" if self_correct else None,
            "eval.first_temperature": first_temperature,
        },
    )
    from redraft.pipeline import run_eval

    if cfg.eval.self_correct:
        from redraft.evaluation.self_correction import run_self_correction_eval

        result = run_self_correction_eval(cfg, cfg.run.directory)
        console.print_json(json.dumps({"model": cfg.model.path, **result.summary()}))
        return
    result = run_eval(cfg, cfg.run.directory)
    console.print_json(json.dumps({"model": cfg.model.path, **result.summary(), "num_problems": result.num_problems}))


def generate(
    model: Annotated[str, typer.Option(help="HF checkpoint folder, or a Hub id in the local HF cache.")],
    prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="A prompt (repeatable).")] = None,
    prompts_file: Annotated[Path | None, typer.Option(help="A text file with one prompt per line.")] = None,
    config: ConfigOption = None,
    set_: GenerateSetOption = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy.")] = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    top_k: Annotated[int | None, typer.Option()] = None,
    max_new_tokens: Annotated[int | None, typer.Option()] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines with token ids and log-probs.")] = False,
) -> None:
    """Sample completions for prompts (batched, KV cache, temperature/top-p/top-k, stop strings).

    Example: redraft generate --model runs/rl/model -p "012+034=" --temperature 1 --seed 0
    """
    from redraft.models import load_model
    from redraft.rollout.sampler import generate as sample
    from redraft.text.tokenizer import load_tokenizer

    prompts = list(prompt or [])
    if prompts_file is not None:
        if not prompts_file.is_file():
            raise RedraftError(f"prompts file not found: {prompts_file}")
        prompts += [line for line in prompts_file.read_text().splitlines() if line.strip()]
    if not prompts:
        raise RedraftError("give at least one --prompt or a --prompts-file")
    sets = list(set_ or [])
    if stop:
        sets.append(f"sampling.stop={json.dumps(stop)}")
    cfg = _load(
        "generate",
        config,
        sets,
        **{
            "sampling.temperature": temperature,
            "sampling.top_p": top_p,
            "sampling.top_k": top_k,
            "sampling.max_new_tokens": max_new_tokens,
        },
    )
    out = sample(load_model(model, cfg.model.dtype), load_tokenizer(model), prompts, cfg.sampling, seed=seed)
    for i, text in enumerate(out.texts):
        if as_json:
            row = {
                "prompt": prompts[i],
                "completion": text,
                "token_ids": out.token_ids[i],
                "logprobs": out.logprobs[i],
                "finish_reason": out.finish_reasons[i],
            }
            print(json.dumps(row))
        else:
            print(f"{prompts[i]}{text}")
