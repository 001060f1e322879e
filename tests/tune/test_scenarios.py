"""Scenario construction from a base hardware configuration."""

import pytest

from xbarref.config import PRESETS, preset
from xbarref.errors import XbarrefError
from xbarref.tune.study import (DEFAULT_FAMILIES, DRIFT_TIMES, FAMILIES, StudySettings,
                                default_scenarios, scenario_label)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_the_documented_grid(name):
    base = preset(name)
    scs = default_scenarios(base)
    assert [s.family for s in scs] == sorted((s.family for s in scs), key=DEFAULT_FAMILIES.index)
    assert len({s.name for s in scs}) == len(scs)
    wires = [s for s in scs if s.family == "wires"]
    assert sorted({s.hardware.tiles.rows for s in wires}) == [32, 64, 128]
    assert len({s.hardware.parasitics.r_wire_row for s in wires}) == 2
    assert [s.times for s in scs if s.family == "drift"] == [DRIFT_TIMES]
    drift = next(s for s in scs if s.family == "drift")
    assert list(DRIFT_TIMES) == sorted(set(DRIFT_TIMES)) and DRIFT_TIMES[0] > 0
    assert len({scenario_label(drift, t) for t in DRIFT_TIMES}) == len(DRIFT_TIMES)
    assert len([s for s in scs if s.family == "read_noise"]) == 3
    assert sum(s.retrain for s in scs) == 1
    for s in scs:
        hw = s.hardware
        assert hw.conductance == base.conductance
        if s.family == "quantization":
            assert hw.mapping.weight_bits > 0 and hw.dac.bits > 0 and hw.adc.bits > 0
            assert hw.parasitics.ideal and hw.device.model == "ideal"
        if s.family == "read_noise":
            assert hw.noise.read_scale > 0 and hw.noise.programming_scale == 0
            assert hw.drift.drift_scale == 0 and hw.parasitics.ideal
        if s.family in ("wires", "faults"):
            assert hw.device.model == "ideal" and hw.dac.bits == 0 and hw.adc.bits == 0


def test_family_selection():
    scs = default_scenarios(families=["faults", "combined_read_noise"])
    assert {s.family for s in scs} == {"faults", "combined_read_noise"}
    assert "combined_read_noise" in FAMILIES and "combined_read_noise" not in DEFAULT_FAMILIES
    with pytest.raises(XbarrefError, match="families: unknown family 'cosmic'"):
        default_scenarios(families=["cosmic"])


def test_settings_are_checked():
    with pytest.raises(XbarrefError, match="seeds"):
        StudySettings(seeds=0)
    with pytest.raises(XbarrefError, match="tune_lr"):
        StudySettings(tune_lr=0.0)
