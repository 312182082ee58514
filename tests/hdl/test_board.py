"""Board top levels without place and route: the PLL's dividers, and the ULX3S top elaborated on
amaranth-boards' platform (pins, clock constraint, PLL, the UART divisor); an unknown board is one line."""

from __future__ import annotations

import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.cli import main
from systolix.errors import SystolixError
from systolix.hdl.board.ecp5_pll import pll_settings
from systolix.hdl.board.ulx3s import ULX3STop


def test_pll_dividers():
    s = pll_settings(25.0, 30.0)
    assert (s.clki_div, s.clkfb_div, s.clkop_div) == (5, 6, 20) and s.f_out == 30.0 and 400 <= s.f_vco <= 800
    for want in (12.5, 40.0, 50.0, 75.0):
        s = pll_settings(25.0, want)
        assert abs(s.f_out - want) <= 0.01 * want and 400 <= s.f_vco <= 800 and 25.0 / s.clki_div >= 3.125
    with pytest.raises(SystolixError, match="cannot make 1000 MHz"):
        pll_settings(25.0, 1000.0)


def test_ulx3s_top_on_the_platform(tmp_path):
    ulx3s = pytest.importorskip("amaranth_boards.ulx3s")
    config = AcceleratorConfig.preset("4x4")
    top = ULX3STop(config)
    assert top.divisor == 10
    platform = ulx3s.ULX3S_85F_Platform()
    platform.add_file("accelerator.v", "module accelerator(); endmodule\n")
    plan = platform.build(top, name="top", build_dir=str(tmp_path), do_build=False)
    plan.extract(tmp_path)
    lpf = (tmp_path / "top.lpf").read_text()
    assert 'SITE "M1"' in lpf and 'SITE "L4"' in lpf and 'SITE "G2"' in lpf  # UART rx, tx; 25 MHz clock
    assert 'FREQUENCY NET "pll.clk_out" 30000000.0 HZ' in lpf
    rtlil = (tmp_path / "top.il").read_text()
    assert "EHXPLLL" in rtlil and "accelerator" in rtlil
    with pytest.raises(SystolixError, match="baud"):
        ULX3STop(config, baud=10_000_000)


def test_unknown_board_is_one_line(tmp_path, capsys):
    assert main(["board", "ulx3s-12f", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'ulx3s-12f'" in err and len(err.strip().splitlines()) == 1
