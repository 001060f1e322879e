"""The scenario catalogue: families, presets, names that key the random draws."""

import numpy as np
import pytest

from xbarref.config import PRESETS, ParasiticsConfig, preset
from xbarref.errors import XbarrefError
from xbarref.tune.scenarios import (DRIFT_TIMES, FAMILY_BUILDERS, PRESETS as STUDY_PRESETS, Scenario,
                                    default_scenarios, families_of, register_family, register_preset,
                                    scenario_from_dict)
from xbarref.sweep import named_streams, task_seed
from xbarref.tune.study import (StudySettings, data_splits, later_session_time, study_streams, task_cost,
                                task_key)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_hardware_preset_gives_the_documented_grid(name):
    base = preset(name)
    scs = default_scenarios(base)
    fams = STUDY_PRESETS["digits"][0]
    assert [s.family for s in scs] == sorted((s.family for s in scs), key=fams.index)
    assert len({s.name for s in scs}) == len(scs)
    wires = [s for s in scs if s.family == "wires"]
    assert sorted({s.hardware.tiles.rows for s in wires}) == [32, 128]
    assert len({s.hardware.parasitics.r_wire_row for s in wires}) == 2
    assert [s.times for s in scs if s.family == "drift"] == [DRIFT_TIMES]
    rn = [s for s in scs if s.family == "read_noise"]
    assert {s.hardware.noise.read_time_model for s in rn} == {"split", "per_read", "per_session"}
    assert sum(s.retrain for s in scs) == 1
    for s in scs:
        hw = s.hardware
        assert hw.conductance == base.conductance
        # the conductance oracle becomes the range set at programming
        assert hw.adc.range == "programmed" or "from conductances" in s.name
        if s.family == "quantization":
            assert hw.mapping.weight_bits > 0 and hw.dac.bits > 0 and hw.adc.bits > 0
            assert hw.parasitics.ideal and hw.device.model == "ideal"
        if s.family == "read_noise":
            assert hw.noise.read_scale > 0 and hw.noise.programming_scale == 0
            assert hw.drift.drift_scale == 0 and hw.parasitics.ideal
        if s.family in ("wires", "faults"):
            assert hw.device.model == "ideal" and hw.dac.bits == 0 and hw.adc.bits == 0


def test_family_selection_and_errors():
    scs = default_scenarios(families=["faults", "combined_read_noise"])
    assert {s.family for s in scs} == {"faults", "combined_read_noise"}
    assert "combined_read_noise" in families_of("digits")
    assert "combined_read_noise" not in families_of("digits", extra=False)
    with pytest.raises(XbarrefError, match="families: unknown family 'cosmic'"):
        default_scenarios(families=["cosmic"])
    with pytest.raises(XbarrefError, match="preset"):
        default_scenarios(preset="nope")


def test_a_second_preset_can_be_registered():
    @register_family("_test_big_wires")
    def _big(ctx):
        return [Scenario("big tiles, 1 ohm", "_test_big_wires",
                         ctx.common.replace(parasitics=ParasiticsConfig(r_wire_row=1.0, r_wire_col=1.0)))]

    try:
        register_preset("_test", ("_test_big_wires", "drift"),
                        base=lambda hw: hw.replace(tiles=hw.tiles.__class__(256, 256)))
        scs = default_scenarios(preset="_test")
        assert [s.family for s in scs] == ["_test_big_wires", "drift"]
        assert all(s.hardware.tiles.rows == 256 for s in scs)
        assert scs[0].hardware.parasitics.r_wire_row == 1.0
    finally:
        STUDY_PRESETS.pop("_test", None)
        FAMILY_BUILDERS.pop("_test_big_wires", None)


def test_scenario_round_trips_through_task_parameters():
    for s in default_scenarios(quick=True):
        assert scenario_from_dict(s.to_dict()) == s


def _chip_stream(base, name, chip, stream="chip"):
    return named_streams(task_seed(base, task_key("chip", name, chip)), stream)[stream]


def test_draws_are_keyed_by_name_not_position():
    a = _chip_stream(0, "drift", 3).standard_normal(4)
    np.testing.assert_array_equal(a, _chip_stream(0, "drift", 3).standard_normal(4))
    others = [_chip_stream(0, "drift", 3, "calibration set"), _chip_stream(0, "drift", 4),
              _chip_stream(1, "drift", 3), _chip_stream(0, "faults 1 %", 3),
              named_streams(task_seed(0, task_key("selection", "drift")), "chip")["chip"],
              study_streams(0, task_key("distortion rows"), "chip")["chip"]]
    for g in others:
        assert not np.array_equal(a, g.standard_normal(4))


def test_validation_split_is_disjoint_and_keyed():
    s = StudySettings()
    train, val = data_splits(1000, s, 0)
    assert len(val) == 200 and len(train) == 800 and not set(train) & set(val)
    t2, v2 = data_splits(1000, s, 0)
    np.testing.assert_array_equal(v2, val)
    assert not np.array_equal(data_splits(1000, s, 1)[1], val)


def test_protocol_gap_and_costs():
    s = StudySettings()
    assert later_session_time(0.0, s) == pytest.approx(20.0)
    assert later_session_time(86400.0, s) + 20.0 == pytest.approx(2 * (86400.0 + 20.0))
    scs = {sc.name: sc for sc in default_scenarios()}
    assert task_cost(scs["drift"]) > task_cost(scs["read noise x1"]) > task_cost(scs["faults 1 %"])
    assert task_cost(scs["read noise x10, all per session"]) == task_cost(scs["faults 1 %"])


def test_settings_are_checked():
    with pytest.raises(XbarrefError, match="seeds"):
        StudySettings(seeds=0)
    with pytest.raises(XbarrefError, match="tune_lrs"):
        StudySettings(tune_lrs=(0.01, 0.0))
    with pytest.raises(XbarrefError, match="calibration_sizes"):
        StudySettings(calibration_sizes=())
    with pytest.raises(XbarrefError, match="tune_max_steps: must be a multiple"):
        StudySettings(tune_max_steps=25, tune_eval_every=10)
    assert StudySettings(calibration_sizes=(256, 64, 64)).calibration_sizes == (64, 256)
    with pytest.raises(XbarrefError, match="gap_factor"):
        StudySettings(gap_factor=0.5)
    assert StudySettings().seeds >= 10
