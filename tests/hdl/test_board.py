"""Board top levels without place and route: the PLLs' dividers, and the ULX3S, OrangeCrab and iCEBreaker tops
elaborated on amaranth-boards' platforms (pins, clock constraint, PLL, the UART divisor)."""

from __future__ import annotations

import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.board import board_top
from systolix.errors import SystolixError
from systolix.hdl.board.ecp5_pll import pll_settings
from systolix.hdl.board.ice40_pll import ice40_pll_settings
from systolix.hdl.board.status import uart_divisor
from systolix.hdl.board.ulx3s import ULX3STop

pytest.importorskip("amaranth_boards")


def test_pll_dividers():
    s = pll_settings(25.0, 30.0)
    assert (s.clki_div, s.clkfb_div, s.clkop_div) == (5, 6, 20) and s.f_out == 30.0 and 400 <= s.f_vco <= 800
    for want in (12.5, 40.0, 50.0, 75.0):
        s = pll_settings(25.0, want)
        assert abs(s.f_out - want) <= 0.01 * want and 400 <= s.f_vco <= 800 and 25.0 / s.clki_div >= 3.125
    s = pll_settings(48.0, 30.0)  # the OrangeCrab's oscillator
    assert 48.0 * s.clkfb_div / s.clki_div == 30.0 and 400 <= 30.0 * s.clkop_div <= 800
    with pytest.raises(SystolixError, match="cannot make 1000 MHz"):
        pll_settings(25.0, 1000.0)
    # 48 MHz from 25 MHz would need a 1 MHz phase detector (the floor is 3.125 MHz): the error names the
    # nearest outputs, 25 * 15 / 8 and 25 * 2 / 1 (checked by hand against the limits in the docstring)
    with pytest.raises(SystolixError, match=r"cannot make 48 MHz from 25 MHz \(nearest it can: 46.88 or 50 MHz\)"):
        pll_settings(25.0, 48.0)


def test_ice40_pll_dividers():
    # 12 MHz: the phase detector must run at 10 MHz or more, so DIVR is 0; 24 MHz = 12 * 64 / 2**5
    s = ice40_pll_settings(12.0, 24.0)
    assert (s.divr, s.divf, s.divq) == (0, 63, 5) and s.f_out == 24.0 and s.f_vco == 768.0
    assert s.filter_range == 1  # a 12 MHz phase detector
    for want in (16.0, 20.0, 30.0, 48.0, 100.0):
        s = ice40_pll_settings(12.0, want)
        f_out = 12.0 / (s.divr + 1) * (s.divf + 1) / 2 ** s.divq  # the SIMPLE feedback formula
        assert s.f_out == f_out and abs(f_out - want) <= 0.01 * want
        assert 533 <= f_out * 2 ** s.divq <= 1066 and 1 <= s.divq <= 6 and 0 <= s.divf <= 127
    assert ice40_pll_settings(30.0, 60.0).filter_range == 3  # 30 MHz phase detector: range 26-44 MHz
    with pytest.raises(SystolixError, match="cannot make 10 MHz"):
        ice40_pll_settings(12.0, 10.0)  # below the PLL's 16 MHz output


def test_uart_divisor():
    assert uart_divisor(30.0, 3_000_000) == 10 and uart_divisor(24.0, 3_000_000) == 8
    assert uart_divisor(30.0, 115_200) == 260  # 30e6 / 260 = 115,385 baud: 0.16% off
    with pytest.raises(SystolixError, match="not within 2%"):
        uart_divisor(30.0, 10_000_000)  # 3 clocks per bit
    with pytest.raises(SystolixError, match="not within 2%"):
        uart_divisor(24.0, 5_500_000)  # 24 / 4 = 6 Mbaud, 24 / 5 = 4.8 Mbaud: both more than 2% off


def _files(board: str, tmp_path, **options) -> tuple[object, dict[str, str]]:
    top, platform = board_top(board, AcceleratorConfig.preset("4x4"), **options)
    platform.add_file("accelerator.v", "module accelerator(); endmodule\n")
    plan = platform.build(top, name="top", build_dir=str(tmp_path), do_build=False)
    plan.extract(tmp_path)
    return top, {p.name: p.read_text() for p in tmp_path.iterdir() if p.suffix in (".lpf", ".pcf", ".il", ".sh")}


def test_ulx3s_top_on_the_platform(tmp_path):
    top, files = _files("ulx3s-85f", tmp_path)
    assert isinstance(top, ULX3STop) and top.divisor == 10
    lpf = files["top.lpf"]
    assert 'SITE "M1"' in lpf and 'SITE "L4"' in lpf and 'SITE "G2"' in lpf  # UART rx, tx; 25 MHz clock
    assert 'LOCATE COMP "uart_tx_enable_0__io" SITE "L3"' in lpf  # the FT231X line is driven, not floating
    assert 'FREQUENCY NET "pll.clk_out" 30000000.0 HZ' in lpf
    rtlil = files["top.il"]
    assert "EHXPLLL" in rtlil and "accelerator" in rtlil
    assert "--85k" in files["build_top.sh"]
    with pytest.raises(SystolixError, match="baud"):
        ULX3STop(AcceleratorConfig.preset("4x4"), baud=10_000_000)


def test_orangecrab_top_on_the_platform(tmp_path):
    top, files = _files("orangecrab-25f", tmp_path)
    assert top.divisor == 10 and top.pll.f_in == 48.0 and top.pll.f_out == 30.0
    lpf = files["top.lpf"]
    # the header UART: Feather pin 0 (ball N17) is rx, pin 1 (M18) tx; the 48 MHz clock at A9; PROGRAMN at V17
    assert 'LOCATE COMP "uart_0__rx__io" SITE "N17"' in lpf and 'LOCATE COMP "uart_0__tx__io" SITE "M18"' in lpf
    assert 'IOBUF PORT "uart_0__rx__io" IO_TYPE=LVCMOS33 PULLMODE=UP' in lpf
    assert 'SITE "A9"' in lpf and 'LOCATE COMP "program_0__io" SITE "V17"' in lpf
    assert all(f'SITE "{ball}"' in lpf for ball in ("K4", "M3", "J3"))  # the RGB LED
    assert 'FREQUENCY NET "pll.clk_out" 30000000.0 HZ' in lpf
    script = files["build_top.sh"]
    assert "--25k --package CSFBGA285 --speed 8" in script
    assert "--compress --freq 38.8" in script and "dfu-suffix" not in script  # the suffix is added in Python
    assert "EHXPLLL" in files["top.il"]


def test_orangecrab_85f_is_the_85k_die(tmp_path):
    _, files = _files("orangecrab-85f", tmp_path)
    assert "--85k --package CSFBGA285" in files["build_top.sh"]


def test_icebreaker_top_on_the_platform(tmp_path):
    top, files = _files("icebreaker", tmp_path)
    assert top.divisor == 8 and top.pll.f_out == 24.0
    pcf = files["top.pcf"]
    # FT2232H channel B: FPGA rx pin 6, tx pin 9; 12 MHz clock pin 35; user button pin 10; LEDs 37 (green),
    # 11 (red) and the break-off section's 26, 27, 25
    for line in ("set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9", "set_io clk12_0__io 35",
                 "set_io button_0__io 10", "set_io led_g_0__io 37", "set_io led_r_0__io 11",
                 "set_io led_2__io 26", "set_io led_3__io 27", "set_io led_4__io 25",
                 "set_frequency pll.clk_out 24.0"):
        assert line in pcf
    rtlil = files["top.il"]
    assert "SB_PLL40_PAD" in rtlil and "accelerator" in rtlil
    assert "--up5k" in files["build_top.sh"] and "icepack" in files["build_top.sh"].lower()


def test_icebreaker_clock_out_of_the_pll_range():
    with pytest.raises(SystolixError, match="iCE40 PLL cannot make 300 MHz"):
        board_top("icebreaker", AcceleratorConfig.preset("4x4"), clock_mhz=300.0)
