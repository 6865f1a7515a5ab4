"""`redraft feedback sample`: a model's completions for task prompts, queued for labelling."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from redraft.config import SamplingSection
from redraft.errors import RedraftError
from redraft.feedback.config import FeedbackConfig
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.store import write_session


def sample_into_store(sessions: sessionmaker, cfg: FeedbackConfig) -> dict[str, Any]:
    """Sample ``samples_per_prompt`` completions for the first ``prompts`` problems of the task
    split and queue them as the configured item kinds; returns what was added."""
    from redraft.models import load_model
    from redraft.rollout.sampler import generate
    from redraft.tasks import build_task
    from redraft.text.tokenizer import load_tokenizer

    settings = cfg.sample
    if settings.model is None:
        raise RedraftError("no model to sample from: give --model PATH (an HF checkpoint folder)")
    model_dir = Path(settings.model)
    if not (model_dir / "config.json").is_file():
        raise RedraftError(f"not an HF checkpoint folder (no config.json): {model_dir}")
    task = build_task(cfg.task)
    examples = task.split(settings.split)[: settings.prompts]
    if not examples:
        raise RedraftError(f"the task's {settings.split} split is empty")
    prompts = [task.prompt(example) for example in examples]
    per_prompt = settings.samples_per_prompt
    sampling = SamplingSection(
        temperature=settings.temperature, max_new_tokens=settings.max_new_tokens, stop=settings.stop
    )
    generation = generate(
        load_model(model_dir, settings.dtype),
        load_tokenizer(model_dir),
        [p for p in prompts for _ in range(per_prompt)],
        sampling,
        seed=settings.seed,
    )
    rng = random.Random(settings.seed)
    kinds: Counter = Counter()
    with write_session(sessions) as session:
        for i, (example, prompt_text) in enumerate(zip(examples, prompts, strict=True)):
            texts = generation.texts[i * per_prompt : (i + 1) * per_prompt]
            # Correcting a wrong answer teaches more than re-typing a right one.
            wrong = [j for j, text in enumerate(texts) if not task.check(text, example)]
            prompt = add_prompt(
                session,
                prompt_text,
                texts,
                answer=example.answer,
                source=task.name,
                model=str(model_dir),
                run_id=settings.run_id or model_dir.name,
            )
            items = enqueue(
                session, prompt, settings.kinds, cfg.queue.labels_per_item, rng, correct_index=wrong[0] if wrong else 0
            )
            kinds.update(item.kind for item in items)
    return {"prompts": len(examples), "outputs": len(generation.texts), "items": dict(kinds)}
