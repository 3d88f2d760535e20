"""Users' own QA files: every format, the optional columns, and every malformed-input error."""

from __future__ import annotations

import json

import pytest

from obliviate.data.files import load_qa_file, make_request, parse_qa_row
from obliviate.data.types import DataError, QAItem


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


ROWS = [
    {"question": "Who wrote X?", "answer": "Ann wrote X."},
    {
        "question": "Where is Y?",
        "answer": "Y is in Z.",
        "paraphrased_answer": "Z holds Y.",
        "perturbed_answer": ["Y is in A.", "Y is in B."],
        "paraphrased_question": "Y lies where?",
    },
]


def check_rows(items):
    assert [(x.question, x.answer) for x in items] == [
        ("Who wrote X?", "Ann wrote X."),
        ("Where is Y?", "Y is in Z."),
    ]
    assert items[0].paraphrased_answer is None and items[0].perturbed_answers == ()
    assert items[1].paraphrased_answer == "Z holds Y."
    assert items[1].perturbed_answers == ("Y is in A.", "Y is in B.")
    assert items[1].paraphrased_question == "Y lies where?"


# --- formats ---------------------------------------------------------------------------------


def test_jsonl(tmp_path):
    path = write(
        tmp_path / "f.jsonl",
        "\n".join(json.dumps(r) for r in ROWS[:1]) + "\n\n" + json.dumps(ROWS[1]) + "\n",
    )
    items = load_qa_file(path)
    check_rows(items)
    assert items[1].meta == {"source": str(path), "row": "line 3"}  # blank line counted


def test_json_list_and_data_object(tmp_path):
    check_rows(load_qa_file(write(tmp_path / "a.json", json.dumps(ROWS))))
    check_rows(load_qa_file(write(tmp_path / "b.JSON", json.dumps({"data": ROWS}))))


def test_csv_with_json_list_cell(tmp_path):
    text = (
        "question,answer,paraphrased_answer,perturbed_answer,paraphrased_question\n"
        "Who wrote X?,Ann wrote X.,,,\n"
        '"Where is Y?","Y is in Z.","Z holds Y.",'
        '"[""Y is in A."", ""Y is in B.""]","Y lies where?"\n'
    )
    check_rows(load_qa_file(write(tmp_path / "f.csv", text)))


def test_csv_bom_custom_keys_and_single_perturbed(tmp_path):
    text = "\ufeffprompt,target,perturbed_answer\nHi?,Hello, there.\n"
    path = write(tmp_path / "f.csv", text.replace("Hello, there.", '"Hello, there.",Bye.'))
    [item] = load_qa_file(path, question_key="prompt", answer_key="target")
    assert (item.question, item.answer, item.perturbed_answers) == (
        "Hi?",
        "Hello, there.",
        ("Bye.",),
    )


def test_txt_is_one_document(tmp_path):
    text = "First paragraph.\n\nSecond paragraph.\n"
    [item] = load_qa_file(write(tmp_path / "doc.txt", text))
    assert item.is_document and item.answer == text


def test_folder_of_txt(tmp_path):
    write(tmp_path / "b.txt", "Bee.")
    write(tmp_path / "a.txt", "Ay.")
    write(tmp_path / "README.md", "ignored")
    write(tmp_path / ".hidden.txt", "ignored")
    items = load_qa_file(tmp_path)
    assert [(x.question, x.answer) for x in items] == [("", "Ay."), ("", "Bee.")]


def test_text_rows_options_and_numbers(tmp_path):
    rows = [
        {"text": "A whole document."},
        {"question": "Year?", "answer": 1945, "option1": "1944", "option2": "1945"},
        {"question": "Pick", "answer": "b", "options": ["a", "b"], "perturbed_answers": ["a"]},
    ]
    items = load_qa_file(write(tmp_path / "f.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert items[0] == QAItem(question="", answer="A whole document.")
    assert items[1].answer == "1945" and items[1].options == ("1944", "1945")
    assert items[2].options == ("a", "b") and items[2].perturbed_answers == ("a",)


# --- errors ----------------------------------------------------------------------------------


def test_bad_jsonl_names_line(tmp_path):
    path = write(tmp_path / "f.jsonl", json.dumps(ROWS[0]) + '\n{"question": "a",\n')
    with pytest.raises(DataError, match=r"f\.jsonl: line 2: invalid JSON"):
        load_qa_file(path)


def test_bad_json_names_line(tmp_path):
    path = write(tmp_path / "f.json", '[\n {"question": "a", "answer": "b"},\n {"question": }\n]')
    with pytest.raises(DataError, match=r"f\.json: line 3: invalid JSON"):
        load_qa_file(path)


def test_json_wrong_top_level(tmp_path):
    with pytest.raises(DataError, match=r"top-level JSON is a dict; expected a list"):
        load_qa_file(write(tmp_path / "f.json", '{"rows": []}'))


@pytest.mark.parametrize(
    "row, match",
    [
        (
            {"question": "q"},
            r"item 2: field 'answer' is missing .*needs the fields 'question' and 'answer'",
        ),
        ({"answer": "a"}, r"item 2: field 'question' is missing"),
        ({"question": "q", "answer": None}, r"item 2: field 'answer' is null"),
        ({"question": "q", "answer": "  "}, r"item 2: field 'answer' is empty"),
        ({"question": "q", "answer": ["a"]}, r"item 2: field 'answer' must be a string, got list"),
        (
            {"question": "q", "answer": "a", "perturbed_answer": "[oops"},
            r"item 2: .*not a valid JSON list",
        ),
        (
            {"question": "q", "answer": "a", "perturbed_answer": [1, 2]},
            r"item 2: .*list of strings",
        ),
        (["q", "a"], r"item 2: expected an object"),
    ],
)
def test_bad_rows(tmp_path, row, match):
    path = write(tmp_path / "f.json", json.dumps([ROWS[0], row]))
    with pytest.raises(DataError, match=match) as info:
        load_qa_file(path)
    assert str(path) in str(info.value)


def test_csv_missing_column_and_extra_cells(tmp_path):
    with pytest.raises(DataError, match=r"f\.csv: line 2: field 'answer' is missing"):
        load_qa_file(write(tmp_path / "f.csv", "question,reply\nq,a\n"))
    with pytest.raises(DataError, match=r"g\.csv: line 3: 3 cells but the header has 2 columns"):
        load_qa_file(write(tmp_path / "g.csv", "question,answer\nq,a\nq,a,b\n"))


def test_csv_malformed_quote(tmp_path):
    with pytest.raises(DataError, match=r"f\.csv: line \d+: malformed CSV"):
        load_qa_file(write(tmp_path / "f.csv", 'question,answer\n"q,a\n'))


@pytest.mark.parametrize(
    "name, text",
    [
        ("e.jsonl", "\n\n"),
        ("e.json", "[]"),
        ("e.json", ""),
        ("e.csv", "question,answer\n"),
        ("e.txt", "  \n"),
    ],
)
def test_empty_file(tmp_path, name, text):
    with pytest.raises(DataError, match=r"e\.\w+: the file has no rows"):
        load_qa_file(write(tmp_path / name, text))


def test_unknown_extension_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"f\.xlsx: unsupported file extension '\.xlsx'"):
        load_qa_file(write(tmp_path / "f.xlsx", "x"))
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        load_qa_file(tmp_path / "nope.jsonl")
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "notes.md", "x")
    with pytest.raises(DataError, match=r"holds no .* file \(found: notes\.md\)"):
        load_qa_file(tmp_path / "d")


def test_not_utf8(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(DataError, match=r"f\.txt: not valid UTF-8"):
        load_qa_file(path)


# --- make_request ----------------------------------------------------------------------------


def test_make_request_from_paths_and_lists(tmp_path):
    forget = write(tmp_path / "forget.jsonl", "\n".join(json.dumps(r) for r in ROWS))
    retain = [{"question": "R?", "answer": "r."}]
    holdout = [QAItem("H?", "h.")]
    req = make_request(forget, retain=retain, holdout=holdout, name="mine")
    check_rows(req.forget)
    assert req.retain == [QAItem("R?", "r.")] and req.holdout == holdout
    assert req.eval == {"forget": req.forget, "retain": req.retain, "holdout": req.holdout}
    assert req.name == "mine" and req.full == []
    only = make_request(str(forget))
    assert only.retain == [] and set(only.eval) == {"forget"}


def test_make_request_errors(tmp_path):
    with pytest.raises(DataError, match="forget set is empty"):
        make_request([])
    with pytest.raises(DataError, match=r"retain item 1: field 'answer' is missing"):
        make_request([QAItem("q", "a")], retain=[{"question": "q"}])
    with pytest.raises(DataError, match=r"forget: expected a path or a list"):
        make_request(42)  # type: ignore[arg-type]


def test_parse_qa_row_meta():
    item = parse_qa_row({"question": "q", "answer": "a"}, "somewhere", meta={"k": 1})
    assert item.meta == {"k": 1} and item == QAItem("q", "a")
