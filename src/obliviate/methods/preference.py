"""Preference-based forget objectives and presets (docs/methods.md): NPO, SimNPO, DPO on
"I don't know" winners (IdkDPO), TOFU's IdK fine-tuning, and AltPO (DPO on alternate answers
sampled from the target model).

Sequence log-probabilities are sums over answer tokens of gathered log-softmax values.
Reference log-probabilities of every fixed sequence (forget answers, IdK winners, alternates) are
computed once in ``setup`` from the untouched target.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obliviate.config import TrainConfig
from obliviate.data.collate import pad_batch, pad_id_of
from obliviate.data.templates import Encoded, PromptTemplate, encode
from obliviate.data.types import DataError
from obliviate.methods import functional as F
from obliviate.methods.base import MethodPreset, Term, UnlearnJob, forward
from obliviate.methods.gradient import TINY_TRAIN, encode_pairs
from obliviate.methods.reference import sequence_logprobs

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- NPO


class NPOTerm(Term):
    """NPO (Zhang+ 2024, arXiv 2404.05868, eq. 3):
    L_f = −(2/β)·E log σ(−β·[log π_θ(y|x) − log π_ref(y|x)]), sequence-summed log-probs.

    log π_ref(y|x) of the fixed forget set is computed once in :meth:`setup`."""

    description = "negative preference optimisation against pi_ref"
    name = "npo"

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = beta
        self.ref_logp: Any = None

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        self.ref_logp = sequence_logprobs(job.model, forget, job.tokenizer, cfg.batch_size)

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        lp, mask = F.token_logprobs(logits, batch["labels"])
        theta = F.sequence_logprob(lp, mask)
        ref = self.ref_logp.to(theta.device)[batch["index"]]
        return F.npo_loss(theta, ref, beta=self.beta)


NPO_PAPER = "Zhang+ 2024, arXiv 2404.05868"
NPO = MethodPreset(
    "npo",
    "Negative preference optimisation + NLL on retain (NPO-RT, the TOFU/OU default)",
    NPO_PAPER,
    forget="npo",
    retain="nll",
    train=TINY_TRAIN,
    space={"forget_params.beta": "0.01:1:log"},
)
NPO_KL = MethodPreset(
    "npo_kl",
    "Negative preference optimisation + KL on retain (NPO-KL)",
    NPO_PAPER,
    forget="npo",
    retain="kl",
    train=TINY_TRAIN,
    space={"forget_params.beta": "0.01:1:log"},
)


# ----------------------------------------------------------------------------- SimNPO


class SimNPOTerm(Term):
    """SimNPO (Fan+ 2024, arXiv 2410.07163): L_f = −(2/β)·E log σ(−(β/n)·log π_θ(y|x) − γ_m).

    ``beta`` is β (4.5, the TOFU forget10 value) and ``margin`` the paper's margin γ_m (0 in its
    TOFU runs), named ``margin`` so that it cannot be confused with the forget weight ``gamma``.
    OU's ``delta`` sits inside the β scaling: OU ``delta = δ`` is ``margin = β·δ`` here
    (locuslab/open-unlearning#123). No reference model."""

    description = "SimNPO: reference-free, length-normalised NPO"
    name = "simnpo"

    def __init__(self, beta: float = 4.5, margin: float = 0.0) -> None:
        self.beta, self.margin = beta, margin

    def loss_from_logits(self, logits: Any, batch: dict, job: UnlearnJob) -> Any:
        lp, mask = F.token_logprobs(logits, batch["labels"])
        return F.simnpo_loss(F.sequence_logprob(lp, mask), mask.sum(-1), self.beta, self.margin)


SIMNPO = MethodPreset(
    "simnpo",
    "SimNPO (reference-free, length-normalised NPO) x 0.125 + NLL on retain; TOFU "
    "forget10 setting (beta 4.5, margin 0); community: lr 1e-5, 10 epochs",
    "Fan+ 2024, arXiv 2410.07163",
    forget="simnpo",
    retain="nll",
    gamma=0.125,
    alpha=1.0,
    train=TINY_TRAIN,
    space={"forget_params.beta": "1:10:log", "gamma": "0.05:1:log"},
)


# ----------------------------------------------------------------------------- IdK answers


def load_idk(path: str | Path | None = None) -> list[str]:
    """Refusal answers, one per line: the built-in list (``data/resources/idk.txt``, written for
    obliviate) or the user's file ``path``. Blank lines are skipped."""
    if path is None:
        from importlib.resources import files

        text = files("obliviate.data").joinpath("resources", "idk.txt").read_text(encoding="utf-8")
        where = "the built-in idk.txt"
    else:
        p = Path(path)
        if not p.is_file():
            raise DataError(
                f"{p}: refusal-answer file not found; give a text file with one answer per line"
            )
        text = p.read_text(encoding="utf-8")
        where = str(p)
    answers = [line.strip() for line in text.splitlines() if line.strip()]
    if not answers:
        raise DataError(f"{where}: no refusal answers found; write one answer per line")
    return answers


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(" .!?")


# ----------------------------------------------------------------------------- DPO family


class PairwiseTerm(Term):
    """DPO with fixed candidate winners per forget item and the true answer as loser.

    :meth:`winners` returns the candidate winners of each forget item; ``setup`` encodes them
    and caches log π_ref of every candidate and of every forget answer. Each step picks one
    candidate per item at random (seeded by ``train.seed``), and winners and losers go through
    the model in one forward pass."""

    def __init__(self, beta: float = 0.1, n_winners: int = 5) -> None:
        if not isinstance(n_winners, int) or n_winners < 1:
            raise ValueError(f"n_winners must be a positive int, got {n_winners!r}")
        self.beta, self.n_winners = beta, n_winners
        self.forget: list[Encoded] = []
        self.cands: list[list[Encoded]] = []
        self.ref_w: list[Any] = []
        self.ref_l: Any = None
        self.winner_texts: list[list[str]] = []
        self.rng = random.Random(0)

    def winners(self, job: UnlearnJob, cfg: TrainConfig) -> list[list[str]]:
        raise NotImplementedError

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        import torch

        self.rng = random.Random(cfg.seed)
        texts = self.winners(job, cfg)
        if len(texts) != len(forget) or any(not ws for ws in texts):
            raise ValueError("every forget item needs at least one winner answer")
        self.winner_texts = texts
        self.forget = list(forget)
        self.cands = [
            [encode(job.tokenizer, it.question, w, job.template, cfg.max_length) for w in ws]
            for it, ws in zip(job.request.forget, texts)
        ]
        flat = [e for c in self.cands for e in c]
        ref_flat = sequence_logprobs(job.model, flat, job.tokenizer, cfg.batch_size)
        self.ref_w = list(torch.split(ref_flat, [len(c) for c in self.cands]))
        self.ref_l = sequence_logprobs(job.model, forget, job.tokenizer, cfg.batch_size)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        import torch

        idx = batch["index"].tolist()
        pick = [self.rng.randrange(len(self.cands[i])) for i in idx]
        seqs = [self.cands[i][j] for i, j in zip(idx, pick)] + [self.forget[i] for i in idx]
        both = pad_batch(
            [e.input_ids for e in seqs], pad_id_of(job.tokenizer), [e.labels for e in seqs]
        )
        both = {k: v.to(batch["input_ids"].device) for k, v in both.items()}
        lp, mask = F.token_logprobs(forward(model, both).logits, both["labels"])
        seq = F.sequence_logprob(lp, mask)
        n = len(idx)
        w_ref = torch.stack([self.ref_w[i][j] for i, j in zip(idx, pick)]).to(seq.device)
        l_ref = self.ref_l.to(seq.device)[batch["index"]]
        return F.dpo_loss(seq[:n], w_ref, seq[n:], l_ref, beta=self.beta)


class IdkDPOTerm(PairwiseTerm):
    """IdkDPO: DPO (Rafailov+ 2023, arXiv 2305.18290) with y_w = a refusal answer and y_l = the
    true answer, L_f = −(2/β)·log σ(β·[(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) −
    log π_ref(y_l))]), β = 0.1.

    Each forget item gets ``n_winners`` (5) distinct refusals drawn once from the built-in list
    (or ``idk_file``), so that their reference log-probs can be cached; each step uses one of them
    at random. (OU draws a fresh refusal whenever an item is loaded, which needs the reference
    model on every step.)"""

    description = "DPO with a random 'I don't know' answer as winner (IdkDPO)"

    name = "dpo"

    def __init__(self, beta: float = 0.1, n_winners: int = 5, idk_file: str | None = None) -> None:
        super().__init__(beta, n_winners)
        self.idk_file = idk_file

    def winners(self, job: UnlearnJob, cfg: TrainConfig) -> list[list[str]]:
        idk = load_idk(self.idk_file)
        k = min(self.n_winners, len(idk))
        return [self.rng.sample(idk, k) for _ in job.request.forget]


class IdkNLLTerm(Term):
    """TOFU's original "preference optimisation" baseline (Maini+ 2024, arXiv 2401.06121; see
    docs/methods.md and OU #44/#102/#110): fine-tune on the forget questions answered with a
    random refusal, L_f = NLL(y_idk | x_f), token mean over the batch. A fresh refusal is drawn
    for each item on every step (seeded by ``train.seed``); no reference model."""

    description = "NLL on (forget question, random 'I don't know' answer)"

    name = "idk"

    def __init__(self, idk_file: str | None = None) -> None:
        self.idk_file = idk_file
        self.idk: list[str] = []
        self.questions: list[str] = []
        self.max_length = 512
        self.rng = random.Random(0)

    def setup(self, job: UnlearnJob, forget: list[Encoded], cfg: TrainConfig) -> None:
        self.idk = load_idk(self.idk_file)
        self.questions = [it.question for it in job.request.forget]
        self.max_length = cfg.max_length
        self.rng = random.Random(cfg.seed)

    def __call__(self, model: Any, batch: dict, job: UnlearnJob) -> Any:
        pairs = [(self.questions[i], self.rng.choice(self.idk)) for i in batch["index"].tolist()]
        b = encode_pairs(job, pairs, self.max_length, batch["input_ids"].device)
        return F.nll_loss(forward(model, b).logits, b["labels"])


DPO = MethodPreset(
    "dpo",
    "IdkDPO: DPO preferring a refusal over the true answer + NLL on retain (beta 0.1)",
    "Rafailov+ 2023, arXiv 2305.18290; IdkDPO as in Maini+ 2024 (TOFU), arXiv 2401.06121",
    forget="dpo",
    retain="nll",
    gamma=1.0,
    alpha=1.0,
    train=TINY_TRAIN,
    space={"forget_params.beta": "0.01:1:log"},
)
IDK = MethodPreset(
    "idk",
    "TOFU's original IdK baseline: NLL of refusal answers on forget questions + NLL on retain",
    "Maini+ 2024 (TOFU), arXiv 2401.06121",
    forget="idk",
    retain="nll",
    gamma=1.0,
    alpha=1.0,
    train=TINY_TRAIN,
)


# ----------------------------------------------------------------------------- AltPO

# The paper's generation instruction for Llama-2-chat (molereddy/Alternate-Preference-Optimization,
# prompts.py), usable as ``alt_prompt="paper"`` with instruction-tuned models.
ALTPO_PAPER_PROMPT = (
    "Question: {question}\nAnswer: {answer}\nNow write another version of the answer with some "
    "alternate plausible facts that change answer details."
)


def sample_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    template: PromptTemplate,
    n: int,
    temperature: float = 1.0,
    max_new_tokens: int = 200,
    batch_size: int = 32,
    seed: int = 0,
) -> list[list[str]]:
    """``n`` sampled continuations of each prompt (ancestral sampling at ``temperature``, no
    top-k/top-p truncation), batched with left padding and KV cache, cut at EOS and stripped.

    Seeded with ``seed`` inside a forked RNG, so the caller's random state is left untouched."""
    import torch

    from obliviate.scoring import model_device

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    ids = [template.prompt_ids(tokenizer, p) for p in prompts]
    flat = [i for i in range(len(ids)) for _ in range(n)]
    device = model_device(model)
    pad = pad_id_of(tokenizer)
    out: list[list[str]] = [[] for _ in prompts]
    was = model.training
    model.eval()
    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for s in range(0, len(flat), batch_size):
            chunk = flat[s : s + batch_size]
            b = pad_batch([ids[i] for i in chunk], pad, side="left")
            b = {k: v.to(device) for k, v in b.items()}
            gen = model.generate(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                use_cache=True,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row, i in zip(gen[:, b["input_ids"].shape[1] :].tolist(), chunk):
                if tokenizer.eos_token_id in row:
                    row = row[: row.index(tokenizer.eos_token_id)]
                out[i].append(tokenizer.decode(row, skip_special_tokens=True).strip())
    model.train(was)
    return out


class AltPOTerm(PairwiseTerm):
    """AltPO (Mekala+ 2024, arXiv 2409.13474): the DPO loss of :class:`IdkDPOTerm` with y_w = a
    plausible alternate answer generated by the target model itself.

    In ``setup`` the untouched target samples ``n_winners`` (paper: 5) answers per forget
    question at ``temperature`` 1.0 with up to ``max_new_tokens`` 200 new tokens. Samples equal
    to the true answer (case, spacing and final punctuation ignored) or empty are rejected and
    redrawn, up to ``rounds`` times; an item left without any alternate falls back to a refusal
    answer (logged). The prompt is the forget question under the run's template, i.e. the
    model's own answer distribution; ``alt_prompt`` replaces it by a format string with
    ``{question}`` and ``{answer}`` (``"paper"`` = the paper's instruction, for instruction-tuned
    models)."""

    description = "DPO preferring alternate answers sampled from the target"
    name = "altpo"

    def __init__(
        self,
        beta: float = 0.1,
        n_winners: int = 5,
        temperature: float = 1.0,
        max_new_tokens: int = 200,
        rounds: int = 3,
        alt_prompt: str | None = None,
    ) -> None:
        super().__init__(beta, n_winners)
        self.temperature, self.max_new_tokens, self.rounds = temperature, max_new_tokens, rounds
        self.alt_prompt = ALTPO_PAPER_PROMPT if alt_prompt == "paper" else alt_prompt
        self.alternates: list[list[str]] = []

    def _prompts(self, items: Sequence[Any]) -> list[str]:
        if self.alt_prompt is None:
            return [it.question for it in items]
        try:
            return [self.alt_prompt.format(question=it.question, answer=it.answer) for it in items]
        except (KeyError, IndexError) as exc:
            raise ValueError(f"alt_prompt may only use {{question}} and {{answer}}: {exc}") from exc

    def winners(self, job: UnlearnJob, cfg: TrainConfig) -> list[list[str]]:
        items = job.request.forget
        got: list[list[str]] = [[] for _ in items]
        for r in range(max(1, self.rounds)):
            todo = [i for i, g in enumerate(got) if len(g) < self.n_winners]
            if not todo:
                break
            samples = sample_answers(
                job.model,
                job.tokenizer,
                self._prompts([items[i] for i in todo]),
                job.template,
                self.n_winners,
                self.temperature,
                self.max_new_tokens,
                cfg.batch_size,
                seed=cfg.seed + r,
            )
            for i, s in zip(todo, samples):
                true = _normalise(items[i].answer)
                for a in s:
                    if a and _normalise(a) != true and len(got[i]) < self.n_winners:
                        got[i].append(a)
        empty = [i for i, g in enumerate(got) if not g]
        if empty:
            idk = load_idk()
            log.warning(
                "altpo: %d forget item(s) got no alternate answer different from the "
                "true one; using refusal answers for them",
                len(empty),
            )
            for i in empty:
                got[i] = [self.rng.choice(idk)]
        self.alternates = got
        return got


ALTPO = MethodPreset(
    "altpo",
    "AltPO: DPO preferring the target's own sampled alternate answers over the true "
    "one + NLL on retain (5 alternates, T=1); community: lr 1e-5..5e-5, 2 epochs",
    "Mekala+ 2024, arXiv 2409.13474",
    forget="altpo",
    retain="nll",
    gamma=1.0,
    alpha=1.0,
    train=TINY_TRAIN,
)
