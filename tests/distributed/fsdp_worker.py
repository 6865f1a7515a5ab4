"""FSDP2 (torch's ``fully_shard``) on the micro model with gloo on the CPU, run by test_fsdp.py.

    torchrun --nproc_per_node 2 tests/distributed/fsdp_worker.py OUT_DIR STEPS
    python tests/distributed/fsdp_worker.py OUT_DIR STEPS            # the same training, unsharded

Shards every decoder layer and the whole model (what configs/accelerate/fsdp.yaml asks accelerate
for), trains STEPS AdamW steps on one global batch split over the ranks, saves and reloads a
sharded checkpoint with torch.distributed.checkpoint, and writes the losses and the gathered full
weights to OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from redraft.config import ModelSection, TaskSection
from redraft.data.sequences import collate, sft_data
from redraft.distributed import end_processes
from redraft.models import build_model
from redraft.tasks import build_task
from redraft.text.tokenizer import train_tokenizer
from redraft.training.losses import masked_lm_loss_sum


def main(out_dir: Path, steps: int) -> None:
    sharded = dist.is_torchelastic_launched()
    if sharded:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    task = build_task(TaskSection(train_size=64, val_size=8, test_size=8, max_digits=2))
    tokenizer = train_tokenizer(task.corpus(), vocab_size=280)
    examples = task.train[:32]
    data = sft_data(tokenizer, [task.prompt(e) for e in examples], [e.target for e in examples], 32)
    batch = collate(data, list(range(rank, len(examples), world)))
    torch.manual_seed(0)
    model = build_model(ModelSection(preset="micro"), tokenizer)
    if sharded:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    total_tokens = torch.tensor(float(data.loss_mask[:, 1:].sum()))
    losses = []
    for _ in range(steps):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # The global token mean; FSDP averages gradients over ranks, hence the factor ``world``.
        loss = masked_lm_loss_sum(logits, batch["input_ids"], batch["loss_mask"]) * world / total_tokens
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        reported = loss.detach() / world
        if sharded:
            dist.all_reduce(reported)
        losses.append(float(reported))

    full = {
        name: tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        for name, tensor in model.state_dict().items()
    }
    reloaded_equal = True
    if sharded:
        import torch.distributed.checkpoint as dcp

        dcp.save({"model": model.state_dict()}, checkpoint_id=str(out_dir / "sharded"))
        torch.manual_seed(1)
        fresh = build_model(ModelSection(preset="micro"), tokenizer)
        for layer in fresh.model.layers:
            fully_shard(layer)
        fully_shard(fresh)
        state = {"model": fresh.state_dict()}
        dcp.load(state, checkpoint_id=str(out_dir / "sharded"))
        fresh.load_state_dict(state["model"])
        reloaded = {name: tensor.full_tensor() for name, tensor in fresh.state_dict().items()}
        reloaded_equal = all(torch.equal(reloaded[name], full[name]) for name in full)
        first_local = next(model.parameters()).to_local()
        shards = [first_local.shape[0]]
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Cloned: tied embeddings share storage, which safetensors refuses.
        save_file(
            {name: tensor.detach().clone() for name, tensor in full.items()}, str(out_dir / "weights.safetensors")
        )
        report = {"losses": losses, "processes": world, "reloaded_equal": reloaded_equal}
        if sharded:
            report["first_parameter_rows_on_rank0"] = shards[0]
            report["first_parameter_rows"] = next(iter(full.values())).shape[0]
        (out_dir / "report.json").write_text(json.dumps(report))
    end_processes()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
