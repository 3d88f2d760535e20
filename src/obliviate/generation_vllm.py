"""The vLLM generation backend (``generation_backend=vllm``, extra ``obliviate[vllm]``).

vLLM's offline engine loads the evaluated model from its folder (``LLM(model=folder)``, in the
model's own dtype, without its tokenizer: prompts go in as token ids and the EOS id is a stop
token), decodes greedily (``SamplingParams(temperature=0)``) and returns token ids, which
:func:`obliviate.scoring.generate` decodes exactly as it decodes the other backends' ids. vLLM
needs a CUDA GPU; this backend is written against vLLM's documented offline API and checked
here against a stand-in module, not yet on a GPU (docs/metrics.md, "Generation").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obliviate.decoding import eos_ids

if TYPE_CHECKING:
    from obliviate.generation import GenerationJob

# one engine per (model folder, dtype): building one loads the weights and reserves GPU memory
_ENGINES: dict[tuple[str, str], Any] = {}


def model_folder(model: Any) -> str:
    """The folder the model was loaded from (vLLM loads its weights from there)."""
    path = getattr(model, "name_or_path", None) or getattr(
        getattr(model, "config", None), "_name_or_path", None
    )
    if not path or not (Path(str(path)) / "config.json").is_file():
        raise ValueError(
            "generation_backend=vllm loads the model from its folder, but this model was not "
            "loaded from a saved model folder; save it (save_pretrained) and evaluate that folder"
        )
    return str(path)


def _dtype_name(model: Any) -> str:
    dtype = getattr(model, "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else "auto"


def engine(model: Any) -> Any:
    """The vLLM ``LLM`` for ``model`` (built once per folder and dtype)."""
    try:
        import vllm
    except ImportError:
        raise ValueError(
            "generation_backend=vllm needs vLLM, which is not installed: pip install "
            "'obliviate[vllm]' (it runs on a CUDA GPU), or use generation_backend=auto"
        ) from None
    key = (model_folder(model), _dtype_name(model))
    if key not in _ENGINES:
        _ENGINES[key] = vllm.LLM(model=key[0], dtype=key[1], skip_tokenizer_init=True, seed=0)
    return _ENGINES[key]


def vllm_generate(
    model: Any, prompts: Sequence[Sequence[int]], job: GenerationJob
) -> list[list[int]]:
    """Greedy continuations of every prompt through vLLM, cut at the first EOS."""
    from obliviate.generation import cut_at_eos

    llm = engine(model)  # a clear error first when vLLM is missing
    import vllm

    params = vllm.SamplingParams(
        temperature=0.0,
        max_tokens=job.max_new_tokens,
        stop_token_ids=eos_ids(job.eos_token_id),
        detokenize=False,
    )
    requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
    outputs = llm.generate(requests, params, use_tqdm=job.progress)
    return [cut_at_eos(list(o.outputs[0].token_ids), job.eos_token_id) for o in outputs]
