"""One resume logic for every recipe: reuse a finished stage with the same configuration,
refuse one with another configuration unless asked to overwrite."""

from __future__ import annotations

import pytest

from obliviate.recipes.resume import ConfigMismatchError, fingerprint, finish, stage


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_unfinished_stage_runs_finished_same_config_is_reused(tmp_path):
    config = {"method": "npo", "train": {"lr": 1e-4}, "splits": ("a", "b")}
    assert stage(tmp_path, config) is None  # nothing there yet
    (tmp_path / "metrics.json").write_text("{}")
    finish(tmp_path, config, train_s=1.5)
    record = stage(tmp_path, config, ("metrics.json",))
    assert record is not None and record["train_s"] == 1.5
    (tmp_path / "metrics.json").unlink()  # the stage's own output is gone: run it again
    assert stage(tmp_path, config, ("metrics.json",)) is None


def test_another_config_is_an_error_unless_overwrite(tmp_path):
    finish(tmp_path, {"method": "npo", "lr": 1})
    with pytest.raises(ConfigMismatchError, match=r"differs in lr\).*--overwrite"):
        stage(tmp_path, {"method": "npo", "lr": 2})
    assert stage(tmp_path, {"method": "npo", "lr": 2}, overwrite=True) is None


def test_the_recipes_share_it():
    import inspect

    from obliviate.recipes import muse, tofu

    for module in (tofu, muse):
        assert "resume.stage(" in inspect.getsource(module)


def test_a_comparison_of_another_benchmark_is_not_overwritten(tmp_path):
    from obliviate.io import write_json
    from obliviate.recipes.resume import claim_comparison

    claim_comparison(tmp_path, "builtin-shapes")  # an empty folder is free
    write_json(tmp_path / "comparison.json", {"benchmark": "builtin", "rows": []})
    claim_comparison(tmp_path, "builtin")  # the same benchmark resumes
    with pytest.raises(ValueError, match=r"another benchmark \(builtin, not builtin-shapes\)"):
        claim_comparison(tmp_path, "builtin-shapes")
    claim_comparison(tmp_path, "builtin-shapes", overwrite=True)


def test_the_diffusion_demo_refuses_the_tofu_demo_folder(tmp_path):
    from obliviate.io import write_json
    from obliviate.recipes.diffusion import run_demo

    write_json(tmp_path / "comparison.json", {"benchmark": "builtin", "rows": []})
    with pytest.raises(ValueError, match="another benchmark"):
        run_demo(tmp_path, quick=True, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparison.json"]  # nothing written
