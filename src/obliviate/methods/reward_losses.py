"""Reward-conditioned unlearning (Quark, Lu+ 2022, arXiv 2205.13636, with the dissimilarity
reward of DeMem, Kassem+ EMNLP 2023; :mod:`obliviate.methods.quark`): the pure functions.
Only torch is imported, and only by :func:`quark_loss`.

- The reward of a sampled continuation is its dissimilarity to the true forget continuation,
  ``1 - BLEU`` (DeMem's reward is the negative SacreBLEU similarity of the generated suffix to
  the true suffix; here BLEU is computed on token ids: :func:`token_bleu`).
- Quark quantises the rewards of its data pool into K quantiles, each with a reward token
  (paper §3.1, "quantization"): :func:`quantise_rewards`, bin 0 holding the highest rewards.
- The reward token conditions the policy (paper §3.1, "learning"): here it is a text prefix of
  the question, and the best bin's prefix is the empty string (:func:`reward_prefix`), so that
  the unlearned model behaves as conditioned on the best reward with a plain prompt.
- The learning objective (paper §3.1, "learning"): NLL of the sample given (reward token,
  prompt) plus ``β · KL(π_0(·|y_<t, x) ∥ π_θ(·|y_<t, x, r_k))`` per sample token
  (:func:`quark_loss`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100


def _ngrams(tokens: Sequence[int], n: int) -> Counter[tuple[int, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def token_bleu(candidate: Sequence[int], reference: Sequence[int], max_n: int = 4) -> float:
    """Sentence BLEU of ``candidate`` against one ``reference`` (Papineni+ 2002), on tokens.

    ``BLEU = BP · exp((1/N) Σ_{n≤N} log p_n)`` with ``N = min(max_n, |c|, |r|)``, ``p_1`` the
    clipped unigram precision and, for ``n > 1``, add-one smoothed precisions ``(m_n + 1) /
    (c_n + 1)`` (Lin & Och 2004), and the brevity penalty ``BP = min(1, exp(1 - |r|/|c|))``.
    An empty candidate or reference, or no common token, gives 0."""
    if max_n < 1:
        raise ValueError(f"BLEU order must be >= 1, got {max_n}")
    c, r = len(candidate), len(reference)
    order = min(max_n, c, r)
    if order == 0:
        return 0.0
    logs = []
    for n in range(1, order + 1):
        cand, ref = _ngrams(candidate, n), _ngrams(reference, n)
        match = sum(min(k, ref[g]) for g, k in cand.items())
        total = c - n + 1
        if n == 1:
            if match == 0:
                return 0.0
            logs.append(math.log(match / total))
        else:
            logs.append(math.log((match + 1) / (total + 1)))
    bp = 1.0 if c >= r else math.exp(1 - r / c)
    return bp * math.exp(sum(logs) / order)


def dissimilarity_reward(sample: Sequence[int], truth: Sequence[int], max_n: int = 4) -> float:
    """DeMem's reward: ``1 - BLEU(sample, truth)`` in [0, 1] (1 = nothing of the forget
    continuation is reproduced)."""
    return 1.0 - token_bleu(sample, truth, max_n)


def quantise_rewards(rewards: Sequence[float], n_bins: int) -> list[int]:
    """Quark's quantisation (Lu+ 2022, §3.1): rank the pool by reward, highest first (ties: the
    earlier sample first), and cut the ranking into ``n_bins`` equal quantiles; returns each
    sample's bin, 0 = the best rewards. Rank ``i`` of ``N`` goes to bin ``floor(i·K/N)``."""
    if n_bins < 1:
        raise ValueError(f"the number of reward bins must be >= 1, got {n_bins}")
    n = len(rewards)
    order = sorted(range(n), key=lambda i: (-rewards[i], i))
    bins = [0] * n
    for rank, i in enumerate(order):
        bins[i] = rank * n_bins // n
    return bins


def reward_prefix(bin_index: int, n_bins: int) -> str:
    """The reward token of a bin, as a text prefix of the question: ``""`` for the best bin (the
    plain prompt is the best-reward condition) and ``"<reward k/K> "`` for bin ``k >= 1``."""
    if not 0 <= bin_index < n_bins:
        raise ValueError(f"reward bin {bin_index} is not in [0, {n_bins})")
    return "" if bin_index == 0 else f"<reward {bin_index}/{n_bins}> "


def quark_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ref_logits: torch.Tensor,
    ref_labels: torch.Tensor,
    kl_beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quark's objective (Lu+ 2022, arXiv 2205.13636, §3.1): ``NLL + β·KL``, with its parts.

    ``logits``/``labels``: the policy on (reward prefix + prompt + sample), labels = the sample
    tokens (``-100`` elsewhere). ``ref_logits``/``ref_labels``: the frozen initial model on
    (prompt + sample), the same sample tokens labelled. Each row must label the same number of
    tokens in both; the k-th labelled position of a row is matched to the reference's k-th.
    NLL and ``KL(π_0 ∥ π_θ) = Σ_v π_0 (log π_0 - log π_θ)`` are means over the sample tokens of
    the batch; no sample token gives 0 with the graph intact."""
    import torch
    import torch.nn.functional as F

    from obliviate.methods.likelihood_losses import nll_loss, shift_labels

    if kl_beta < 0:
        raise ValueError(f"kl_beta must be >= 0, got {kl_beta}")
    z, _, mask = shift_labels(logits, labels)
    z0, _, mask0 = shift_labels(ref_logits, ref_labels)
    if not torch.equal(mask.sum(-1), mask0.sum(-1)):
        raise ValueError(
            "policy and reference batches must label the same number of sample tokens per row"
        )
    nll = nll_loss(logits, labels)
    logp = F.log_softmax(z[mask].float(), dim=-1)
    logq = F.log_softmax(z0[mask0].float(), dim=-1).detach()
    kl_rows = (logq.exp() * (logq - logp)).sum(-1)
    kl = kl_rows.sum() / mask.sum().clamp(min=1)
    return nll + kl_beta * kl, nll, kl
