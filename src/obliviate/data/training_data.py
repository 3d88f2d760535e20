"""The data a model is fine-tuned on: one config of a TOFU-shaped source or a user file
(:func:`training_items`), and every text of a benchmark for training a tokenizer
(:func:`corpus_text`, or of a user file: :func:`training_corpus`). Used by :func:`obliviate.api.finetune`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from obliviate.data.types import QAItem

# What `obliviate demo` / `obliviate benchmark` (and `finetune --variants`) fine-tune the tiny
# built-in models with. A 7B model generalises from one phrasing of a fact to another and knows
# world facts from pre-training; a model trained from scratch does neither, so without these rows
# its truth ratios stay near 1 and model utility barely moves when retain answers are damaged
# (docs/metrics.md, "Known limits of the tiny default"). The evaluation configs are unchanged.
TINY_TRAINING_VARIANTS = {"paraphrase_training": True, "world_fact_repeats": 3}

TOFU_CONFIGS = (
    "full",
    "forget01",
    "forget05",
    "forget10",
    "retain99",
    "retain95",
    "retain90",
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "holdout01",
    "holdout05",
    "holdout10",
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
)


def training_items(
    data: str,
    split: str,
    builtin: dict[str, Any] | None = None,
    field_map: Any = None,
) -> list[QAItem]:
    """Items of one training config (``full``, ``retain90``...) or of a user file, columns
    renamed by ``field_map`` ({file column: field}, :mod:`obliviate.data.fields`)."""
    from obliviate.data.fields import parse_field_map

    fmap = parse_field_map(field_map)
    if data == "builtin-harm":  # harmful and benign answers (docs/scenarios.md)
        from obliviate.data.harm import harm_training_items

        return harm_training_items(split, **(builtin or {}))
    p = Path(data)
    if p.is_file() or (p.is_dir() and not _looks_like_tofu(p)):
        from obliviate.data.files import load_qa_file

        return load_qa_file(data, field_map=fmap)
    from obliviate.data.builtin import TRAIN_VARIANTS
    from obliviate.data.files import parse_qa_row
    from obliviate.data.tofu import load_tofu_configs

    names = [split, TRAIN_VARIANTS] if data == "builtin" else [split]
    configs = load_tofu_configs(
        data, names, optional=[TRAIN_VARIANTS], field_map=fmap, **(builtin or {})
    )
    rows = configs[split] + training_variants(configs[split], configs.get(TRAIN_VARIANTS, []))
    return [parse_qa_row(r, f"{data} {split}: row {i}") for i, r in enumerate(rows, start=1)]


def training_variants(
    rows: Iterable[Mapping[str, Any]], variants: Iterable[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """The built-in ``train_variants`` rows that vary a question of ``rows`` (one training
    config), as ``question, answer`` rows: what fine-tuning on that config adds."""
    asked = {r["question"] for r in rows}
    return [
        {"question": v["question"], "answer": v["answer"]} for v in variants if v["of"] in asked
    ]


def _looks_like_tofu(folder: Path) -> bool:
    return any((folder / f"full{ext}").exists() for ext in (".jsonl", ".json"))


def training_corpus(data: str, items: list[QAItem], builtin: dict[str, Any] | None) -> list[str]:
    """Tokenizer training text: every text of a benchmark, or of the user's own file."""
    if data == "builtin-harm":
        from obliviate.data.harm import harm_corpus_text

        return harm_corpus_text(**(builtin or {}))
    p = Path(data)
    if p.is_file() or (p.is_dir() and not _looks_like_tofu(p)):
        texts = [t for it in items for t in (it.question, it.answer, *it.perturbed_answers) if t]
        texts += [t for it in items for t in (it.paraphrased_answer, it.paraphrased_question) if t]
        return list(dict.fromkeys(texts))
    return corpus_text(data, builtin)


def corpus_text(data: str, builtin: dict[str, Any] | None = None) -> list[str]:
    """Every text of a benchmark (all configs, answers and their variants): tokenizer training."""
    from obliviate.data.tofu import load_tofu_configs

    rows = load_tofu_configs(data, TOFU_CONFIGS, optional=TOFU_CONFIGS, **(builtin or {}))
    texts: dict[str, None] = {}
    for config_rows in rows.values():
        for r in config_rows:
            for k in ("question", "answer", "paraphrased_answer", "paraphrased_question"):
                if isinstance(r.get(k), str):
                    texts.setdefault(r[k], None)
            for p in r.get("perturbed_answer") or []:
                texts.setdefault(p, None)
    if not texts:
        raise ValueError(f"{data}: no text found to train a tokenizer on")
    return list(texts)
