"""Hardware configuration: dataclass checks, TOML round trip, presets, CLI."""

import tomllib

import pytest

from xbarref.config import (
    PRESETS,
    ADCConfig,
    ConductanceConfig,
    DACConfig,
    HardwareConfig,
    MappingConfig,
    dumps_hardware,
    load_hardware,
    loads_hardware,
    preset,
    save_hardware,
)
from xbarref.errors import XbarrefError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_every_preset(tmp_path, name):
    hw = preset(name)
    path = save_hardware(hw, tmp_path / f"{name}.toml")
    assert load_hardware(path) == hw
    assert hw.device_model() is not None


def test_saved_file_is_commented_and_plain_toml(tmp_path):
    text = dumps_hardware(preset("default"))
    data = tomllib.loads(text)
    assert data["conductance"]["g_max"] == 25e-6
    assert data["parasitics"]["r_wire_row"] == 0.35
    assert text.count("\n# ") >= 30        # every key carries its documentation line
    assert "ohm" in text and ", S (" in text


def test_ideal_preset_is_ideal():
    hw = preset("ideal")
    assert hw.parasitics.ideal and hw.dac.bits == 0 and hw.adc.bits == 0
    assert hw.device.model == "ideal" and hw.mapping.weight_bits == 0


@pytest.mark.parametrize("text, key", [
    ("[adc]\nbits = 1\n", "adc.bits"),
    ("[adc]\nbitz = 8\n", "adc.bitz"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[conductance]\ng_max = -1.0\n", "conductance.g_max"),
    ("[conductance]\ng_min = 3e-5\n", "conductance.g_min"),
    ("[tiles]\nrows = 0\n", "tiles.rows"),
    ("[tiles]\nrows = 2.5\n", "tiles.rows"),
    ("[mapping]\nscheme = \"triple\"\n", "mapping.scheme"),
    ("[mapping]\nslices = 2\n", "mapping.slices"),
    ("[dac]\nbit_serial = 1\n", "dac.bit_serial"),
    ("[dac]\nv_read = \"0.2\"\n", "dac.v_read"),
    ("[adc]\nrange = \"fixed\"\n", "adc.i_max"),
    ("[parasitics]\nr_wire_row = -0.1\n", "parasitics.r_wire_row"),
    ("[device]\niv = \"sinh\"\n", "device.sinh_k"),
    ("[drift]\nt_inference = -5.0\n", "drift.t_inference"),
    ("[faults]\nstuck_min_rate = 1.5\n", "faults.stuck_min_rate"),
    ("format_version = 2\n", "format_version"),
    ("[adc\n", "not valid TOML"),
])
def test_bad_values_name_the_key(text, key):
    with pytest.raises(XbarrefError, match=key.replace(".", r"\.")):
        loads_hardware(text)


def test_partial_file_takes_defaults():
    hw = loads_hardware("[adc]\nbits = 6\n")
    assert hw.adc.bits == 6 and hw.dac == DACConfig()


def test_load_error_names_file(tmp_path):
    p = tmp_path / "hw.toml"
    p.write_text("[adc]\nbits = -3\n")
    with pytest.raises(XbarrefError, match="hw.toml.*adc.bits"):
        load_hardware(p)


def test_dataclasses_are_frozen_and_checked():
    c = ConductanceConfig()
    with pytest.raises(AttributeError):
        c.g_max = 1.0
    with pytest.raises(XbarrefError, match="mapping.scale"):
        MappingConfig(scale="row")
    with pytest.raises(XbarrefError, match="adc.bits"):
        ADCConfig(bits=True)
    with pytest.raises(XbarrefError, match="preset"):
        preset("nope")
    with pytest.raises(XbarrefError, match="adc"):
        HardwareConfig(adc=DACConfig())


def test_cli_writes_loadable_file(tmp_path):
    from xbarref.commands import hardware
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    hardware.register(sub)
    out = tmp_path / "hw.toml"
    args = parser.parse_args(["hardware", "--preset", "ideal", "-o", str(out)])
    assert args.func(args) == 0
    assert load_hardware(out) == preset("ideal")
