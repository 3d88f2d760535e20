"""What every inference wrapper shares: the model-like interface scoring uses, greedy generation
(the one loop of :mod:`obliviate.decoding`), finding the prompt/answer border in a token sequence, and saving/loading.

A wrapper sees only token ids (``obliviate.scoring`` renders the prompt with the template and,
for teacher-forced scoring, appends the answer). Wrappers that act on the *prompt* (guardrails,
ICUL) recover it with :class:`PromptSplitter`: the template's answer marker (``"\\nAnswer:"`` for
the ``qa`` template, the generation prompt of a chat template) ends the prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch

from obliviate.data.templates import PromptTemplate
from obliviate.decoding import (  # noqa: F401  (re-exported: the wrappers decode with these)
    StepFn,
    cache_argument,
    eos_ids,
    greedy_generate,
    hf_step,
    positions,
)

# The non-answer every refusing method outputs unless told otherwise (KnowEdit "Sanitation"
# and TOFU's IdK answers use the same kind of string).
REFUSAL = "I don't know."


# ----------------------------------------------------------------------------- prompt border


def first_prefix_containing(
    tokenizer: Any, ids: Sequence[int], text: str, skip_special_tokens: bool = False
) -> int | None:
    """The smallest ``k`` such that ``decode(ids[:k])`` contains ``text`` (binary search: the
    property is monotone in ``k``), or ``None`` when even the whole sequence does not."""
    ids = list(ids)

    def has(k: int) -> bool:
        return text in tokenizer.decode(ids[:k], skip_special_tokens=skip_special_tokens)

    if not text or not ids or not has(len(ids)):
        return None
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if has(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class PromptSplitter:
    """Finds where the templated prompt ends in a (prompt + answer) token sequence and the
    question text inside the prompt.

    The template is rendered around a probe question; the text before the probe is the prefix,
    the text after it the *marker* that ends every prompt. The prompt ends at the first token
    whose decoded prefix contains the marker (the first occurrence: a question that itself
    contains the marker, e.g. ``"\\nAnswer:"``, would be cut there).
    """

    PROBE = "\u2063obliviate-probe\u2063"

    def __init__(self, tokenizer: Any, template: PromptTemplate) -> None:
        if template.name == "raw":
            raise ValueError(
                "this wrapper needs to find the prompt inside scored sequences, which the 'raw' "
                "template does not mark; use the 'qa' or 'chat' template"
            )
        self.tokenizer = tokenizer
        self.template = template
        rendered = self._render(self.PROBE)
        self.prefix, _, self.marker = rendered.partition(self.PROBE)
        if not self.marker.strip():
            raise ValueError(
                f"template {template.name!r} renders no answer marker after the question"
            )

    def _render(self, question: str) -> str:
        if self.template.name == "chat":
            messages = []
            if self.template.system_prompt:
                messages.append({"role": "system", "content": self.template.system_prompt})
            messages.append({"role": "user", "content": question})
            return str(
                self.tokenizer.apply_chat_template(
                    messages,
                    tokenize=False,
                    add_generation_prompt=True,
                    date_string=self.template.date_string,
                )
            )
        return self.template.prompt_text(question)

    def prompt_len(self, ids: Sequence[int]) -> int:
        """Number of prompt tokens in ``ids`` (all of them when no marker is found)."""
        k = first_prefix_containing(self.tokenizer, ids, self.marker.rstrip())
        return len(ids) if k is None else k

    def question(self, prompt_ids: Sequence[int]) -> str:
        """The question text of a prompt's token ids (template prefix and marker removed)."""
        text = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)
        pre = self.prefix.strip()
        if pre and pre in text:
            text = text[text.index(pre) + len(pre) :]
        mark = self.marker.rstrip()
        if mark and mark in text:
            text = text[: text.rindex(mark)]
        for tok in (self.tokenizer.bos_token, self.tokenizer.eos_token, self.tokenizer.pad_token):
            if tok:
                text = text.replace(tok, "")
        return text.strip()


def real_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[tuple[int, list[int]]]:
    """Per row: (index of the first real token, the real token ids). Padding may be on either
    side; the real tokens of a row must be contiguous (what ``pad_batch`` produces)."""
    out: list[tuple[int, list[int]]] = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
        pos = [i for i, m in enumerate(mask) if m]
        if not pos:
            out.append((0, []))
            continue
        start, end = pos[0], pos[-1] + 1
        if end - start != len(pos):
            raise ValueError(
                "inference wrappers need contiguous attention masks (left or right padding)"
            )
        out.append((start, ids[start:end]))
    return out


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, side: str, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    from obliviate.data.collate import pad_batch

    b = pad_batch(rows, pad_id, side=side)
    return b["input_ids"].to(device), b["attention_mask"].to(device)


# ----------------------------------------------------------------------------- generation


def check_generate_args(do_sample: bool, num_beams: int = 1) -> None:
    if do_sample or num_beams != 1:
        raise ValueError("inference wrappers decode greedily only (do_sample=False, num_beams=1)")


# ----------------------------------------------------------------------------- the base class


class WrapperOutput(dict):
    """The minimal model output scoring needs: ``.logits`` (also ``out["logits"]``)."""

    @property
    def logits(self) -> torch.Tensor:
        return self["logits"]


class InferenceWrapper(torch.nn.Module):
    """A model-like object around a frozen base causal LM.

    Subclasses set ``kind`` (the :data:`obliviate.inference.WRAPPERS` name), implement
    ``forward``/``generate``, ``options()`` (JSON-able settings) and, when they hold more than
    the base model, ``_save_extra``/``_load_extra``.
    """

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line, shown by the registry
    paper: ClassVar[str] = ""

    def __init__(
        self,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate | None = None,
        base_path: str | None = None,
        save_base: str = "copy",
    ) -> None:
        super().__init__()
        if save_base not in ("copy", "path"):
            raise ValueError(f"save_base must be 'copy' or 'path', not {save_base!r}")
        if save_base == "path" and not base_path:
            raise ValueError("save_base='path' needs the folder the base model was loaded from")
        self.base = base
        self.tokenizer = tokenizer
        self.template = template or PromptTemplate()
        self.base_path = str(Path(base_path).resolve()) if base_path else None
        self.save_base = save_base
        self.config = getattr(base, "config", None)
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.base.eval()
        self.eval()

    # ---- what subclasses provide
    def options(self) -> dict[str, Any]:
        return {}

    def _save_extra(self, folder: Path) -> dict[str, Any]:
        """Write extra files; return what to add to the JSON spec."""
        return {}

    @classmethod
    def _build(
        cls,
        base: Any,
        tokenizer: Any,
        template: PromptTemplate,
        spec: dict[str, Any],
        folder: Path,
        base_path: str | None,
        save_base: str,
    ) -> InferenceWrapper:
        raise NotImplementedError

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {}

    # ---- shared behaviour
    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @property
    def pad_id(self) -> int:
        from obliviate.data.collate import pad_id_of

        return pad_id_of(self.tokenizer)

    def fingerprint(self) -> str:
        """Content hash of the wrapper: its kind, options, template, base model and extras."""
        from obliviate.models.loading import model_fingerprint

        doc = {
            "wrapper": self.kind,
            "options": self.options(),
            "template": asdict(self.template),
            "base": model_fingerprint(self.base),
            **self._fingerprint_extra(),
        }
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True, **_: Any) -> None:
        """Write the wrapper folder: the base model (copied to ``base/`` or referenced by its
        path), extra files, the tokenizer and, last, ``obliviate_wrapper.json``."""
        from obliviate.inference.wrapper_file import WRAPPER_FILE, WRAPPER_SCHEMA
        from obliviate.io import write_json

        if not safe_serialization:
            raise ValueError("wrappers are saved with safetensors only")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "schema": WRAPPER_SCHEMA,
            "wrapper": self.kind,
            "template": asdict(self.template),
            "base": save_model(
                self.base, self.tokenizer, folder, "base", self.save_base, self.base_path
            ),
            "options": self.options(),
        }
        spec.update(self._save_extra(folder))
        self.tokenizer.save_pretrained(folder)
        write_json(folder / WRAPPER_FILE, spec)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, spec: dict[str, Any] | None = None
    ) -> InferenceWrapper:
        from obliviate.inference.wrapper_file import WRAPPER_FILE
        from obliviate.io import read_json
        from obliviate.models.loading import load_tokenizer

        folder = Path(folder)
        spec = spec or read_json(folder / WRAPPER_FILE)
        template = PromptTemplate(**spec.get("template", {}))
        base, base_path = load_saved_model(folder, spec["base"], "base")
        tokenizer = load_tokenizer(str(folder))
        save_base = "path" if not spec["base"].get("copied", True) else "copy"
        return cls._build(base, tokenizer, template, spec, folder, base_path, save_base)


def save_model(
    model: Any, tokenizer: Any, folder: Path, name: str, mode: str, source: str | None
) -> dict[str, Any]:
    """Save ``model`` under ``folder/name`` (``mode="copy"``) or record ``source`` (``"path"``)."""
    from obliviate.models.loading import model_fingerprint

    if mode == "path" and source:
        return {"path": source, "copied": False, "fingerprint": model_fingerprint(source)}
    target = folder / name
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return {"path": name, "copied": True, "fingerprint": model_fingerprint(str(target))}


def load_saved_model(folder: Path, entry: dict[str, Any], what: str) -> tuple[Any, str]:
    """Load a model a wrapper spec names, checking it is the one the wrapper was saved with."""
    from obliviate.data.types import DataError
    from obliviate.models.loading import load_model, model_fingerprint

    if "path" not in entry:
        raise DataError(f"{folder}: the {what!r} entry of the wrapper file has no 'path'")
    p = Path(entry["path"])
    p = p if p.is_absolute() else folder / p
    if not p.is_dir():
        raise FileNotFoundError(f"{folder}: the {what} model folder {p} does not exist")
    expected = entry.get("fingerprint")
    if expected and model_fingerprint(str(p)) != expected:
        raise DataError(
            f"{folder}: the {what} model at {p} changed since the wrapper was saved (fingerprint "
            f"{model_fingerprint(str(p))} != {expected}); re-create the wrapper on the new model"
        )
    return load_model(str(p)), str(p)
