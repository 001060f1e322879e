"""Hardware configuration: dataclass checks, TOML round trip, presets, CLI."""

import tomllib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xbarref.config import (
    PRESETS,
    ADCConfig,
    ConductanceConfig,
    DACConfig,
    FaultConfig,
    HardwareConfig,
    MappingConfig,
    dumps_hardware,
    load_hardware,
    loads_hardware,
    preset,
    save_hardware,
)
from xbarref.devices import DEVICE_MODELS
from xbarref.errors import XbarrefError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_every_preset(tmp_path, name):
    hw = preset(name)
    path = save_hardware(hw, tmp_path / f"{name}.toml")
    assert load_hardware(path) == hw
    dm = hw.device_model()
    assert type(dm) is DEVICE_MODELS[hw.device.model]
    assert (dm.g_min, dm.g_max) == (hw.conductance.g_min, hw.conductance.g_max)
    f = hw.faults
    assert (f.stuck_min_rate > 0 or f.stuck_max_rate > 0) == (dm.faults is not None and dm.faults.active)


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


def test_device_model_carries_the_configured_values():
    hw = preset("default").replace(faults=FaultConfig(0.1, 0.2),
                                   conductance=ConductanceConfig(g_min=1e-6, g_max=4e-5))
    dm = hw.device_model()
    assert (dm.faults.rate_min, dm.faults.rate_max) == (0.1, 0.2)
    assert (dm.g_min, dm.g_max) == (1e-6, 4e-5)
    G = dm.program(np.full((40, 40), 2e-5), np.random.default_rng(0)).G_prog
    assert not np.allclose(G, 2e-5)  # the default preset's programming noise is on
    ideal = preset("ideal").replace(faults=FaultConfig(0.1, 0.2)).device_model()
    assert type(ideal) is DEVICE_MODELS["ideal"] and ideal.faults.rate_max == 0.2


def _accepts(make):
    try:
        make()
    except XbarrefError:
        return False
    return True


@given(st.integers(-2, 30), st.sampled_from([0.2, 0.0, -1.0]),
       st.sampled_from(["bipolar", "two_phase", "x"]), st.booleans())
def test_dac_config_and_dac_accept_the_same_settings(bits, v_read, signed, bit_serial):
    from xbarref.devices import DAC

    config = _accepts(lambda: DACConfig(bits=bits, v_read=v_read, signed=signed,
                                        bit_serial=bit_serial))
    assert config == _accepts(lambda: DAC(bits, v_read, signed, bit_serial))


@given(st.integers(-2, 30))
def test_adc_config_and_adc_accept_the_same_bits(bits):
    from xbarref.devices import ADC

    assert _accepts(lambda: ADCConfig(bits=bits)) == _accepts(lambda: ADC(bits))


@given(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5))
def test_fault_config_and_stuck_at_faults_accept_the_same_rates(a, b):
    from xbarref.devices import StuckAtFaults

    assert _accepts(lambda: FaultConfig(a, b)) == _accepts(lambda: StuckAtFaults(a, b))


def test_toml_reader_errors_name_the_file(tmp_path):
    from xbarref.sweep import load_spec

    with pytest.raises(XbarrefError, match="no such file"):
        load_hardware(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    for load in (load_hardware, load_spec):
        with pytest.raises(XbarrefError, match="latin1.toml: not a UTF-8 text file"):
            load(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[adc\n")
    for load in (load_hardware, load_spec):
        with pytest.raises(XbarrefError, match="broken.toml: not valid TOML"):
            load(broken)


def test_written_file_escapes_strings_and_keeps_floats_exact(tmp_path):
    hw = preset("default").replace(name='a "quoted" \\ name',
                                   conductance=ConductanceConfig(g_min=1.0000000000000002e-7,
                                                                 g_max=2.5e-5))
    text = dumps_hardware(hw)
    assert tomllib.loads(text)["name"] == hw.name
    assert loads_hardware(text) == hw
