"""Prompt/answer token boundary (docs/metrics.md, "Prompt/answer boundary"): the prompt and the
answer are tokenised together and the scored tokens are exactly the answer's, for
SentencePiece (Llama-2 style), byte-level BPE with BOS (Llama-3 style) and without (GPT-2
style) tokenizers; the built-in tokenizer's ids are unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from obliviate.data.templates import IGNORE, PromptTemplate, encode

QUESTION = "Where was Anna Berg born?"
ANSWER = "Paris"


def scored(enc: Any) -> list[int]:
    return [t for t in enc.labels if t != IGNORE]


@pytest.mark.parametrize("style", ["llama2", "llama3", "gpt2"])
def test_qa_answer_tokens_are_those_of_the_joint_text(styles: dict, style: str) -> None:
    tok = styles[style]
    tmpl = PromptTemplate("qa")
    enc = encode(tok, QUESTION, ANSWER, tmpl, add_eos=False)
    joint = tok(tmpl.prompt_text(QUESTION) + " " + ANSWER)["input_ids"]
    assert enc.input_ids == joint  # what the model reads when the text is tokenised once
    answer = scored(enc)
    assert tok.decode(answer).strip() == ANSWER
    first = tok.convert_ids_to_tokens(answer[0])
    assert first not in ("▁", "Ġ"), f"{style}: a bare space token is scored first"
    assert first.lstrip("▁Ġ") == ANSWER


def test_llama2_style_no_stray_space_token(styles: dict) -> None:
    tok = styles["llama2"]
    # the answer tokenised on its own gets a stray "▁" (legacy prefix space + the answer's space)
    alone = tok.convert_ids_to_tokens(tok(" " + ANSWER, add_special_tokens=False)["input_ids"])
    assert alone[0] == "▁"
    enc = encode(tok, QUESTION, ANSWER, PromptTemplate("qa"))
    answer = scored(enc)
    assert tok.convert_ids_to_tokens(answer) == ["▁Paris", "</s>"]
    assert enc.has_eos and enc.prompt_len == len(enc.input_ids) - 2


@pytest.mark.parametrize("style", ["llama2", "llama3"])
def test_chat_template_with_system_prompt(styles: dict, style: str) -> None:
    tok = styles[style]
    tmpl = PromptTemplate("chat", system_prompt="You are a helpful assistant.")
    enc = encode(tok, QUESTION, ANSWER, tmpl, add_eos=False)
    text = tmpl.chat_text(tok, QUESTION)
    assert "You are a helpful assistant." in text
    assert enc.input_ids == tok(text + ANSWER, add_special_tokens=False)["input_ids"]
    assert tok.decode(scored(enc)).strip() == ANSWER
    prompt = tok.decode(enc.input_ids[: enc.prompt_len])
    assert "You are a helpful assistant." in prompt and ANSWER not in prompt.split("[/INST]")[-1]


class SlowTokenizer:
    """A tokenizer without offsets (a Python "slow" tokenizer): the documented fallback."""

    is_fast = False

    def __init__(self, fast: Any) -> None:
        self.fast = fast
        self.bos_token_id, self.eos_token_id = fast.bos_token_id, fast.eos_token_id

    def __call__(self, text: str, add_special_tokens: bool = True, **kw: Any) -> Any:
        if kw.get("return_offsets_mapping"):
            raise NotImplementedError("return_offset_mapping is not available")
        return self.fast(text, add_special_tokens=add_special_tokens)


@pytest.mark.parametrize("style", ["llama2", "llama3", "gpt2"])
def test_tokenizers_without_offsets_split_the_same(styles: dict, style: str) -> None:
    tok = styles[style]
    for q, a in [(QUESTION, ANSWER), ("Which city is the capital of France?", "Paris is.")]:
        fast = encode(tok, q, a, PromptTemplate("qa"))
        slow = encode(SlowTokenizer(tok), q, a, PromptTemplate("qa"))
        assert (slow.input_ids, slow.labels, slow.has_eos) == (
            fast.input_ids,
            fast.labels,
            fast.has_eos,
        )


def separate(tok: Any, q: str, a: str, tmpl: PromptTemplate, max_length: int) -> Any:
    """The previous encoding: prompt and " " + answer tokenised separately, ids concatenated."""
    p = list(tok(tmpl.prompt_text(q))["input_ids"])
    ans = list(tok(tmpl.answer_text(a), add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]
    if len(p) >= max_length:
        p = p[-(max_length // 2) :]
    ans = ans[: max_length - len(p)]
    return p + ans, [IGNORE] * len(p) + ans


def test_builtin_tokenizer_ids_unchanged_on_the_whole_benchmark(
    builtin_tok: Any, tiny_builtin: dict
) -> None:
    """The TOFU numbers cannot move: with the built-in byte-level tokenizer the joint encoding
    equals the separate one on every (question, answer variant) pair of the built-in data."""
    from obliviate.api import TOFU_CONFIGS
    from obliviate.data.tofu import load_tofu_configs

    rows = load_tofu_configs("builtin", TOFU_CONFIGS, optional=TOFU_CONFIGS, **tiny_builtin)
    pairs = set()
    for config_rows in rows.values():
        for r in config_rows:
            answers = [
                r.get("answer"),
                r.get("paraphrased_answer"),
                *(r.get("perturbed_answer") or []),
            ]
            for q in (r.get("question"), r.get("paraphrased_question")):
                pairs.update((q, a) for a in answers if isinstance(q, str) and isinstance(a, str))
    assert len(pairs) > 500
    for name in ("qa", "raw"):
        tmpl = PromptTemplate(name)
        for q, a in sorted(pairs):
            for max_length in (512, 12):
                enc = encode(builtin_tok, q, a, tmpl, max_length)
                assert (enc.input_ids, enc.labels) == separate(builtin_tok, q, a, tmpl, max_length)


def test_system_prompt_needs_the_chat_template() -> None:
    with pytest.raises(ValueError, match="only to the chat template"):
        PromptTemplate("qa", system_prompt="Be brief.")


def test_system_prompt_is_part_of_the_evaluation_key(tiny_builtin: dict) -> None:
    from obliviate import api

    plain = api.load_suite("tofu", builtin=tiny_builtin, template="chat")
    brief = api.load_suite("tofu", builtin=tiny_builtin, template="chat", system_prompt="Be brief.")
    assert brief.template.system_prompt == "Be brief."
    assert brief.key("sha256:x")["template"]["system_prompt"] == "Be brief."
    assert plain.key("sha256:x") != brief.key("sha256:x")


def test_cli_system_prompt_reaches_the_api() -> None:
    import argparse

    from obliviate.cli._common import add_data_args, data_kwargs

    p = argparse.ArgumentParser()
    add_data_args(p)
    args = p.parse_args(["--template", "chat", "--system-prompt", "Be brief."])
    kw = data_kwargs(args)
    assert kw["system_prompt"] == "Be brief." and kw["template"] == "chat"
