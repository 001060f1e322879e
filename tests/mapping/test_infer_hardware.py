"""``xbarref infer --hardware HW.toml --seed S``: the model on simulated hardware."""

import re

from xbarref.cli import main


def _accuracy(out):
    return float(re.search(r"^accuracy\s+([0-9.]+) ", out, re.M).group(1))


def test_ideal_hardware_gives_the_software_accuracy(capsys):
    assert main(["infer"]) == 0
    digital = _accuracy(capsys.readouterr().out)
    assert main(["infer", "--hardware", "ideal", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert _accuracy(out) == digital
    assert re.search(r"^hardware\s+ideal", out, re.M)


def test_hardware_file_from_the_hardware_command(tmp_path, capsys):
    path = tmp_path / "hw.toml"
    assert main(["hardware", "--preset", "ir_drop", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["infer", "--hardware", str(path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert _accuracy(out) >= 0.95
    assert str(path) in out


def test_bad_hardware_file_names_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[adc]\nbits = 1\n")
    assert main(["infer", "--hardware", str(path)]) == 2
    assert "adc.bits" in capsys.readouterr().err
