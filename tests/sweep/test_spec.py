"""Sweep specification files, the inference task, results tables and the sweep command."""

import csv
import os
import shutil

import numpy as np
import pytest
from conftest import tiny_spec_text

from xbarref.cli import main
from xbarref.config import preset
from xbarref.errors import XbarrefError
from xbarref.sweep import (collect, group_summary, infer_task, load_spec, loads_spec,
                           read_task_file, spec_tasks, task_path, write_results)


class TestSpecErrorsNameTheKey:
    @pytest.mark.parametrize("text, key", [
        ("[sweeep]\nseeds = 1", "sweeep: unknown key"),
        ("[sweep]\nseed_count = 1", "sweep.seed_count: unknown key"),
        ("[sweep]\nseeds = 0", "sweep.seeds: must be an integer >= 1"),
        ("[sweep]\nseeds = [1, 1]", "sweep.seeds: must be a non-empty list of distinct"),
        ("[sweep]\nsplit = \"val\"", "sweep.split"),
        ("[sweep]\nhardware = \"nope\"", "sweep.hardware"),
        ("[grid]\n\"parasitics.r_wire_rowz\" = [1.0]", "grid.parasitics.r_wire_rowz: unknown hardware key"),
        ("[grid]\n\"wires.r\" = [1.0]", "grid.wires.r: unknown hardware key"),
        ("[grid]\n\"adc.bits\" = 8", "grid.adc.bits: must be a non-empty list"),
        ("[grid]\n\"adc.bits\" = [8, 1]", "adc.bits"),
        ("[[settings]]\nname = \"a\"\n\"parasitics.r_sink\" = -1.0", "settings[0]: parasitics.r_sink"),
        ("[[settings]]\nname = \"a\"\n[[settings]]\nname = \"a\"", "two settings are named 'a'"),
        ("[[models]]\nname = \"m\"\nweights = \"x.h5\"", "models[0].weights: unknown key"),
        ("[[models]]\nname = \"m\"\nmodel = \"missing.h5\"", "models[0].model: no such file"),
        ("[sweep\n", "not valid TOML"),
    ])
    def test_bad_spec(self, text, key):
        with pytest.raises(XbarrefError, match=key.replace("[", r"\[").replace("]", r"\]")):
            loads_spec(text, source="spec.toml")

    def test_missing_file(self, tmp_path):
        with pytest.raises(XbarrefError, match="no such file"):
            load_spec(tmp_path / "none.toml")


class TestSpecContents:
    def test_grid_and_list_expand(self):
        spec = loads_spec("""
[sweep]
seeds = [4, 9]
[grid]
parasitics.r_wire_row = [0.35, 1.0, 2.0]
"drift.t_inference" = [0.0, 3600.0]
[[settings]]
name = "ideal"
device.model = "ideal"
""")
        assert spec.seeds == (4, 9) and len(spec.settings) == 7 and spec.n_tasks == 14
        base = preset("default").to_dict()
        first = spec.settings[0]
        assert first.overrides == {"parasitics.r_wire_row": 0.35, "drift.t_inference": 0.0}
        assert first.hardware["parasitics"]["r_wire_row"] == 0.35
        assert first.hardware["noise"] == base["noise"]
        assert spec.settings[-1].name == "ideal" and spec.settings[-1].hardware["device"]["model"] == "ideal"
        tasks = spec_tasks(spec)
        assert len(tasks) == 14 and len({tuple(t.seed.entropy) for t in tasks}) == 14
        assert {t.key["seed"] for t in tasks} == {4, 9}

    def test_ids_and_seeds_survive_reordering_and_moving_files(self, tmp_path, tiny_model):
        text = tiny_spec_text(tiny_model)
        a = spec_tasks(loads_spec(text))
        b = spec_tasks(loads_spec(text.replace("[0.35, 5.0]", "[5.0, 0.35]")))
        moved = tmp_path / "moved.h5"
        shutil.copy(tiny_model, moved)
        c = spec_tasks(loads_spec(tiny_spec_text(moved)))
        ids = {t.id: t.seed.entropy for t in a}
        assert {t.id: t.seed.entropy for t in b} == ids == {t.id: t.seed.entropy for t in c}
        assert c[0].params["model_path"] == str(moved)

    def test_tasks_carry_the_file_hashes_and_refuse_a_changed_file(self, tmp_path, tiny_model):
        import hashlib

        from xbarref.sweep import infer_task

        model = tmp_path / "m.h5"
        shutil.copy(tiny_model, model)
        task = spec_tasks(loads_spec(tiny_spec_text(model)))[0]
        assert task.params["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
        assert os.path.isabs(task.params["data_path"])        # the bundled digits, resolved
        assert "model_sha256" not in task.key                 # ids and seeds do not move
        assert infer_task(task.params, task.seed)["n_samples"] > 0
        with open(model, "ab") as fh:                          # same path, other content
            fh.write(b"\0")
        with pytest.raises(XbarrefError, match="model_path: .* differs from the file the run"):
            infer_task(task.params, task.seed)
        os.remove(model)
        with pytest.raises(XbarrefError, match="model_path: .* does not exist"):
            infer_task(task.params, task.seed)

    def test_relative_paths_and_defaults(self, tmp_path, tiny_model):
        shutil.copy(tiny_model, tmp_path / "m.h5")
        (tmp_path / "s.toml").write_text('[[models]]\nname = "m"\nmodel = "m.h5"\n')
        spec = load_spec(tmp_path / "s.toml")
        assert spec.models[0].model == str(tmp_path / "m.h5") and spec.models[0].data is None
        assert spec.seeds == (0, 1, 2, 3, 4) and [s.name for s in spec.settings] == ["base"]


def test_infer_task_is_one_seed_on_one_setting(tiny_model):
    from xbarref.config import HardwareConfig
    from xbarref.io import load_dataset, load_model
    from xbarref.mapping import map_model
    from xbarref.nn import run_inference

    task = spec_tasks(loads_spec(tiny_spec_text(tiny_model)))[1]
    out = infer_task(task.params, task.seed)
    data = load_dataset()
    hw = HardwareConfig.from_dict(task.params["hardware"])
    mapped = map_model(load_model(tiny_model), hw, task.streams("hardware")["hardware"])
    ref = run_inference(mapped, data.x_test[:24], data.y_test[:24], 8)
    assert out["n_samples"] == 24 and out["accuracy"] == ref.accuracy
    assert np.array_equal(out["predictions"], ref.predictions)


def test_results_table(tmp_path, tiny_model):
    from xbarref.sweep import run_tasks

    tasks = spec_tasks(loads_spec(tiny_spec_text(tiny_model, seeds=2)))
    run_tasks(tasks, infer_task, tmp_path, workers=1, progress=False)
    table = collect(tmp_path, tasks)
    assert table.missing == [] and [r["task_id"] for r in table.rows] == [t.id for t in tasks]
    assert "hardware.parasitics.r_wire_row" in table.columns
    stored = [float(read_task_file(task_path(tmp_path, t.id))["result"]["accuracy"]) for t in tasks]
    assert table.column("accuracy") == stored
    csv_path, h5_path = write_results(table, tmp_path)
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["accuracy"]) for r in rows] == stored
    summary = group_summary(table)
    assert [s["n"] for s in summary] == [2, 2]
    first = [v for r, v in zip(table.rows, stored) if r["setting"] == summary[0]["setting"]]
    assert summary[0]["mean"] == pytest.approx(np.mean(first))
    assert summary[0]["std"] == pytest.approx(np.std(first, ddof=1))
    import h5py
    with h5py.File(h5_path, "r") as h:
        assert list(h["columns/accuracy"][()]) == stored
        assert h[f"arrays/{tasks[0].id}/predictions"].shape == (24,)


class TestCommand:
    def test_sweep_then_resume(self, tmp_path, tiny_model, capsys):
        spec = tmp_path / "spec.toml"
        spec.write_text(tiny_spec_text(tiny_model, seeds=2))
        out = tmp_path / "out"
        assert main(["sweep", str(spec), "-o", str(out), "--jobs", "1", "--no-progress"]) == 0
        text = capsys.readouterr().out
        assert "= 4 tasks" in text and "computed now    4" in text
        assert "parasitics.r_wire_row=5" in text
        with open(out / "results.csv", newline="") as fh:
            assert len(list(csv.DictReader(fh))) == 4
        assert main(["sweep", str(spec), "-o", str(out), "--jobs", "1", "--no-progress",
                     "--resume"]) == 0
        text = capsys.readouterr().out
        assert "computed now    0" in text and "already done    4" in text

    def test_bad_key_exit_code(self, tmp_path, capsys):
        spec = tmp_path / "spec.toml"
        spec.write_text('[grid]\n"dac.bitz" = [4]\n')
        assert main(["sweep", str(spec), "-o", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "grid.dac.bitz: unknown hardware key" in err
        assert not (tmp_path / "o").exists()

    def test_bad_options(self, tmp_path, capsys):
        spec = tmp_path / "spec.toml"
        spec.write_text("")
        assert main(["sweep", str(spec), "-o", str(tmp_path / "o"), "--jobs", "0"]) == 2
        assert "--jobs" in capsys.readouterr().err
