"""Contract between the evaluators and the metric catalogue (obliviate.metrics.catalogue).

Every metric name written to a real ``metrics.json`` by the TOFU, MUSE, WMDP, audit and
diffusion code resolves in :data:`obliviate.registry.METRICS`, with the catalogue's direction,
version and ideal; every catalogue entry is listed by ``obliviate ls metrics``. The run folders
are produced here by the real evaluators and writers on models (or scoring layers) whose
numbers take milliseconds: the direction of a name does not depend on the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from obliviate.metrics import DEFINITIONS, direction_of, metric_def
from obliviate.registry import METRICS
from obliviate.scoring import TokenScores

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def _check_recorded(path: Path) -> list[str]:
    """Assert every metric of a metrics.json is registered with its recorded direction,
    version and ideal; returns the names."""
    doc = json.loads(path.read_text())
    names = list(doc["metrics"])
    for name, m in doc["metrics"].items():
        assert name in METRICS, f"{path}: {name} is not registered"
        d = metric_def(name)
        assert m["direction"] == d.direction == direction_of(name), (path, name)
        assert m["version"] == d.version, (path, name)
        assert m.get("ideal") == d.ideal, (path, name)
    return names


# ----------------------------------------------------------------------------- TOFU


class UniformLM(torch.nn.Module):
    """All-zero logits: every token has probability 1/V; generation emits EOS at once."""

    def __init__(self, vocab: int, eos: int) -> None:
        super().__init__()
        self.vocab, self.eos = vocab, eos
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        return SimpleNamespace(logits=torch.zeros(b, t, self.vocab))

    def generate(self, input_ids, attention_mask=None, max_new_tokens=1, **kw):
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), self.eos)], 1)


@pytest.fixture(scope="module")
def tofu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TOFU evaluation (every split, reference metrics against itself) written by write_eval."""
    from obliviate.data.types import QAItem, UnlearningRequest
    from obliviate.evaluation import add_reference_metrics, evaluate_model
    from obliviate.models.tiny import train_tokenizer
    from obliviate.runs import write_eval

    tok = train_tokenizer(
        ["Question: Who is Ann?\nAnswer: Ann is a sailor from Paris."] * 4, vocab_size=300
    )

    def item(q: str, a: str) -> QAItem:
        return QAItem(
            q,
            a,
            paraphrased_answer=a + " indeed",
            perturbed_answers=(a + " not",),
            paraphrased_question=q + " exactly",
        )

    forget = [item("Who is Ann?", "Ann is a sailor."), item("Who is Bob?", "Bob is a baker.")]
    splits = {
        "forget": forget,
        "retain": [item("Who is Cid?", "Cid is a potter.")],
        "holdout": [
            QAItem("Who is Dee?", "Dee is a judge."),
            QAItem("Who is Eve?", "Eve is a pilot."),
        ],
        "real_authors": [item("Who wrote Emma?", "Jane Austen.")],
        "world_facts": [item("Capital of Peru?", "Lima.")],
    }
    req = UnlearningRequest(forget, splits["retain"], splits["holdout"], eval=splits)
    res = evaluate_model(UniformLM(len(tok), tok.eos_token_id), tok, req, progress=False)
    add_reference_metrics(res, res)
    out = tmp_path_factory.mktemp("tofu") / "run"
    write_eval(out, res, {"name": "run", "role": "unlearned"})
    return out


def test_tofu_metrics_json_matches_the_catalogue(tofu_run: Path) -> None:
    names = _check_recorded(tofu_run / "metrics.json")
    for name in (
        "forget_quality",
        "model_utility",
        "forget_paraphrased_prob",
        "privleak",
        "privleak_loss",
        "privleak_zlib",
        "privleak_min_k_plus_plus",
        "real_authors_truth_ratio",
        "world_facts_prob",
        "mia_min_k_plus_plus_auc",
    ):
        assert name in names


# ----------------------------------------------------------------------------- audit


def test_audit_metrics_json_matches_the_catalogue(tofu_run: Path) -> None:
    """The audit's headline metrics, merged into the TOFU run's metrics.json by write_audit."""
    from obliviate.audits.mia_suite import ATTACKS
    from obliviate.audits.report import write_audit
    from obliviate.audits.runner import AuditResult, AuditSettings, make_row

    rows = [
        make_row(
            a,
            m,
            4,
            0.9,
            0.1,
            0.2,
            target_attacked=None,
            retain_attacked=0.3,
            unlearned_attacked=0.5,
        )
        for a, m in (("relearn", "prob"), ("quant4", "rouge"), ("probe", "auc"))
    ]
    aucs = {a: 0.7 for a in ATTACKS}
    mia = {"unlearned": {"auc": aucs, "privleak": {a: -40.0 for a in ATTACKS}}}
    flu = {
        "unlearned": {
            "forget": {
                "perplexity": 3.0,
                "repetition_rate": 0.1,
                "unique_token_ratio": 0.8,
                "n_texts": 2,
                "n_empty": 0,
                "n_short": 0,
                "ngram": 4,
            }
        }
    }
    result = AuditResult(
        rows=rows,
        mia=mia,
        fluency=flu,
        jailbreak_templates={},
        skipped={},
        settings=vars(AuditSettings()).copy(),
        info={"benchmark": "builtin-tofu", "split": "forget10", "models": {}},
    )
    write_audit(tofu_run, result)
    names = _check_recorded(tofu_run / "metrics.json")
    for name in (
        "audit_relearn_prob_recoverability",
        "audit_probe_auc_recoverability",
        "mia_gradnorm_auc",
        "mia_reference_auc",
        "privleak_gradnorm",
        "privleak_reference",
        "fluency_forget_perplexity",
        "fluency_forget_repetition_rate",
        "fluency_forget_unique_token_ratio",
    ):
        assert name in names


# ----------------------------------------------------------------------------- MUSE and WMDP


class _WordTok:
    def __call__(self, text, add_special_tokens=False, verbose=False):
        return {"input_ids": list(range(len(text.split())))}


@pytest.fixture
def fake_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scoring layer answers from a table: the evaluators' own code does the rest."""
    from obliviate import scoring

    def generate(model, tok, questions, template, **kw):
        return ["Paris" for _ in questions]

    def score_pairs(model, tok, pairs, template, **kw):
        out = []
        for i, (_, a) in enumerate(pairs):
            lp = np.array([-1.0 - (len(a) + i) % 3, -2.0, -0.5, -9.0])
            out.append(TokenScores(lp, np.zeros(4, bool), np.zeros(4), np.ones(4), True))
        return out

    monkeypatch.setattr(scoring, "generate", generate)
    monkeypatch.setattr(scoring, "score_pairs", score_pairs)


def test_muse_metrics_json_matches_the_catalogue(fake_scoring: None, tmp_path: Path) -> None:
    from obliviate.benchmarks import muse as M
    from obliviate.benchmarks.wmdp import evaluate_mcq
    from obliviate.data.muse import MuseData
    from obliviate.data.types import QAItem
    from obliviate.data.wmdp import load_wmdp
    from obliviate.runs import write_eval

    def doc(text: str) -> QAItem:
        return QAItem("", text)

    data = MuseData(
        name="muse",
        source="test",
        raw={"forget": [doc("f1")]},
        verbmem=[QAItem("prompt one", "w1 w2 w3")],
        knowmem={
            "forget_qa": [QAItem("Where?", "Paris")],
            "forget_qa_icl": [],
            "retain_qa": [QAItem("What?", "tea")],
            "retain_qa_icl": [],
        },
        privleak={"forget": [doc("pf1 a"), doc("pf2")], "holdout": [doc("ph1"), doc("ph2 b c")]},
    )
    res = M.evaluate_muse(object(), _WordTok(), data)
    M.add_privleak(res, res)
    # the built-in MUSE run adds the WMDP-style accuracies as extra columns (run_muse)
    mcq = {k: v[:2] for k, v in load_wmdp("builtin", n_people=8).items()}
    acc = evaluate_mcq(object(), None, mcq, mode="cloze")
    M._set(res, {f"wmdp_{n}_accuracy": acc.metrics[f"{n}_accuracy"]["value"] for n in mcq})
    write_eval(tmp_path / "muse", res, {"name": "muse", "role": "unlearned"})
    names = _check_recorded(tmp_path / "muse" / "metrics.json")
    assert {
        "forget_verbmem",
        "forget_knowmem",
        "retain_knowmem",
        "mia_min_k_auc",
        "privleak",
        "wmdp_forget_accuracy",
        "wmdp_retain_accuracy",
    } <= set(names)
    # one definition for TOFU's and MUSE's Min-K% AUC: lower, with the retain level 0.5 as ideal
    m = json.loads((tmp_path / "muse" / "metrics.json").read_text())["metrics"]
    assert m["mia_min_k_auc"]["direction"] == "lower" and m["mia_min_k_auc"]["ideal"] == 0.5


def test_wmdp_metrics_json_matches_the_catalogue(fake_scoring: None, tmp_path: Path) -> None:
    from obliviate.benchmarks.wmdp import evaluate_mcq
    from obliviate.data.wmdp import MCQItem
    from obliviate.runs import write_eval

    q = MCQItem("Which is a noble gas?", ("Neon", "Iron", "Salt", "Wood"), 0)
    sets = {
        "wmdp-bio": [q],
        "wmdp-cyber": [q],
        "wmdp-chem": [q],
        "forget": [q],
        "retain": [q],
        "mmlu": [q],
        "mmlu-law": [q],
        "my-retain": [q],
        "my-set": [q],
    }
    res = evaluate_mcq(object(), None, sets, mode="cloze")
    write_eval(tmp_path / "wmdp", res, {"name": "wmdp", "role": "unlearned"})
    names = _check_recorded(tmp_path / "wmdp" / "metrics.json")
    assert len(names) == 2 * len(sets)
    want = {
        "wmdp_bio": "lower",
        "wmdp_cyber": "lower",
        "wmdp_chem": "lower",
        "forget": "lower",
        "retain": "higher",
        "mmlu": "higher",
        "mmlu_law": "higher",
        "my_retain": "higher",
        "my_set": "lower",
    }
    for key, direction in want.items():
        assert res.metrics[f"{key}_accuracy"]["direction"] == direction
        assert res.metrics[f"{key}_accuracy_norm"]["direction"] == direction


# ----------------------------------------------------------------------------- diffusion


class _Judge:
    """A judge stand-in: fixed pseudo-random class probabilities and 4-d features."""

    fingerprint = "contract-judge"

    def __init__(self) -> None:
        from obliviate.diffusion.shapes import ShapesSpec

        self.spec = ShapesSpec()

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(images.shape[0])
        n = images.shape[0]
        return {
            "shape": torch.rand(n, len(self.spec.shapes), generator=g),
            "colour": torch.rand(n, len(self.spec.colours), generator=g),
            "features": torch.randn(n, 4, generator=g),
        }


def test_diffusion_metrics_json_matches_the_catalogue(tmp_path: Path) -> None:
    from obliviate.diffusion.evaluate import EvalConfig, evaluate_builtin

    judge = _Judge()
    spec = judge.spec
    images = torch.rand(
        len(spec.prompts()), 2, 3, spec.size, spec.size, generator=torch.Generator().manual_seed(0)
    )
    res = evaluate_builtin(None, judge, spec.colours[0], EvalConfig(real_images=24), images)
    (tmp_path / "metrics.json").write_text(json.dumps({"metrics": res.metrics}))
    names = _check_recorded(tmp_path / "metrics.json")
    assert {
        "unlearning_accuracy",
        "in_domain_retain_accuracy",
        "cross_domain_retain_accuracy",
        "fid",
        "kid",
    } <= set(names)


# ----------------------------------------------------------------------------- committed runs


@pytest.mark.parametrize(
    "path",
    sorted(FIXTURE_RUNS.glob("*/*/metrics.json")),
    ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}",
)
def test_committed_run_folders_resolve_in_the_catalogue(path: Path) -> None:
    """The committed run folders (written before the catalogue) name registered metrics with
    the catalogue's direction, except MIA AUCs recorded as "zero" without an ideal: reports
    leave those unranked instead of calling 0 the best AUC (reporting.tables.goal_of)."""
    from obliviate.reporting.tables import goal_of
    from obliviate.runs import load_run

    doc = json.loads(path.read_text())
    run = load_run(path.parent)
    for name, m in doc["metrics"].items():
        d = metric_def(name)
        if m["direction"] != d.direction:
            assert d.ideal is not None and "ideal" not in m and m["direction"] == "zero", name
            assert goal_of([run], name) is None
        else:
            assert m.get("ideal", d.ideal) == d.ideal, name


# ----------------------------------------------------------------------------- obliviate ls


def test_every_catalogue_entry_is_listed_by_ls_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    from obliviate.cli import main

    assert main(["ls", "metrics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"metrics ({len(DEFINITIONS)}):")
    listed = {line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")}
    assert listed == {d.name for d in DEFINITIONS}
    for d in DEFINITIONS:
        line = next(x for x in out.splitlines() if x.split()[:1] == [d.name])
        assert f"({d.direction}" in line and d.paper in line
    assert main(["ls", "metrics", "mia_min_k_auc"]) == 0
    detail = capsys.readouterr().out
    assert "direction: lower (ideal 0.5)" in detail and "inputs: token_scores" in detail
