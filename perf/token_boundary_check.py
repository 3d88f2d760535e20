"""Do the built-in numbers move with the joint prompt/answer tokenisation? (docs/metrics.md)

Encodes every (question, answer variant) pair of the built-in TOFU benchmark (qa and raw
templates, two max lengths) and every WMDP-style multiple-choice and MUSE KnowMem pair of the
built-in corpora (raw template) with :func:`obliviate.data.templates.encode`, and compares the
ids and labels with the previous encoding (prompt and answer tokenised separately), using the
built-in tokenizers. Prints the counts; exits 1 if any pair differs.

    .venv/bin/python perf/token_boundary_check.py --people 100
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def separate(tok: Any, q: str, a: str, tmpl: Any, max_length: int) -> tuple[list, list]:
    """The previous encoding: prompt and answer tokenised separately, ids concatenated."""
    p = list(tok(tmpl.prompt_text(q))["input_ids"])
    ans = list(tok(tmpl.answer_text(a), add_special_tokens=False)["input_ids"])
    ans += [tok.eos_token_id]
    if len(p) >= max_length:
        p = p[-(max_length // 2) :]
    ans = ans[: max_length - len(p)]
    return p + ans, [-100] * len(p) + ans


def main() -> int:
    from obliviate.api import TOFU_CONFIGS, corpus_text
    from obliviate.benchmarks.wmdp import cloze_prompt, letter_continuations, mcq_prompt
    from obliviate.data.builtin_muse import builtin_muse_corpus_text
    from obliviate.data.muse import load_muse
    from obliviate.data.templates import PromptTemplate, encode
    from obliviate.data.tofu import load_tofu_configs
    from obliviate.data.wmdp import load_wmdp
    from obliviate.models.tiny import train_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100)
    args = ap.parse_args()
    t0 = time.perf_counter()
    builtin = {"n_people": args.people}
    tok = train_tokenizer(corpus_text("builtin", builtin))
    rows = load_tofu_configs("builtin", TOFU_CONFIGS, optional=TOFU_CONFIGS, **builtin)
    pairs: set[tuple[str, str]] = set()
    for config_rows in rows.values():
        for r in config_rows:
            answers = [r.get("answer"), r.get("paraphrased_answer")]
            answers += list(r.get("perturbed_answer") or [])
            for q in (r.get("question"), r.get("paraphrased_question")):
                pairs.update((q, a) for a in answers if isinstance(q, str) and isinstance(a, str))
    n = diff = 0
    for name in ("qa", "raw"):
        tmpl = PromptTemplate(name)
        for q, a in sorted(pairs):
            for max_length in (512, 16):
                enc = encode(tok, q, a, tmpl, max_length)
                n += 1
                diff += (enc.input_ids, enc.labels) != separate(tok, q, a, tmpl, max_length)
    print(f"TOFU built-in ({args.people} people): {len(pairs)} pairs, {n} encodings, {diff} differ")
    raw: set[tuple[str, str]] = set()
    for items in load_wmdp("builtin").values():
        for it in items:
            prompt = mcq_prompt(it.question, it.choices)
            raw.update((prompt, c) for c in letter_continuations(len(it.choices)))
            raw.update((cloze_prompt(it.question), f" {c}") for c in it.choices)
    for items in load_muse("builtin").knowmem.values():
        raw.update((it.question, it.answer) for it in items)
    muse_tok = train_tokenizer(builtin_muse_corpus_text())
    m = diff2 = 0
    for t in (tok, muse_tok):
        for q, a in sorted(raw):
            enc = encode(t, q, a, PromptTemplate("raw"), 2048)
            m += 1
            diff2 += (enc.input_ids, enc.labels) != separate(t, q, a, PromptTemplate("raw"), 2048)
    print(f"MCQ/KnowMem built-in: {len(raw)} pairs x 2 tokenizers, {m} encodings, {diff2} differ")
    print(f"{time.perf_counter() - t0:.1f} s")
    return 1 if diff or diff2 else 0


if __name__ == "__main__":
    sys.exit(main())
