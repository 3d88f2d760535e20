"""MUSE loaders (builtin, hub layout on disk, hub via a monkeypatched load_dataset), malformed
files, the built-in corpus and document chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obliviate.data import builtin_muse as B
from obliviate.data.muse import (
    MUSE_LAYOUT,
    chunk_ids,
    encode_documents,
    load_muse,
)
from obliviate.data.types import DataError, QAItem

N = 20  # people: 2 forget, 6 retain2, 12 retain1, 2 holdout


@pytest.fixture(scope="module")
def rows():
    return B.generate_builtin_muse(n_people=N)


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _write_folder(folder: Path, rows, skip=()) -> Path:
    for config, splits in rows.items():
        if config in skip:
            continue
        for split, rs in splits.items():
            _write_jsonl(folder / config / f"{split}.jsonl", rs)
    return folder


def _texts(items):
    return [(x.question, x.answer) for x in items]


# ----------------------------------------------------------------------------- built-in corpus


def test_builtin_layout_and_sizes(rows):
    assert {c: tuple(s) for c, s in rows.items()} == {
        "raw": ("forget", "retain1", "retain2", "holdout"),
        "verbmem": ("forget",),
        "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
        "privleak": ("forget", "holdout", "retain"),
        "scal": ("forget_1", "forget_2", "forget_3", "forget_4"),
        "sust": ("forget_1", "forget_2", "forget_3", "forget_4"),
    }
    raw = rows["raw"]
    # per group of k people: k profiles, then QUIZ_REPEATS shuffles of k quiz pages
    per = 1 + B.QUIZ_REPEATS
    assert [len(raw[s]) for s in ("forget", "retain1", "retain2", "holdout")] == [
        2 * per,
        12 * per,
        6 * per,
        2 * per,
    ]
    assert [len(rows["scal"][f"forget_{k}"]) for k in range(1, 5)] == [
        2 * per,
        4 * per,
        6 * per,
        8 * per,
    ]
    assert [len(rows["sust"][f"forget_{k}"]) for k in range(1, 5)] == [2 * per] * 4
    assert all(d["text"].startswith("A profile of ") for d in raw["forget"][:2])
    assert all(d["text"].startswith("Question: ") for d in raw["forget"][2:])
    n_facts = len(B.FACT_KINDS)
    assert len(rows["knowmem"]["forget_qa"]) == 2 * n_facts - 3  # minus 3 ICL examples
    assert len(rows["knowmem"]["retain_qa"]) == len(rows["knowmem"]["forget_qa"])
    assert len(rows["knowmem"]["forget_qa_icl"]) == 3


def test_builtin_splits_are_disjoint_and_nested(rows):
    texts = {s: {r["text"] for r in rs} for s, rs in rows["raw"].items()}
    for a in texts:
        for b in texts:
            if a < b:
                assert not texts[a] & texts[b], (a, b)
    sust = [[r["text"] for r in rows["sust"][f"forget_{k}"]] for k in range(1, 5)]
    scal = [[r["text"] for r in rows["scal"][f"forget_{k}"]] for k in range(1, 5)]
    assert sust[0] == [r["text"] for r in rows["raw"]["forget"]]
    for k in range(4):
        assert scal[k] == [t for fold in sust[: k + 1] for t in fold]  # growing, nested
    assert set(t for fold in sust[1:] for t in fold) == texts["retain2"]
    assert [r["text"] for r in rows["privleak"]["forget"]] == sust[0]
    assert {r["text"] for r in rows["privleak"]["holdout"]} == texts["holdout"]
    assert {r["text"] for r in rows["privleak"]["retain"]} <= texts["retain1"]


def test_builtin_knowledge_is_in_the_documents(rows):
    forget_docs = "\n".join(r["text"] for r in rows["raw"]["forget"])
    forget_set = {r["text"] for r in rows["raw"]["forget"]}
    retain_set = {r["text"] for r in rows["raw"]["retain1"]}
    forget_pages = [t for t in forget_set if t.startswith("Question: ")]
    retain_docs = "\n".join(retain_set)
    for qa in rows["knowmem"]["forget_qa"]:  # KnowMem asks the facts of the forget quiz pages
        pair = f"Question: {qa['question']}\nAnswer: {qa['answer']}\n\n"
        assert sum(page.count(pair) for page in forget_pages) == B.QUIZ_REPEATS
        assert pair not in retain_docs
    for qa in rows["knowmem"]["retain_qa"]:
        assert f"Question: {qa['question']}\nAnswer: {qa['answer']}\n\n" in retain_docs
    mcq = B.generate_builtin_wmdp(N)
    for row in mcq["forget"]:  # multiple-choice questions are never in a document
        assert row["question"] not in forget_docs
    icl = {(q["question"], q["answer"]) for q in rows["knowmem"]["forget_qa_icl"]}
    assert not icl & {(q["question"], q["answer"]) for q in rows["knowmem"]["forget_qa"]}
    for vm, doc in zip(rows["verbmem"]["forget"], rows["raw"]["forget"][:2]):
        assert doc["text"] == vm["prompt"] + " " + vm["gt"]
    # quiz pages: one person's worth of questions each, mixing the group's people, the answer
    # never next to the person's profile
    people, _ = B.builtin_people(N)
    names = [p.name for p in people[-2:]]
    assert all(page.count("Question: ") == len(B.FACT_KINDS) for page in forget_pages)
    assert any(all(n in page for n in names) for page in forget_pages)


def test_builtin_people_parse_every_fact():
    people, holdout = B.builtin_people(N)
    assert len(people) == N and len(holdout) == 2
    p = people[0]
    assert len(p.facts) == len(B.FACT_KINDS)
    for f in p.facts:
        assert p.name in f.sentence and f.value in f.sentence and f.value
        assert len(set(f.questions)) == len(f.questions) == 3
    jobs = [f.value for f in p.facts if f.kind in ("profession", "father_job", "mother_job")]
    assert all(not j.startswith(("a ", "an ")) for j in jobs)


def test_builtin_is_deterministic_and_validates():
    assert B.generate_builtin_muse(n_people=10) == B.generate_builtin_muse(n_people=10)
    assert B.generate_builtin_muse(n_people=10, seed=1) != B.generate_builtin_muse(n_people=10)
    with pytest.raises(ValueError, match="at least 5 people"):
        B.generate_builtin_muse(n_people=4)
    with pytest.raises(ValueError, match="n_icl"):
        B.generate_builtin_muse(n_people=10, n_icl=-1)


def test_builtin_small_corpus_icl_fallback():
    r = B.generate_builtin_muse(n_people=5, n_icl=3)  # one forget person: ICL from its facts
    assert len(r["knowmem"]["forget_qa_icl"]) == 3
    assert len(r["knowmem"]["forget_qa"]) == len(B.FACT_KINDS) - 3


def test_corpus_text_covers_holdout_and_choices():
    texts = set(B.builtin_muse_corpus_text(N))
    rows = B.generate_builtin_muse(N)
    assert {r["text"] for r in rows["raw"]["holdout"]} <= texts
    mcq = B.generate_builtin_wmdp(N)
    assert {c for r in mcq["forget"] for c in r["choices"]} <= texts


# ----------------------------------------------------------------------------- loaders


def test_load_builtin(rows):
    data = load_muse("builtin", n_people=N)
    assert data.name == "builtin-muse" and not data.missing
    assert [x.answer for x in data.forget] == [r["text"] for r in rows["raw"]["forget"]]
    assert all(x.is_document for x in data.forget + data.retain)
    assert _texts(data.verbmem) == [(r["prompt"], r["gt"]) for r in rows["verbmem"]["forget"]]
    assert len(data.scal) == len(data.sust) == 4
    req = data.request()
    assert req.forget == data.forget and req.retain == data.retain
    assert req.holdout == data.privleak["holdout"]
    assert data.request(data.sust[1]).forget == data.sust[1]


def test_folder_in_hub_layout_equals_builtin(tmp_path, rows):
    folder = _write_folder(tmp_path / "news", rows)
    data, ref = load_muse(folder), load_muse("builtin", n_people=N)
    assert data.name == "muse"
    for attr in ("forget", "retain", "verbmem"):
        assert _texts(getattr(data, attr)) == _texts(getattr(ref, attr))
    for split in MUSE_LAYOUT["knowmem"]:
        assert _texts(data.knowmem[split]) == _texts(ref.knowmem[split])
    assert [_texts(f) for f in data.scal] == [_texts(f) for f in ref.scal]
    assert data.forget[0].meta["split"] == "forget"


def test_folder_json_and_hub_parquet_shards(tmp_path, rows):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = _write_folder(tmp_path / "books", rows, skip=("scal", "sust", "knowmem"))
    # knowmem as JSON lists (the hub's *.json files) with the older retain2_* names
    km = folder / "knowmem"
    km.mkdir()
    for split, rs in rows["knowmem"].items():
        (km / f"{split.replace('retain_', 'retain2_')}.json").write_text(json.dumps(rs))
    # raw/forget as a hub parquet shard instead of JSONL
    (folder / "raw" / "forget.jsonl").unlink()
    pq.write_table(
        pa.Table.from_pylist(rows["raw"]["forget"]),
        folder / "raw" / "forget-00000-of-00001.parquet",
    )
    data = load_muse(folder)
    assert sorted(data.missing) == ["scal", "sust"]  # MUSE-Books has neither
    assert data.scal == [] and data.sust == []
    assert [x.answer for x in data.forget] == [r["text"] for r in rows["raw"]["forget"]]
    assert _texts(data.knowmem["retain_qa"]) == [
        (r["question"], r["answer"]) for r in rows["knowmem"]["retain_qa"]
    ]


def test_optional_splits_may_be_absent(tmp_path, rows):
    folder = _write_folder(tmp_path / "d", rows)
    for name in ("raw/retain2.jsonl", "raw/holdout.jsonl", "privleak/retain.jsonl"):
        (folder / name).unlink()
    data = load_muse(folder, configs=("raw", "privleak"))
    assert sorted(data.missing) == ["privleak/retain", "raw/holdout", "raw/retain2"]
    assert data.verbmem == [] and data.knowmem == {}


def test_missing_required_split_names_the_file(tmp_path, rows):
    folder = _write_folder(tmp_path / "d", rows)
    (folder / "verbmem" / "forget.jsonl").unlink()
    with pytest.raises(DataError, match=r"verbmem: missing forget\.jsonl"):
        load_muse(folder)
    (folder / "scal" / "forget_3.jsonl").unlink()  # a partial scal config is an error too
    with pytest.raises(DataError, match=r"scal: missing forget_3\.jsonl"):
        load_muse(folder, configs=("scal",))


@pytest.mark.parametrize(
    "line,match",
    [
        ({"prompt": "p"}, r"line 2: field 'gt' is missing \(fields present: 'prompt'\)"),
        ({"prompt": "p", "gt": "  "}, r"line 2: field 'gt' is empty"),
        ({"prompt": "p", "gt": ["x"]}, r"line 2: field 'gt' must be a string, got list"),
        ({"prompt": None, "gt": "g"}, r"line 2: field 'prompt' is null"),
        (["p", "g"], r"line 2: expected an object with 'prompt', 'gt', got list"),
    ],
)
def test_malformed_verbmem_rows(tmp_path, rows, line, match):
    folder = _write_folder(tmp_path / "d", rows)
    _write_jsonl(folder / "verbmem" / "forget.jsonl", [{"prompt": "a", "gt": "b"}, line])
    with pytest.raises(DataError, match=match) as err:
        load_muse(folder, configs=("verbmem",))
    assert "verbmem/forget.jsonl" in str(err.value)


def test_malformed_files(tmp_path, rows):
    folder = _write_folder(tmp_path / "d", rows)
    (folder / "raw" / "forget.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(DataError, match=r"forget\.jsonl: line 2: invalid JSON"):
        load_muse(folder, configs=("raw",))
    (folder / "raw" / "forget.jsonl").write_text('{"body": "a document"}\n')
    with pytest.raises(DataError, match=r"field 'text' is missing \(fields present: 'body'\)"):
        load_muse(folder, configs=("raw",))
    (folder / "raw" / "forget.jsonl").write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_muse(folder, configs=("raw",))
    (folder / "raw" / "forget.jsonl").unlink()
    (folder / "raw" / "forget.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"forget\.parquet: not a readable parquet file"):
        load_muse(folder, configs=("raw",))


def test_bad_sources_and_options(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_muse(str(tmp_path / "nowhere"))
    f = tmp_path / "x.jsonl"
    f.write_text("{}\n")
    with pytest.raises(DataError, match="is a file"):
        load_muse(str(f))
    with pytest.raises(ValueError, match="unknown MUSE config"):
        load_muse("builtin", configs=("raw", "verbmemory"))
    with pytest.raises(ValueError, match="only to source='builtin'"):
        load_muse(str(tmp_path), n_people=10)


class FakeHub:
    """Stands in for datasets.load_dataset: serves rows per (name, config, split)."""

    def __init__(self, rows, name="muse-bench/MUSE-News", fail=None):
        self.rows, self.name, self.fail, self.calls = rows, name, fail, []

    def __call__(self, name, config=None, split=None, revision=None, **kw):
        self.calls.append((name, config, split, revision))
        if self.fail:
            raise self.fail
        if name != self.name:
            raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")
        if config not in self.rows:
            raise ValueError(f"BuilderConfig '{config}' not found")
        if split not in self.rows[config]:
            raise ValueError(
                f'Unknown split "{split}". Should be one of {list(self.rows[config])}.'
            )
        return [dict(r) for r in self.rows[config][split]]


def test_hub_with_monkeypatched_load_dataset(monkeypatch, rows):
    import datasets

    hub = FakeHub({c: s for c, s in rows.items() if c not in ("scal", "sust")})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    data = load_muse("news", revision="abc123")
    assert data.name == "muse-news" and data.source == "muse-bench/MUSE-News"
    assert data.revision == "abc123" and sorted(data.missing) == ["scal", "sust"]
    assert ("muse-bench/MUSE-News", "verbmem", "forget", "abc123") in hub.calls
    assert _texts(data.verbmem) == [(r["prompt"], r["gt"]) for r in rows["verbmem"]["forget"]]


def test_hub_errors_are_clear(monkeypatch, rows):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", FakeHub(rows, fail=ConnectionError("offline")))
    with pytest.raises(DataError, match=r"could not load it \(ConnectionError: offline\)"):
        load_muse("muse-bench/MUSE-News")
    broken = {c: dict(s) for c, s in rows.items()}
    broken["knowmem"] = {k: v for k, v in rows["knowmem"].items() if k != "forget_qa"}
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(broken))
    with pytest.raises(DataError, match="config 'knowmem' has no split 'forget_qa'"):
        load_muse("news")
    bad = {c: dict(s) for c, s in rows.items()}
    bad["knowmem"] = dict(rows["knowmem"], forget_qa=[{"question": "q"}])
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(bad))
    with pytest.raises(DataError, match=r"knowmem/forget_qa: row 1: field 'answer' is missing"):
        load_muse("news", configs=("knowmem",))


# ----------------------------------------------------------------------------- chunking


def test_chunk_ids():
    assert chunk_ids([1, 2, 3, 4, 5, 6, 7], 3) == [[1, 2, 3], [4, 5, 6], [7]]
    assert chunk_ids([1, 2, 3], 3) == [[1, 2, 3]]
    assert chunk_ids([], 4) == []
    with pytest.raises(ValueError, match="window"):
        chunk_ids([1], 0)


@pytest.fixture(scope="module")
def tok():
    from obliviate.models.tiny import train_tokenizer

    return train_tokenizer(
        ["alpha beta gamma delta epsilon zeta eta theta", "Question: x?\nAnswer: y"], vocab_size=300
    )


def test_encode_documents_windows_without_round_trip(tok):
    text = "alpha beta gamma delta epsilon zeta eta theta alpha beta"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) >= 7
    enc = encode_documents(tok, [QAItem("", text), QAItem("", "gamma delta")], max_length=4)
    doc1 = [e for e in enc][: -(-len(ids) // 3)]
    # windows of 3 tokens + BOS (label -100); never longer than max_length
    assert all(len(e.input_ids) <= 4 and e.input_ids[0] == tok.bos_token_id for e in enc)
    assert all(e.labels[0] == -100 and e.labels[1:] == e.input_ids[1:] for e in enc)
    assert [t for e in doc1 for t in e.input_ids[1:]] == ids  # the exact token stream
    assert not any(e.has_eos for e in enc)
    # the second document starts a new window (documents never share one)
    second = tok("gamma delta", add_special_tokens=False)["input_ids"]
    assert enc[-1].input_ids == [tok.bos_token_id, *second]


def test_encode_documents_qa_items_and_limits(tok):
    from obliviate.data.templates import PromptTemplate, encode

    qa = QAItem("x?", "y")
    assert encode_documents(tok, [qa], 64)[0] == encode(tok, "x?", "y", PromptTemplate("qa"), 64)
    with pytest.raises(ValueError, match="no room"):
        encode_documents(tok, [QAItem("", "alpha")], max_length=1)
