"""RL step throughput: redraft's GRPO/PPO vs TRL's `GRPOTrainer`/`PPOTrainer` on the same model and task.

Prints JSON. Every side runs in its own subprocess (so each one's peak RSS is its own) from the same
checkpoint (``--model``, the main job's SFT model by default) on the main job's prompts with the same
1.0/0.0 checker reward. A trained start matters: from a random model every reward is 0, every GRPO
advantage 0, and redraft's update, which leaves out rows without gradient, would have nothing to train.
Rounds interleave the sides (the one going first alternating), and the speed-up is the median of the
per-round ratios, with its min and max: machine speed drifts by ±15-25% between minutes on a shared VM. TRL lives in a
separate virtual environment (see bench/README.md):

    python -m venv --system-site-packages bench/.venv-trl
    bench/.venv-trl/bin/pip install -c constraints-cpu.txt trl==1.16.0
    bench/.venv-trl/bin/pip install --no-deps -c constraints-cpu.txt --target bench/.venv-trl/trl-1.12.0 trl==1.12.0

TRL 1.13+ no longer ships `PPOTrainer` (1.0-1.12 had it under `trl.experimental.ppo`), so the PPO
side imports TRL 1.12.0 from the `--target` folder above (put first on PYTHONPATH); GRPO uses 1.16.0.

TRL runs with gradient checkpointing off (its default is on; redraft does not checkpoint), so both sides
do the same FLOPs; --trl-default-gc adds a run of TRL's default for reference.

Usage: python bench/rl_step.py [--model runs/main/sft/model] [--steps 3] [--warmup 1] [--prompts 64] [--samples 8]
       [--new-tokens 8] [--threads 2] [--ppo-kl 0.05] [--rounds 5] [--only grpo|ppo] [--trl-default-gc]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
TRL_PYTHON = BENCH / ".venv-trl" / "bin" / "python"
TRL_PPO_PATH = BENCH / ".venv-trl" / "trl-1.12.0"
MARK = "RL_STEP_RESULT "


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def answer_lookup(task, tokenizer) -> dict[tuple[int, ...], str]:
    """Prompt token ids -> expected answer, for the TRL reward callables."""
    from redraft.text.tokenizer import encode_prompts

    prompts = [task.prompt(e) for e in task.train]
    return {tuple(ids): e.answer for ids, e in zip(encode_prompts(tokenizer, prompts), task.train)}


# --------------------------------------------------------------------------------------------
# Workers: each runs one side and prints one MARK-prefixed JSON line.


def worker_ours(args) -> dict:
    from common import main_job_task

    from redraft.config import LoggingSection, RLSection
    from redraft.text.tokenizer import load_tokenizer
    from redraft.training.logging import MetricsLog
    from redraft.training.rl import train_rl

    task = main_job_task()
    tokenizer = load_tokenizer(args.model_dir)
    algorithm = args.worker.split("-")[1]
    cfg = RLSection(
        algorithm=algorithm,
        iterations=args.warmup + args.steps,
        prompts_per_iteration=args.prompts,
        samples_per_prompt=args.samples,
        max_new_tokens=args.new_tokens,
        temperature=1.0,
        epochs=1,
        minibatch_size=args.prompts * args.samples,
        **({"micro_batch_size": args.micro_batch} if args.micro_batch else {}),
        kl_coef=args.ppo_kl if algorithm == "ppo" else 0.0,
        kl_estimator="k3",
        eval_problems=0,
        save_every=10**6,
        log_every=1,
    )
    with tempfile.TemporaryDirectory() as out:
        log = MetricsLog(Path(out) / "metrics.jsonl")
        train_rl(
            model_path=args.model_dir,
            tokenizer=tokenizer,
            task=task,
            cfg=cfg,
            out_dir=out,
            seed=0,
            log=log,
            logging=LoggingSection(progress=False),
        )
        rows = [r for r in log.read("rl")][args.warmup :]
    prompt_tokens = statistics.fmean(len(ids) for ids in answer_lookup(task, tokenizer))
    return {
        "step_s": [r["iteration_s"] for r in rows],
        "generate_s": [r["generate_s"] for r in rows],
        "logprob_s": [r["logprob_s"] for r in rows],
        "update_s": [r["update_s"] for r in rows],
        "completion_tokens": statistics.fmean(r["response_length"] for r in rows),
        "prompt_tokens": prompt_tokens,
        "reward": statistics.fmean(r["reward"] for r in rows),
        "frac_reward_zero_std": statistics.fmean(r.get("frac_reward_zero_std", 0.0) for r in rows),
        "scores_reference": "kl" in rows[0],  # train_rl logs KL to the reference only when it scores one
    }


class _StepTimer:
    """A TrainerCallback (built lazily) timing each optimizer step, generation included."""

    @staticmethod
    def make():
        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def __init__(self):
                self.mark = None
                self.steps: list[float] = []

            def on_train_begin(self, args, state, control, **kw):
                self.mark = time.perf_counter()

            def on_step_begin(self, args, state, control, **kw):
                self.mark = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                now = time.perf_counter()
                self.steps.append(now - self.mark)
                self.mark = now  # PPOTrainer has no on_step_begin: steps run end to end

        return Timer()


def trl_common(args) -> dict:
    # TRL defaults gradient checkpointing on (recomputing the forward in the backward to save memory); redraft
    # does not checkpoint, so the equivalent config turns it off. --trl-default-gc also runs TRL's default.
    return dict(batch_rows=args.prompts * args.samples, lr=1e-4, seed=0, gradient_checkpointing=bool(args.gc))


def worker_trl_grpo(args) -> dict:
    import trl
    from common import main_job_task, train_trl_grpo
    from datasets import Dataset
    from transformers import AutoTokenizer

    from redraft.tasks.base import answers_match, extract_answer

    task = main_job_task()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    data = Dataset.from_dict({"prompt": [task.prompt(e) for e in task.train], "answer": [e.answer for e in task.train]})
    rewards: list[float] = []
    lengths: list[float] = []

    def checker(prompts, completions, answer, completion_ids=None, **kw):
        scores = [
            float(answers_match(extract_answer(c, task.match), a, task.match)) for c, a in zip(completions, answer)
        ]
        rewards.append(sum(scores) / len(scores))
        if completion_ids is not None:
            lengths.append(sum(len(ids) for ids in completion_ids) / len(completion_ids))
        return scores

    timer = _StepTimer.make()
    train_trl_grpo(
        args.model_dir,
        checker,
        data,
        tokenizer,
        timer,
        trl_common(args),
        max_steps=args.warmup + args.steps,
        num_generations=args.samples,
        max_completion_length=args.new_tokens,
    )
    prompt_tokens = statistics.fmean(len(ids) for ids in answer_lookup(task, tokenizer))
    return {
        "trl_version": trl.__version__,
        "step_s": timer.steps[args.warmup :],
        "completion_tokens": statistics.fmean(lengths[args.warmup :]) if lengths else None,
        "prompt_tokens": prompt_tokens,
        "reward": statistics.fmean(rewards[args.warmup :]),
    }


def worker_trl_ppo(args) -> dict:
    import trl
    from common import main_job_task, trl_settings
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    try:
        from trl.experimental.ppo import PPOConfig, PPOTrainer
    except ImportError:
        from trl import PPOConfig, PPOTrainer  # type: ignore[no-redef]

    from redraft.tasks.base import answers_match, extract_answer

    task = main_job_task()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, padding_side="left")
    lookup = answer_lookup(task, tokenizer)
    eos = tokenizer.eos_token_id
    rewards: list[float] = []
    lengths: list[float] = []

    class Checker(torch.nn.Module):
        """Stands in for the reward model's body: the task's 1.0/0.0 checker as its 'hidden state'."""

        def forward(self, input_ids, attention_mask, **kw):
            out = torch.zeros(*input_ids.shape, 1)
            gen = []
            for row, (ids, keep) in enumerate(zip(input_ids.tolist(), attention_mask.tolist())):
                ids = [t for t, k in zip(ids, keep) if k]
                cut = next(n for n in range(1, len(ids) + 1) if tuple(ids[:n]) in lookup)
                completion = ids[cut:]
                gen.append(len(completion))
                text = tokenizer.decode([t for t in completion if t != eos], skip_special_tokens=True)
                out[row] = float(answers_match(extract_answer(text, task.match), lookup[tuple(ids[:cut])], task.match))
            rewards.append(float(out[:, 0].mean()))
            lengths.append(sum(gen) / len(gen))

            class Output:
                hidden_states = (out,)

            return Output()

    class CheckerReward(torch.nn.Module):
        """What TRL's get_reward needs: `getattr(m, m.base_model_prefix)(...)` then `m.score(hidden[-1])`."""

        base_model_prefix = "body"

        def __init__(self):
            super().__init__()
            self.body = Checker()
            self.score = torch.nn.Identity()

    prompts = [task.prompt(e) for e in task.train]
    data = Dataset.from_dict({"input_ids": tokenizer(prompts, add_special_tokens=True)["input_ids"]})
    steps = args.warmup + args.steps
    rollouts = args.prompts * args.samples
    timer = _StepTimer.make()
    load = dict(dtype=torch.float32)
    policy = AutoModelForCausalLM.from_pretrained(args.model_dir, **load)
    ref = AutoModelForCausalLM.from_pretrained(args.model_dir, **load)
    value = AutoModelForSequenceClassification.from_pretrained(args.model_dir, num_labels=1, **load)
    with tempfile.TemporaryDirectory() as out:
        config = PPOConfig(
            **trl_settings(out, **trl_common(args)),
            total_episodes=rollouts * steps,
            num_mini_batches=1,
            num_ppo_epochs=1,
            local_rollout_forward_batch_size=rollouts,
            response_length=args.new_tokens,
            stop_token="eos",
            kl_coef=args.ppo_kl,
            kl_estimator="k3",
            num_sample_generations=0,
        )
        trainer = PPOTrainer(
            args=config,
            processing_class=tokenizer,
            model=policy,
            ref_model=ref,
            reward_model=CheckerReward(),
            value_model=value,
            train_dataset=data,
            callbacks=[timer],
        )
        trainer.train()
    # The reward body is called once per step on the rollouts (the value model goes through its own body).
    return {
        "trl_version": trl.__version__,
        "step_s": timer.steps[args.warmup :],
        "completion_tokens": statistics.fmean(lengths[args.warmup :]),
        "prompt_tokens": statistics.fmean(len(ids) for ids in lookup),
        "reward": statistics.fmean(rewards[args.warmup :]),
    }


WORKERS = {"ours-grpo": worker_ours, "ours-ppo": worker_ours, "trl-grpo": worker_trl_grpo, "trl-ppo": worker_trl_ppo}


def run_worker(name: str, args, model_dir: str, gc: bool = False) -> dict:
    python = str(TRL_PYTHON) if name.startswith("trl") else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    if name == "trl-ppo":
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(TRL_PPO_PATH), env.get("PYTHONPATH", "")] if p)
    cmd = [python, __file__, "--worker", name, "--model-dir", model_dir, "--gc", str(int(gc))]
    for key in ("steps", "warmup", "prompts", "samples", "new_tokens", "threads", "ppo_kl", "micro_batch"):
        if getattr(args, key) is not None:
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"error": f"{name} exited {proc.returncode}", "stderr_tail": tail}
    result = json.loads(lines[-1][len(MARK) :])
    result["process_wall_s"] = round(time.perf_counter() - start, 1)
    return result


# --------------------------------------------------------------------------------------------


def step_flops(
    algorithm: str, n_policy: int, n_critic: int, tokens: float, generated: float, kl: bool, trained: float = 1.0
) -> float:
    """2·N·Tg for generation (Tg: each distinct prompt's tokens once, as a prefill shared by its samples needs,
    plus the completions), +2·N·T for a reference forward, +6·N·T·trained for the policy update (``trained``:
    the share of rows with a gradient); PPO adds the critic's value forward (2·Nc·T) and its update (6·Nc·T).
    T = real (non-pad) tokens of the step's sequences, prompt + completion; N counts matmul weights (the tied
    embedding once, as the LM head)."""
    flops = 2 * n_policy * generated + 6 * n_policy * tokens * trained
    if kl:
        flops += 2 * n_policy * tokens
    if algorithm == "ppo":
        flops += 2 * n_critic * tokens + 6 * n_critic * tokens
    return flops


def summarise(results: list[dict]) -> dict:
    """One side over its rounds: the median round's numbers, each round's mean step time, the peak RSS."""
    ok = [r for r in results if "error" not in r]
    if len(ok) < len(results):
        return next(r for r in results if "error" in r)
    by_time = sorted(ok, key=lambda r: statistics.fmean(r["step_s"]))
    median = dict(by_time[len(by_time) // 2])
    median["mean_step_s"] = statistics.median(statistics.fmean(r["step_s"]) for r in ok)
    median["peak_rss_mib"] = max(r["peak_rss_mib"] for r in ok)
    median["rounds_mean_step_s"] = [round(statistics.fmean(r["step_s"]), 3) for r in ok]
    return median


def round_ratios(ours: dict, peer: dict) -> dict:
    """Per round, peer step time ÷ ours (= our completions/s ÷ the peer's): median and spread."""
    from common import ratio_spread

    return ratio_spread([theirs / mine for mine, theirs in zip(ours["rounds_mean_step_s"], peer["rounds_mean_step_s"])])


def trl_section(trl: dict, algorithm: str, gc: bool) -> dict:
    if "error" in trl:
        return trl
    return {
        "trainer": "GRPOTrainer" if algorithm == "grpo" else "experimental.ppo.PPOTrainer",
        "trl_version": trl["trl_version"],
        "gradient_checkpointing": gc,
        "completions_per_s": round(trl["completions_per_s"], 1),
        "mean_step_s": round(trl["mean_step_s"], 3),
        "step_s": trl["step_s"],
        "rounds_mean_step_s": trl["rounds_mean_step_s"],
        "mean_completion_tokens": trl["completion_tokens"] and round(trl["completion_tokens"], 2),
        "reward": round(trl["reward"], 3),
        "peak_rss_mib": trl["peak_rss_mib"],
        "process_wall_s": trl["process_wall_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument(
        "--model", default="runs/main/sft/model", help="the checkpoint both sides start from (the main job's SFT model)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ppo-kl", type=float, default=0.05, help="KL coefficient for both PPOs (TRL's default)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds; each runs every side once, the side going first alternating between rounds",
    )
    parser.add_argument(
        "--micro-batch",
        type=int,
        help="redraft's rl.micro_batch_size: the update's rows per forward/backward (default: the package's)",
    )
    parser.add_argument("--only", choices=["grpo", "ppo"])
    parser.add_argument(
        "--trl-default-gc",
        action="store_true",
        help="also run TRL with its default gradient_checkpointing=True (reported apart, no targets)",
    )
    parser.add_argument("--gc", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.worker:
        result = WORKERS[args.worker](args)
        result = {k: [round(x, 4) for x in v] if isinstance(v, list) and k != "kl" else v for k, v in result.items()}
        result["peak_rss_mib"] = peak_rss_mib()
        print(MARK + json.dumps(result), flush=True)
        return

    sys.path.insert(0, str(BENCH))
    from common import matmul_rate

    from redraft.config import RLSection
    from redraft.models import load_model
    from redraft.models.build import llama_mlp_width

    if not (Path(args.model) / "config.json").is_file():
        sys.exit(f"--model {args.model}: no checkpoint there; `redraft run` writes the main job's SFT model to it")
    model = load_model(args.model)
    cfg = model.config
    n_policy = sum(p.numel() for p in model.parameters())  # tied embeddings: counted once, as the LM head
    n_critic = n_policy - cfg.vocab_size * cfg.hidden_size + cfg.hidden_size + 1  # no LM head; scalar head
    rollouts = args.prompts * args.samples
    rate = matmul_rate(args.threads, rollouts * 16, cfg.hidden_size, llama_mlp_width(cfg.hidden_size), cfg.vocab_size)

    algorithms = [args.only] if args.only else ["grpo", "ppo"]
    have_trl = TRL_PYTHON.is_file()
    report: dict = {
        "benchmark": "rl_step",
        "model": args.model,
        "params": n_policy,
        "prompts_per_step": args.prompts,
        "samples_per_prompt": args.samples,
        "completions_per_step": rollouts,
        "max_new_tokens": args.new_tokens,
        "temperature": 1.0,
        "threads": args.threads,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "rounds": args.rounds,
        "redraft_micro_batch_size": args.micro_batch or RLSection().micro_batch_size,
        "fp32_matmul_gflops": round(rate / 1e9, 1),
    }
    del model
    for algorithm in algorithms:
        sides = ["ours"] + (["trl"] if have_trl else []) + (["trl-gc"] if have_trl and args.trl_default_gc else [])
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for round_index in range(args.rounds):  # interleaved, so drifts in machine speed hit both sides
            for side in sides if round_index % 2 == 0 else sides[::-1]:
                runs[side].append(
                    run_worker(f"{side.split('-')[0]}-{algorithm}", args, args.model, gc=side == "trl-gc")
                )
        ours = summarise(runs["ours"])
        section: dict = {}
        if "error" in ours:
            section["ours"] = ours
            report[algorithm] = section
            continue
        ours_cps = rollouts / ours["mean_step_s"]
        tokens = rollouts * (ours["prompt_tokens"] + ours["completion_tokens"])
        generated = args.prompts * ours["prompt_tokens"] + rollouts * ours["completion_tokens"]
        kl = algorithm == "ppo" and args.ppo_kl > 0
        # GRPO at beta = 0: a group whose rewards are all equal has advantage 0 and no gradient, and the work the
        # step needs leaves its rows out of the update (redraft does; TRL trains every row).
        trained = 1.0 - ours["frac_reward_zero_std"] if algorithm == "grpo" else 1.0
        flops = step_flops(algorithm, n_policy, n_critic, tokens, generated, kl, trained)
        bound = flops / rate
        # At beta = 0 a reference forward is not needed; if ours scored one anyway, the bound would still
        # leave it out and the time it takes would count against us.
        extra_ref = not kl and ours["scores_reference"]
        section["ours"] = {
            "completions_per_s": round(ours_cps, 1),
            "mean_step_s": round(ours["mean_step_s"], 3),
            "step_s": ours["step_s"],
            "rounds_mean_step_s": ours["rounds_mean_step_s"],
            "split_s": {
                "generate": round(statistics.fmean(ours["generate_s"]), 3),
                "logprobs_and_advantages": round(statistics.fmean(ours["logprob_s"]), 3),
                "update": round(statistics.fmean(ours["update_s"]), 3),
            },
            "scores_reference_at_beta_0": extra_ref if not kl else None,
            "mean_completion_tokens": round(ours["completion_tokens"], 2),
            "mean_prompt_tokens": round(ours["prompt_tokens"], 2),
            "reward": round(ours["reward"], 3),
            "frac_reward_zero_std": round(ours["frac_reward_zero_std"], 3),
            "peak_rss_mib": ours["peak_rss_mib"],
            "process_wall_s": ours["process_wall_s"],
        }
        section["compute_bound"] = {
            "formula": (
                "2N*Tg generation + 6NT*(1 - frac_reward_zero_std) update of the rows with a gradient "
                "(beta=0 needs no reference forward)"
                if algorithm == "grpo"
                else "2N*Tg generation"
                + (" + 2NT reference" if kl else "")
                + " + 2*Nc*T critic values + 6NT policy update + 6*Nc*T critic update"
            ),
            "N_policy": n_policy,
            "N_critic": n_critic if algorithm == "ppo" else None,
            "T_tokens": round(tokens),
            "Tg_generated_tokens": round(generated),
            "gflop": round(flops / 1e9, 1),
            "bound_s": round(bound, 3),
            "ours_step_over_bound": round(ours["mean_step_s"] / bound, 2),
            "target_within_1_3x": ours["mean_step_s"] / bound <= 1.3,
        }
        if extra_ref:
            with_ref = flops + 2 * n_policy * tokens
            section["compute_bound"]["ours_step_over_bound_counting_its_reference_forward"] = round(
                ours["mean_step_s"] / (with_ref / rate), 2
            )
        if have_trl:
            for side in sides[1:]:
                trl = summarise(runs[side])
                if "error" not in trl:
                    trl["completions_per_s"] = rollouts / trl["mean_step_s"]
                section[side.replace("-", "_")] = trl_section(trl, algorithm, side == "trl-gc")
            trl = summarise(runs["trl"])
            if "error" not in trl:
                target = 1.5 if algorithm == "grpo" else 2.0
                section["speedup_vs_trl"] = round_ratios(ours, trl)
                section[f"target_{target}x_trl_met"] = section["speedup_vs_trl"]["median"] >= target
                section["peak_rss_ratio_ours_over_trl"] = round(ours["peak_rss_mib"] / trl["peak_rss_mib"], 2)
                section["target_rss_at_most_trl_met"] = ours["peak_rss_mib"] <= trl["peak_rss_mib"]
            if "trl-gc" in runs and "error" not in (gc := summarise(runs["trl-gc"])):
                section["speedup_vs_trl_default_gc"] = round_ratios(ours, gc)
                section["peak_rss_ratio_ours_over_trl_default_gc"] = round(ours["peak_rss_mib"] / gc["peak_rss_mib"], 2)
        else:
            section["trl"] = f"not run: {TRL_PYTHON} missing (see bench/README.md for the setup)"
        report[algorithm] = section
    if "grpo" in algorithms:
        report["grpo_note"] = (
            "Equal sampling and equal settings; the work differs in one place: at beta = 0 redraft's update leaves "
            "out the rows of groups whose rewards are all equal (advantage 0, zero gradient; frac_reward_zero_std "
            "of them), where TRL's GRPOTrainer forwards and back-propagates every row. The gradient is the same."
        )
    if "ppo" in algorithms:
        report["ppo_note"] = (
            "TRL 1.13+ ships no PPOTrainer; the TRL PPO side is trl.experimental.ppo.PPOTrainer from TRL 1.12.0, "
            "the last release that has it. Its reward model is the task checker wrapped as a module (no forward pass). "
            f"Both PPOs use kl_coef={args.ppo_kl} (reference forward on both sides), "
            f"1 epoch, 1 minibatch of {rollouts}."
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
