"""Benchmarks: importing this package registers each one in :data:`obliviate.registry.BENCHMARKS`.

An entry is a :class:`BenchmarkSpec`: where its data comes from by default (``data``: a hub
name, ``"builtin"`` for a generator, or the user's files), its default forget split, the
*suite* that loads a request and evaluates a model on it
(:mod:`obliviate.benchmarks.suites`: TOFU's metric suite, MUSE's, multiple choice), the metric
names it reports with their directions, and the command that runs it. ``obliviate eval``,
``obliviate unlearn``, ``obliviate benchmark`` and :mod:`obliviate.api` take ``--benchmark NAME``
and go through :meth:`BenchmarkSpec.build`, so adding a benchmark is one entry here (plus its
suite builder when no existing family fits). Nothing heavy is imported here: loaders, suites
and evaluators are resolved on use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obliviate.registry import BENCHMARKS


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    paper: str
    loader: str  # "module:function"
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    evaluator: str = ""  # "module:function"
    metrics: tuple[str, ...] = ()  # headline metric names (directions: the catalogue)
    command: str = ""
    needs_network: bool = False
    suite: str = ""  # "module:function" building the Suite (obliviate.benchmarks.suites)
    data: str | None = "builtin"  # default source; None: the user's files (--forget ...)
    split: str = "forget"  # default forget split
    fixed_data: bool = False  # the source cannot be changed (a built-in generator)
    model_kind: str = "text"  # the models it evaluates: text or vision-language (model_kinds)

    def resolve_data(self, data: str | None) -> str | None:
        """``data`` or this entry's default source; a fixed source cannot be replaced."""
        if data is None or data == self.data:
            return self.data
        if self.fixed_data:
            raise ValueError(
                f"benchmark {self.name!r} is generated (--data {self.data}); it "
                f"cannot read {data!r}: choose another benchmark for that source "
                "(obliviate ls benchmarks)"
            )
        return data

    def build(self, data: str | None = None, split: str | None = None, **kwargs: Any) -> Any:
        """The loaded :class:`~obliviate.benchmarks.suites.Suite` (request + metric suite).

        ``kwargs``: ``forget``, ``retain``, ``holdout`` (the user's files), ``builtin``
        (generator options), ``settings`` (evaluation settings), ``template``, ``revision``."""
        suite = _resolve(self.suite)(self, self.resolve_data(data), split or self.split, **kwargs)
        suite.model_kind = self.model_kind
        return suite

    def load(self, **kwargs: Any) -> Any:
        """The benchmark's data (``loader(**loader_kwargs, **kwargs)``)."""
        return _resolve(self.loader)(**{**self.loader_kwargs, **kwargs})

    def evaluator_fn(self) -> Callable[..., Any]:
        return _resolve(self.evaluator)


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_TOFU_PAPER = "Maini+ 2024, arXiv 2401.06121 (TOFU)"
_MUSE_PAPER = "Shi+ 2024, arXiv 2407.06460 (MUSE)"
_WMDP_PAPER = "Li+ 2024, arXiv 2403.03218 (WMDP)"
# the scenario entries' metrics (defined in obliviate.metrics.scenario_defs; importing the
# metrics package here would load numpy, and `obliviate ls benchmarks` must stay cheap)
TRUTHFULQA_METRICS = ("truthfulqa_mc1", "truthfulqa_mc2")
COUNTERFACT_METRICS = tuple(
    f"counterfact_{m}"
    for m in (
        "efficacy_score",
        "efficacy_magnitude",
        "paraphrase_score",
        "paraphrase_magnitude",
        "neighborhood_score",
        "neighborhood_magnitude",
        "true_prob",
    )
)
HARM_METRICS = ("harmful_rate",)
ZSRE_METRICS = ("zsre_efficacy", "zsre_paraphrase", "zsre_specificity", "zsre_true_accuracy")
_MUSE_METRICS = ("forget_verbmem", "forget_knowmem", "privleak", "retain_knowmem", "mia_min_k_auc")
_TOFU_METRICS = (
    "forget_quality",
    "model_utility",
    "forget_rouge",
    "forget_prob",
    "retain_rouge",
    "privleak",
)
_SUITES = "obliviate.benchmarks.suites"


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    """Register ``spec`` in :data:`obliviate.registry.BENCHMARKS` under its name (the entries
    below; a plugin registers its own the same way, docs/contributing.md)."""
    BENCHMARKS.register(
        spec.name,
        spec,
        description=spec.description,
        paper=spec.paper,
        metrics=spec.metrics,
        needs_network=spec.needs_network,
    )
    return spec


register_benchmark(
    BenchmarkSpec(
        "tofu",
        "TOFU fictitious authors QA: built-in generator (default), a folder of <config>.jsonl "
        "files or locuslab/TOFU",
        _TOFU_PAPER,
        "obliviate.data.tofu:load_tofu",
        {"source": "builtin"},
        "obliviate.evaluation:evaluate_model",
        _TOFU_METRICS,
        "obliviate benchmark --benchmark tofu --data locuslab/TOFU --split forget10",
        suite=f"{_SUITES}:build_tofu",
        split="forget10",
    )
)
register_benchmark(
    BenchmarkSpec(
        "qa",
        "your own QA files (--forget, --retain, --holdout: JSON, JSONL, CSV), TOFU metrics",
        _TOFU_PAPER,
        "obliviate.data.files:make_request",
        {},
        "obliviate.evaluation:evaluate_model",
        ("forget_rouge", "forget_prob", "retain_rouge"),
        "obliviate eval --benchmark qa --forget forget.jsonl --retain retain.jsonl --model RUN",
        suite=f"{_SUITES}:build_qa",
        data=None,
    )
)
register_benchmark(
    BenchmarkSpec(
        "documents",
        "your own plain documents (.txt files or a jsonl with 'text'): VerbMem, "
        "PrivLeak, perplexity",
        _MUSE_PAPER,
        "obliviate.benchmarks.suites:build_documents",
        {},
        "obliviate.benchmarks.muse:evaluate_muse",
        ("forget_verbmem", "forget_perplexity", "retain_perplexity", "mia_min_k_auc", "privleak"),
        "obliviate eval --benchmark documents --forget docs/ --retain keep/ --model RUN",
        suite=f"{_SUITES}:build_documents",
        data=None,
    )
)

for _name, _source, _what in (
    (
        "builtin-muse",
        "builtin",
        "MUSE-shaped corpus about the built-in fictitious people (offline)",
    ),
    ("muse-news", "news", "MUSE-News (BBC news articles): six-way evaluation"),
    ("muse-books", "books", "MUSE-Books (Harry Potter): C1-C4 (the hub has no scal/sust folds)"),
):
    register_benchmark(
        BenchmarkSpec(
            _name,
            _what,
            _MUSE_PAPER,
            "obliviate.data.muse:load_muse",
            {"source": _source},
            "obliviate.benchmarks.muse:evaluate_muse",
            _MUSE_METRICS,
            f"obliviate benchmark --benchmark {_name}",
            needs_network=_source != "builtin",
            suite=f"{_SUITES}:build_muse",
            data=_source,
            fixed_data=_source == "builtin",
        )
    )
register_benchmark(
    BenchmarkSpec(
        "muse",
        "MUSE from the source given by --data: builtin (default, offline), news, books, or a "
        "folder in the hub layout",
        _MUSE_PAPER,
        "obliviate.data.muse:load_muse",
        {"source": "builtin"},
        "obliviate.benchmarks.muse:evaluate_muse",
        _MUSE_METRICS,
        "obliviate eval --benchmark muse --data news --model RUN",
        suite=f"{_SUITES}:build_muse",
        data="builtin",
    )
)

register_benchmark(
    BenchmarkSpec(
        "builtin-wmdp",
        "WMDP-style multiple choice about the built-in people (forget / retain)",
        _WMDP_PAPER,
        "obliviate.data.wmdp:load_wmdp",
        {"source": "builtin"},
        "obliviate.benchmarks.wmdp:evaluate_mcq",
        ("forget_accuracy", "retain_accuracy"),
        "obliviate eval --benchmark builtin-wmdp --model RUN",
        suite="obliviate.benchmarks.mcq:build_mcq",
        fixed_data=True,
    )
)
register_benchmark(
    BenchmarkSpec(
        "wmdp",
        "WMDP hazardous-knowledge multiple choice (bio, cyber, chem) or your MCQ file; "
        "chance is 0.25",
        _WMDP_PAPER,
        "obliviate.data.wmdp:load_wmdp",
        {"source": "cais/wmdp"},
        "obliviate.benchmarks.wmdp:evaluate_mcq",
        ("wmdp_bio_accuracy", "wmdp_cyber_accuracy", "wmdp_chem_accuracy"),
        "obliviate eval --benchmark wmdp --data cais/wmdp --model MODEL",
        needs_network=True,
        suite="obliviate.benchmarks.mcq:build_mcq",
        data="cais/wmdp",
        split="test",
    )
)

_TQA = "obliviate.benchmarks.truthfulqa"
_CF = "obliviate.benchmarks.counterfact"
_TQA_PAPER = "Lin+ 2022, arXiv 2109.07958 (TruthfulQA)"
_CF_PAPER = "Meng+ 2022, arXiv 2202.05262 (ROME, CounterFact)"
_ZSRE_PAPER = "Levy+ 2017, arXiv 1706.04115 (zsRE); De Cao+ 2021, arXiv 2104.08164"
for _name, _source, _what in (
    ("truthfulqa", "truthfulqa/truthful_qa", "TruthfulQA MC1/MC2 (hub or a file of its rows)"),
    ("builtin-truthfulqa", "builtin", "TruthfulQA-shaped questions about the built-in people"),
):
    register_benchmark(
        BenchmarkSpec(
            _name,
            f"{_what}; evaluation only: a truthfulness check after unlearning",
            _TQA_PAPER,
            "obliviate.data.truthfulqa:load_truthfulqa",
            {"source": _source},
            f"{_TQA}:evaluate_truthfulqa",
            TRUTHFULQA_METRICS,
            f"obliviate eval --benchmark {_name} --model RUN",
            needs_network=_source != "builtin",
            suite=f"{_TQA}:build_truthfulqa",
            data=_source,
            split="validation",
            fixed_data=_source == "builtin",
        )
    )
_EDIT_ENTRIES: tuple[tuple[str, str | None, str, str, str, str, tuple[str, ...]], ...] = (
    (
        "counterfact",
        "azhx/counterfact",
        "train",
        "counterfact",
        "CounterFact fact rewrites (hub or a file of its rows); forget = the rewritten facts",
        _CF_PAPER,
        COUNTERFACT_METRICS,
    ),
    (
        "builtin-counterfact",
        "builtin",
        "forget10",
        "counterfact",
        "CounterFact-shaped rewrites of the built-in forget people's facts",
        _CF_PAPER,
        COUNTERFACT_METRICS,
    ),
    (
        "zsre",
        None,
        "eval",
        "zsre",
        "zsRE question edits from a local file (--data FILE, MEND/ROME eval shape)",
        _ZSRE_PAPER,
        ZSRE_METRICS,
    ),
)
for _name, _src, _split, _kind, _what, _paper, _metrics in _EDIT_ENTRIES:
    register_benchmark(
        BenchmarkSpec(
            _name,
            _what,
            _paper,
            "obliviate.data.counterfact:load_edit_records",
            {"source": _src, "kind": _kind} if _src else {"kind": _kind},
            f"{_CF}:evaluate_edits",
            _metrics,
            f"obliviate eval --benchmark {_name} --model RUN"
            + (" --data zsre_mend_eval.json" if _src is None else ""),
            needs_network=_src not in ("builtin", None),
            suite=f"{_CF}:build_edits",
            data=_src,
            split=_split,
            fixed_data=_src == "builtin",
        )
    )

_HARM_PAPER = (
    "Ji+ 2024, arXiv 2406.15513 (PKU-SafeRLHF); Yao+ 2023, arXiv 2310.10683 (harmful rate)"
)
for _name, _source, _what in (
    (
        "pku-saferlhf",
        "PKU-Alignment/PKU-SafeRLHF",
        "PKU-SafeRLHF harmful responses (hub or a folder of train/test files); judge: "
        "--set classifier=HUB_NAME_OR_FOLDER or llm_judge=FOLDER",
    ),
    (
        "builtin-harm",
        "builtin",
        "PKU-SafeRLHF-shaped harmful and benign requests about invented people (built-in judge)",
    ),
):
    register_benchmark(
        BenchmarkSpec(
            _name,
            f"{_what}; forget = the unsafe responses, harmful rate on held-out prompts",
            _HARM_PAPER,
            "obliviate.data.harm:load_harm_rows",
            {"source": _source},
            "obliviate.benchmarks.harm:evaluate_harm",
            HARM_METRICS,
            f"obliviate eval --benchmark {_name} --model RUN"
            + (
                " --set classifier=CLASSIFIER --set harmful_label=unsafe"
                if _source != "builtin"
                else ""
            ),
            needs_network=_source != "builtin",
            suite="obliviate.benchmarks.harm:build_harm",
            data=_source,
            split="train",
            fixed_data=_source == "builtin",
        )
    )
register_benchmark(
    BenchmarkSpec(
        "lm-eval",
        "any lm-evaluation-harness task (--set tasks=mmlu,... ; include_path=FOLDER for your "
        "own task files) on the model in memory; evaluation only, extra obliviate[lm-eval]",
        "Gao+ 2024, arXiv 2405.14782 (lm-evaluation-harness)",
        "obliviate.benchmarks.harness:run_lm_eval",
        {},
        "obliviate.benchmarks.harness:run_lm_eval",
        (),
        "obliviate eval --benchmark lm-eval --set tasks=mmlu --set limit=20 --model RUN",
        suite="obliviate.benchmarks.harness:build_lm_eval",
        data=None,
        split="test",
    )
)


_MLLMU_PAPER = "Liu+ 2024, arXiv 2410.22108 (MLLMU-Bench)"
# MCQ accuracy, ROUGE-L and cloze accuracy per set and mode (docs/multimodal.md; the catalogue's
# <set>_<mode>_<task> entries): the headline ones
_MLLMU_METRICS = (
    "forget_image_mcq_acc",
    "forget_text_mcq_acc",
    "test_image_mcq_acc",
    "retain_image_mcq_acc",
    "real_image_mcq_acc",
)
register_benchmark(
    BenchmarkSpec(
        "builtin-mllmu",
        "fictitious people with synthetic portraits, asked with and without the image "
        "(MLLMU-Bench-shaped, offline; vision-language models)",
        _MLLMU_PAPER,
        "obliviate.multimodal.people:generate_people",
        {},
        "obliviate.multimodal.evaluate:evaluate_sets",
        _MLLMU_METRICS,
        "obliviate eval --benchmark builtin-mllmu --model runs/demo-multimodal/target",
        suite="obliviate.multimodal.suite:build_mllmu",
        data="builtin",
        split="forget10",
        fixed_data=True,
        model_kind="vision-language",
    )
)
register_benchmark(
    BenchmarkSpec(
        "mllmu",
        "MLLMU-Bench: 500 fictitious profiles with portraits + 153 celebrities, forget 5/10/15 % "
        "(hub MLLMMU/MLLMU-Bench or a local copy; vision-language models)",
        _MLLMU_PAPER,
        "obliviate.multimodal.mllmu:load_mllmu",
        {},
        "obliviate.multimodal.evaluate:evaluate_sets",
        _MLLMU_METRICS,
        "obliviate eval --benchmark mllmu --data MLLMMU/MLLMU-Bench --model MODEL",
        needs_network=True,
        suite="obliviate.multimodal.suite:build_mllmu",
        data="MLLMMU/MLLMU-Bench",
        split="forget10",
        model_kind="vision-language",
    )
)


def get_benchmark(name: str) -> BenchmarkSpec:
    """The registered entry ``name`` (an unknown name is one sentence with did-you-mean)."""
    return BENCHMARKS.get(name)


def default_benchmark(forget: Any = None) -> str:
    """The entry used when none is named: ``qa`` for the user's files, else ``tofu``."""
    return "qa" if forget is not None else "tofu"
