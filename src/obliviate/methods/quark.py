"""DeMem: reward-based unlearning by a Quark loop (docs/methods.md, "DeMem").

Quark (Lu+ 2022, arXiv 2205.13636, §3.1) with DeMem's reward (Kassem+ EMNLP 2023,
"Preserving Privacy Through Dememorization"): the reward of a continuation of a forget prompt is
its dissimilarity to the true forget answer, ``1 - BLEU`` (DeMem uses the negative SacreBLEU
similarity; here BLEU is on token ids, :func:`~obliviate.methods.reward_losses.token_bleu`).
For ``iterations`` rounds:

1. **Explore**: sample ``samples_per_prompt`` continuations (``max_new_tokens``, temperature
   ``temperature``) of every forget prompt from the current policy, conditioned on the best
   reward, score them and add them to the data pool.
2. **Quantise** the pool's rewards into ``n_bins`` quantiles (bin 0 = the best rewards).
3. **Learn**: train (``train`` settings per round: epochs over the pool, lr, max_steps; a fresh
   optimiser each round) on (reward token + prompt + sample) with NLL on the sample and
   ``kl_beta · KL(π_0 ∥ π_θ)`` to the initial model on the plain prompt.

**Inference without a reward token.** The reward tokens are text prefixes of the question and
the best bin's prefix is the empty string: the best-reward condition *is* the plain prompt, so
the saved model behaves as conditioned on the best reward with no token added by the user, with
no new vocabulary and no change of the chat template. The worse bins' prefixes
(``"<reward k/K> "``) are only seen in training. Question/answer items only: split documents into
(prefix, continuation) pairs first.
"""

from __future__ import annotations

from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import IGNORE, Encoded
from obliviate.methods.base import MethodPreset, UnlearnJob, UnlearnOutput, forward
from obliviate.methods.reward_losses import (
    dissimilarity_reward,
    quantise_rewards,
    quark_loss,
    reward_prefix,
)

QUARK_PAPER = "Lu+ 2022, arXiv 2205.13636 (Quark); reward of Kassem+ EMNLP 2023 (DeMem)"
QUARK_TINY_TRAIN = {
    "lr": 2.5e-4,
    "epochs": 1,
    "batch_size": 16,
    "warmup_epochs": 0,
    "scheduler": "constant",
}


def conditioned_pair(
    tokenizer: Any, template: Any, question: str, sample: list[int], bin_index: int, n_bins: int
) -> tuple[Encoded, Encoded]:
    """The policy's training sequence (reward prefix + prompt + sample) and the reference's
    (prompt + sample), each with the sample tokens labelled."""
    out = []
    for q in (reward_prefix(bin_index, n_bins) + question, question):
        p = template.prompt_ids(tokenizer, q)
        out.append(Encoded(p + sample, [IGNORE] * len(p) + sample, len(p), False))
    return out[0], out[1]


def sample_continuations(
    model: Any,
    prompt: list[int],
    n: int,
    max_new_tokens: int,
    temperature: float,
    gen: Any,
    stops: set[int],
) -> list[list[int]]:
    """``n`` sampled continuations of one prompt (ancestral sampling at ``temperature``), each
    cut after its first token in ``stops`` (kept)."""
    import torch

    from obliviate.scoring import model_device

    ids = torch.tensor([prompt] * n, dtype=torch.long, device=model_device(model))
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
            probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=gen).to(ids.device)
            ids = torch.cat([ids, nxt], dim=1)
    out = []
    for row in ids[:, len(prompt) :].tolist():
        cut = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        out.append(row[:cut])
    return out


class QuarkUnlearning:
    """Builder object of the ``demem`` method (see the module docstring)."""

    def __init__(
        self,
        train: TrainConfig,
        n_bins: int = 5,
        iterations: int = 3,
        samples_per_prompt: int = 4,
        max_new_tokens: int = 16,
        temperature: float = 1.0,
        kl_beta: float = 0.05,
        bleu_order: int = 4,
    ) -> None:
        checks = {
            "n_bins": (n_bins, n_bins >= 1, ">= 1"),
            "iterations": (iterations, iterations >= 1, ">= 1"),
            "samples_per_prompt": (samples_per_prompt, samples_per_prompt >= 1, ">= 1"),
            "max_new_tokens": (max_new_tokens, max_new_tokens >= 1, ">= 1"),
            "temperature": (temperature, temperature > 0, "> 0"),
            "kl_beta": (kl_beta, kl_beta >= 0, ">= 0"),
            "bleu_order": (bleu_order, bleu_order >= 1, ">= 1"),
        }
        for key, (value, ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"demem setting {key}={value!r} must be {rule}")
        self.train, self.n_bins, self.iterations = train, n_bins, iterations
        self.samples, self.max_new, self.temperature = (
            samples_per_prompt,
            max_new_tokens,
            temperature,
        )
        self.kl_beta, self.bleu_order = kl_beta, bleu_order

    def unlearn(self, job: UnlearnJob) -> UnlearnOutput:
        import torch

        from obliviate.decoding import eos_ids
        from obliviate.io import write_jsonl
        from obliviate.seeding import seed_everything
        from obliviate.training import train_loop

        items = job.request.forget
        if any(it.is_document for it in items):
            raise ValueError(
                "demem needs question/answer forget items; split each document into a prefix "
                "(question) and its continuation (answer)"
            )
        cfg, tok, tpl = self.train, job.tokenizer, job.template
        seed_everything(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        prompts = [tpl.prompt_ids(tok, it.question) for it in items]
        truths = [tpl.pair_ids(tok, it.question, it.answer)[1] for it in items]
        eos = set(eos_ids(tok.eos_token_id))
        ref = job.reference_model()
        pool: list[tuple[int, list[int], float]] = []  # (item, sample, reward)
        logs: list[dict[str, float]] = []
        n_train = sum(p.numel() for p in job.model.parameters() if p.requires_grad)
        stopped, steps, mean_rewards = None, 0, []
        for it in range(self.iterations):
            job.model.eval()
            new = []
            for k, prompt in enumerate(prompts):
                for s in sample_continuations(
                    job.model, prompt, self.samples, self.max_new, self.temperature, gen, eos
                ):
                    body = [t for t in s if t not in eos]
                    new.append((k, s, dissimilarity_reward(body, truths[k], self.bleu_order)))
            mean_rewards.append(sum(r for _, _, r in new) / len(new))
            pool.extend(new)
            bins = quantise_rewards([r for _, _, r in pool], self.n_bins)
            pairs = [
                conditioned_pair(tok, tpl, items[k].question, s, b, self.n_bins)
                for (k, s, _), b in zip(pool, bins)
            ]
            refs = [r for _, r in pairs]
            pad = pad_id_of(tok)

            result = train_loop(
                job.model,
                self.loss_fn(ref, refs, pad),
                [p for p, _ in pairs],
                cfg,
                pad,
                accelerator=job.accelerator,
                desc=f"demem round {it + 1}/{self.iterations}",
                progress=job.progress,
            )
            logs.extend({**row, "round": float(it)} for row in result.log)
            steps += result.steps
            if result.stopped:
                stopped = result.stopped
                break
        if job.run_dir is not None:
            write_jsonl(job.run_dir / "train_log.jsonl", logs)
        return UnlearnOutput(
            job.model,
            logs,
            n_train,
            stopped,
            {"steps": steps, "pool": len(pool), "mean_reward_per_round": mean_rewards},
        )

    def loss_fn(self, ref: Any, refs: list[Encoded], pad: int) -> Any:
        """The trainer's loss over pool batches: the policy on the conditioned sequences of the
        batch, the frozen ``ref`` on their plain counterparts ``refs[index]``."""
        import torch

        from obliviate.scoring import model_device

        def loss(m: Any, batch: dict, _rb: Any, _step: int) -> tuple[Any, dict]:
            idx = batch["index"].tolist()
            rb = pad_batch([refs[i].input_ids for i in idx], pad, [refs[i].labels for i in idx])
            dev = model_device(m)
            with torch.no_grad():
                z0 = ref(
                    input_ids=rb["input_ids"].to(dev), attention_mask=rb["attention_mask"].to(dev)
                ).logits
            z = forward(m, batch).logits
            total, nll, kl = quark_loss(z, batch["labels"], z0, rb["labels"].to(dev), self.kl_beta)
            return total, {"nll": nll.detach(), "kl": kl.detach()}

        return loss


def _build(train: TrainConfig, **options: Any) -> QuarkUnlearning:
    return QuarkUnlearning(train, **options)


DEMEM = MethodPreset(
    "demem",
    "DeMem: Quark loop, reward = 1 - BLEU to the forget answer, KL to the initial model",
    QUARK_PAPER,
    builder=_build,
    options={
        "n_bins": 5,
        "iterations": 3,
        "samples_per_prompt": 4,
        "max_new_tokens": 16,
        "temperature": 1.0,
        "kl_beta": 0.05,
        "bleu_order": 4,
    },
    train=QUARK_TINY_TRAIN,
)
