"""OpenUnlearning's evaluation logs: read one as an evaluation, write one from an evaluation.

OpenUnlearning (locuslab/open-unlearning, arXiv 2506.12618) writes, per evaluated model, a
fine-grained log ``<BENCH>_EVAL.json`` (``TOFU_EVAL.json``, ``MUSE_EVAL.json``) and a summary
``<BENCH>_SUMMARY.json``. The log maps each metric name to ``{"agg_value": number or null,
"value_by_index": {"<index>": {field: value, ...}}}``; membership-inference metrics hold
``{"forget": {"agg_value", "value_by_index": {i: {"score"}}}, "holdout": {...}, "auc",
"agg_value"}`` (``agg_value`` = the AUC); the summary maps each metric name to its
``agg_value``. Its forget quality reads the retain model's per-sample ``forget_truth_ratio``
(``value_by_index`` of ``{"score": tr}``) from such a log, its privleak the retain model's
``mia_min_k`` ``agg_value``.

:data:`ENTRIES` maps these names and fields to obliviate's metric names and ``samples.jsonl``
keys (the table in docs/run-format.md). :func:`read_log` turns a log into an
:class:`~obliviate.evaluation.EvalResult` (usable as the retain model's results:
:func:`check_reference`); :func:`to_log` / :func:`write_log` do the reverse. Where obliviate's
definition differs from OpenUnlearning's, the number is exported as obliviate computed it
(docs/metrics.md, "Where obliviate differs from the reference framework").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.data.types import DataError

SOURCE = "open-unlearning"
BENCHES = ("TOFU", "MUSE")

# (log field, samples.jsonl key) of each kind of per-sample value
_PROB = (("prob", "prob"), ("avg_loss", "nll"))
_SCORE_TR = (("score", "truth_ratio"),)
_ROUGE = (
    ("rougeL_recall", "rouge_l_recall"),
    ("rougeL_f1", "rouge_l_f1"),
    ("rouge1_recall", "rouge1_recall"),
    ("generation", "generation"),
    ("ground_truth", "answer"),
    ("input", "question"),
)
_TEXT = ("generation", "ground_truth", "input")


@dataclass(frozen=True)
class Entry:
    """One metric of a log: its name there (``ou``) and here (``ours``), the obliviate split
    whose samples hold its per-sample values (``split``; for an MIA metric the forget side,
    with ``holdout`` the other side) and the (log field, samples key) pairs (``fields``)."""

    ou: str
    ours: str
    split: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    holdout: str | None = None  # MIA metrics: the split of the non-members

    @property
    def mia(self) -> bool:
        return self.holdout is not None


def _mia(attack: str, forget: str = "forget", holdout: str = "holdout") -> Entry:
    return Entry(
        f"mia_{attack}", f"mia_{attack}_auc", forget, (("score", f"mia_{attack}"),), holdout
    )


def _utility_split(prefix: str, split: str) -> tuple[Entry, ...]:
    return (
        Entry(
            f"{prefix}_Q_A_Prob_normalised", f"{split}_prob", split, (("prob", "normalised_prob"),)
        ),
        Entry(f"{prefix}_Q_A_ROUGE", f"{split}_rouge", split, _ROUGE),
        Entry(f"{prefix}_Truth_Ratio", f"{split}_truth_ratio", split, _SCORE_TR),
    )


ENTRIES: dict[str, tuple[Entry, ...]] = {
    "TOFU": (
        Entry("forget_quality", "forget_quality"),
        Entry("model_utility", "model_utility"),
        Entry("privleak", "privleak"),
        Entry("forget_Q_A_Prob", "forget_prob", "forget", _PROB),
        Entry(
            "forget_Q_A_PARA_Prob",
            "forget_paraphrased_prob",
            "forget",
            (("prob", "paraphrased_prob"),),
        ),
        Entry("forget_truth_ratio", "forget_truth_ratio", "forget", _SCORE_TR),
        Entry("forget_Q_A_ROUGE", "forget_rouge", "forget", _ROUGE),
        Entry(
            "exact_memorization",
            "forget_exact_memorisation",
            "forget",
            (("score", "exact_memorisation"),),
        ),
        Entry(
            "extraction_strength",
            "forget_extraction_strength",
            "forget",
            (("score", "extraction_strength"),),
        ),
        Entry("retain_Q_A_Prob", "retain_prob", "retain", _PROB),
        Entry("retain_Q_A_ROUGE", "retain_rouge", "retain", _ROUGE),
        Entry("retain_Truth_Ratio", "retain_truth_ratio", "retain", _SCORE_TR),
        *_utility_split("ra", "real_authors"),
        *_utility_split("wf", "world_facts"),
        *(_mia(a) for a in ("loss", "zlib", "min_k", "min_k_plus_plus")),
        # no counterpart there (its forget_Q_A_PARA_ROUGE is another quantity): our own name
        Entry(
            "forget_paraphrased_rouge",
            "forget_paraphrased_rouge",
            "forget",
            (
                ("rougeL_recall", "paraphrased_rouge_l_recall"),
                ("generation", "paraphrased_generation"),
            ),
        ),
    ),
    "MUSE": (
        Entry("forget_verbmem_ROUGE", "forget_verbmem"),
        Entry("forget_knowmem_ROUGE", "forget_knowmem"),
        Entry("retain_knowmem_ROUGE", "retain_knowmem"),
        Entry("privleak", "privleak"),
        _mia("min_k", "privleak_forget", "privleak_holdout"),
    ),
}


def bench_of(benchmark: str | None, metrics: dict[str, Any]) -> str:
    """``"TOFU"`` or ``"MUSE"``: the log family of an obliviate evaluation (MUSE for the
    ``*muse*`` benchmarks, TOFU for the QA suite: ``tofu``, ``qa``, ...)."""
    if benchmark and "muse" in benchmark:
        return "MUSE"
    ours = {e.ours for e in ENTRIES["TOFU"]} - {"privleak", "forget_quality"}
    if ours & set(metrics):
        return "TOFU"
    raise ValueError(
        f"the open-unlearning format holds TOFU and MUSE evaluations; this is a "
        f"{benchmark or 'unknown'} evaluation with none of their metrics"
    )


# ----------------------------------------------------------------------------- export


def to_log(
    metrics: dict[str, dict[str, Any]], samples: list[dict[str, Any]], bench: str
) -> dict[str, Any]:
    """The ``<BENCH>_EVAL.json`` document of an evaluation (``metrics``: name ->
    ``{"value", ...}`` as in ``metrics.json``; ``samples``: the ``samples.jsonl`` rows).

    Every metric with a value is written: under its OpenUnlearning name when it has one
    (:data:`ENTRIES`), with ``value_by_index`` from the samples; under its own name otherwise,
    as ``{"agg_value": v}``."""
    entries = {e.ours: e for e in ENTRIES[bench]}
    by_split: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_split.setdefault(s["split"], []).append(s)
    out: dict[str, Any] = {}
    for name, rec in metrics.items():
        value = rec.get("value")
        if value is None:
            continue
        e = entries.get(name)
        if e is None:
            out[name] = {"agg_value": value}
        elif e.mia:
            sides = {
                side: _by_index(by_split.get(split or "", []), e.fields)
                for side, split in (("forget", e.split), ("holdout", e.holdout))
            }
            doc: dict[str, Any] = {
                side: {"agg_value": _mean_score(vbi), "value_by_index": vbi}
                for side, vbi in sides.items()
                if vbi
            }
            out[e.ou] = {**doc, "auc": value, "agg_value": value}
        else:
            vbi = _by_index(by_split.get(e.split or "", []), e.fields) if e.split else {}
            out[e.ou] = {"agg_value": value, **({"value_by_index": vbi} if vbi else {})}
    return dict(sorted(out.items()))


def _by_index(rows: list[dict[str, Any]], fields: tuple[tuple[str, str], ...]) -> dict:
    vbi = {}
    for r in rows:
        vals = {f: r[k] for f, k in fields if r.get(k) is not None}
        if vals:
            vbi[str(r["index"])] = vals
    return vbi


def _mean_score(vbi: dict[str, dict[str, Any]]) -> float:
    scores = [v["score"] for v in vbi.values() if v.get("score") is not None]
    return float(sum(scores) / len(scores)) if scores else math.nan


def summary_of(log: dict[str, Any]) -> dict[str, Any]:
    """``<BENCH>_SUMMARY.json``: each metric's ``agg_value`` (nulls left out, as there)."""
    return {k: v["agg_value"] for k, v in log.items() if v.get("agg_value") is not None}


def write_log(
    out_dir: str | Path,
    metrics: dict[str, dict[str, Any]],
    samples: list[dict[str, Any]],
    benchmark: str | None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``<BENCH>_EVAL.json`` and ``<BENCH>_SUMMARY.json`` into ``out_dir`` (atomically,
    both built before either is written); existing files are replaced only with
    ``overwrite``. Returns the two paths."""
    from obliviate.io import atomic_write_text

    bench = bench_of(benchmark, metrics)
    log = to_log(metrics, samples, bench)
    out_dir = Path(out_dir)
    paths = (out_dir / f"{bench}_EVAL.json", out_dir / f"{bench}_SUMMARY.json")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file; give a folder for the open-unlearning logs")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} already exists; pass --overwrite to replace it")
    texts = (json.dumps(log, indent=4), json.dumps(summary_of(log), indent=4))
    for path, text in zip(paths, texts):
        atomic_write_text(path, text + "\n")
    return paths


# ----------------------------------------------------------------------------- import


def log_path(path: str | Path) -> Path:
    """The log file itself, or the one ``*_EVAL.json`` of a folder (OpenUnlearning's output
    folder); a summary file is refused (it has no per-sample values)."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*_EVAL.json"))
        if len(found) != 1:
            what = "no *_EVAL.json" if not found else f"{len(found)} *_EVAL.json files"
            raise DataError(
                f"{p}: {what}; give the open-unlearning log file itself (e.g. {p}/TOFU_EVAL.json)"
            )
        return found[0]
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.name.endswith("_SUMMARY.json"):
        raise DataError(
            f"{p}: a summary holds aggregates only; give the per-sample log next to it "
            f"({p.name.replace('_SUMMARY', '_EVAL')})"
        )
    return p


def read_log(path: str | Path) -> Any:
    """An open-unlearning evaluation log as an :class:`~obliviate.evaluation.EvalResult`:
    ``metrics`` under obliviate's names, per-sample values as ``samples`` rows of the
    obliviate splits, ``key = {"imported": "open-unlearning", "file", "benchmark"}``. Metrics
    it does not know are left out; a malformed entry raises a :class:`DataError` naming the
    file, the metric and what is wrong."""
    from obliviate.evaluation import EvalResult
    from obliviate.runs import _read_json_file

    p = log_path(path)
    doc = _read_json_file(p)
    if not isinstance(doc, dict):
        raise DataError(f"{p}: expected a JSON object of metric name -> results")
    if doc and all(isinstance(v, (int, float)) or v is None for v in doc.values()):
        raise DataError(f"{p}: this is a summary (metric -> number), not a per-sample *_EVAL.json")
    bench = "MUSE" if p.name.startswith("MUSE") else "TOFU"
    entries = {e.ou: e for e in ENTRIES[bench]}
    result = EvalResult({}, [], {"imported": SOURCE, "file": str(p), "benchmark": bench})
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for name, raw in doc.items():
        e = entries.get(name)
        if e is None:
            if _known(name) and isinstance(raw, dict):  # one of ours, written by write_log
                _set_value(result, p, name, name, raw)
            continue
        where = f"{p}: {name}"
        if not isinstance(raw, dict):
            raise DataError(f"{where} must be an object with agg_value, got {json.dumps(raw)}")
        _set_value(result, p, name, e.ours, raw)
        sides: list[tuple[Any, str | None]] = []
        if e.mia:
            sides = [(raw.get("forget"), e.split), (raw.get("holdout"), e.holdout)]
        elif e.split and "value_by_index" in raw:
            sides = [(raw, e.split)]
        for side, split in sides:
            if side is None or split is None:
                continue
            if not isinstance(side, dict) or not isinstance(side.get("value_by_index"), dict):
                raise DataError(f"{where}: value_by_index must be an object of index -> values")
            _read_values(where, side["value_by_index"], split, e.fields, rows)
    if not result.metrics and not rows:
        raise DataError(
            f"{p}: none of the open-unlearning {bench} metrics (e.g. forget_truth_ratio, "
            "mia_min_k) found; give the *_EVAL.json an open-unlearning evaluation wrote"
        )
    order = {s: i for i, s in enumerate(("forget", "retain", "holdout", "real_authors"))}
    for split, index in sorted(rows, key=lambda k: (order.get(k[0], 9), k[0], k[1])):
        result.samples.append(rows[(split, index)])
    return result


def _known(name: str) -> bool:
    from obliviate.registry import METRICS

    return METRICS.find(name) is not None


def _set_value(result: Any, p: Path, name: str, ours: str, raw: dict[str, Any]) -> None:
    from obliviate.metrics import metric_result

    if "agg_value" not in raw:
        raise DataError(f"{p}: {name} has no agg_value")
    value = raw["agg_value"]
    if value is None:
        result.unavailable[ours] = f"agg_value is null in {p.name}"
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DataError(f"{p}: {name}.agg_value must be a number or null, got {json.dumps(value)}")
    result.metrics[ours] = metric_result(ours, float(value)).to_dict()


def _read_values(
    where: str,
    vbi: dict[str, Any],
    split: str,
    fields: tuple[tuple[str, str], ...],
    rows: dict[tuple[str, int], dict[str, Any]],
) -> None:
    for key, vals in vbi.items():
        try:
            index = int(key)
        except ValueError:
            raise DataError(f"{where}: value_by_index key {key!r} is not a sample index") from None
        if vals is None:
            continue
        if not isinstance(vals, dict):
            raise DataError(f"{where}: value_by_index[{key!r}] must be an object of values")
        row = rows.setdefault((split, index), {"split": split, "index": index})
        for field, ours in fields:
            v = vals.get(field)
            if v is None:
                continue
            ok = isinstance(v, str) if field in _TEXT else _is_number(v)
            if not ok:
                want = "a string" if field in _TEXT else "a number"
                raise DataError(
                    f"{where}: value_by_index[{key!r}].{field} must be {want}, got {json.dumps(v)}"
                )
            row[ours] = v if field in _TEXT else float(v)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# ----------------------------------------------------------------------------- as a reference


def is_imported(result: Any) -> bool:
    """Whether an evaluation was read from an open-unlearning log (:func:`read_log`)."""
    return isinstance(result.key, dict) and result.key.get("imported") == SOURCE


def check_reference(result: Any, reference: Any) -> None:
    """Check that an imported log can be the retain model's results for ``result``: the same
    number of forget (and holdout) samples; otherwise one sentence saying what differs.

    An imported log carries no evaluation key (template, data hash, settings), so the sample
    counts are all that can be checked: the user vouches for the rest (docs/run-format.md)."""
    where = reference.key.get("file", "the open-unlearning log")
    bench = reference.key.get("benchmark", "TOFU")
    useful = {"forget_truth_ratio", "mia_min_k_auc"}
    if not useful & set(reference.metrics) and not reference.column("forget", "truth_ratio"):
        raise ValueError(
            f"{where} has neither forget_truth_ratio nor mia_min_k, which forget quality and "
            "privleak need from the retain model; evaluate it with those metrics"
        )
    if bench != "TOFU":
        return
    for split, what in (("forget", "truth_ratio"), ("holdout", "mia_min_k")):
        theirs = [v for v in reference.column(split, what) if v is not None]
        ours = result.column(split, what)
        if theirs and ours and len(theirs) != len(ours):
            raise ValueError(
                f"{where} has {len(theirs)} {split} samples ({what}) but this evaluation has "
                f"{len(ours)}; give the log of the retain model evaluated on the same {split} split"
            )
