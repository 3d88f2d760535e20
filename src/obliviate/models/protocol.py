"""What obliviate needs from a causal language model, as a typing :class:`~typing.Protocol`.

Hugging Face ``*ForCausalLM`` models, PEFT models, inference wrappers and the SISA ensemble all
satisfy it: scoring, training and decoding only call the model on token ids (optionally with a
KV cache) and read ``.logits`` / the returned cache; training also iterates ``.parameters()``,
switches ``.train()`` / ``.eval()`` mode and moves the model with ``.to()``.
Nothing checks it at run time: it documents signatures (``model: CausalLM``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class CausalLMOutput(Protocol):
    """A forward pass's result: next-token logits ``(B, T, V)`` and, with ``use_cache=True``,
    the KV cache to pass back (``past_key_values``; recent transformers also call it ``cache``)."""

    logits: Any
    past_key_values: Any


class CausalLM(Protocol):
    """A model called as ``model(input_ids=, attention_mask=, past_key_values=, use_cache=)``."""

    config: Any
    training: bool

    def __call__(
        self,
        input_ids: Any,
        attention_mask: Any = None,
        *,
        past_key_values: Any = None,
        use_cache: bool = False,
        **kwargs: Any,
    ) -> CausalLMOutput: ...

    def parameters(self) -> Iterator[Any]: ...

    def named_parameters(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Any]]: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...
