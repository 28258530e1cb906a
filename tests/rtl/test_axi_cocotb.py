"""`MemPortToAxi4` on Verilator against cocotbext-axi's `AxiRam`, with random back-pressure on every channel.

One Verilator model holds five adapters (two good configurations, data widths 32 and 128, and three broken
variants), so one cached build and one simulation (`hwforge.rtl.tb.cocotb_axi_tb`) serve every test here; the
tests only read the per-instance JSON results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hwforge.errors import ConfigError
from hwforge.rtl.lib.axi import FAULTS, Axi4LiteControl, MemPortToAxi4
from hwforge.rtl.tb.verilator import TB_NAME, build

BENCH = "hwforge.rtl.tb.cocotb_axi_tb"

#: name -> adapter parameters and bench settings (``pause``: AXI channel pause probability, ``w_pause`` the W
#: channel's, which makes writes slow so that an out-of-order read would see stale data).
INSTANCES: dict[str, dict] = {
    "a32": {"addr_width": 12, "data_width": 32, "max_burst": 16, "pause": 0.3, "w_pause": 0.6},
    "a128": {"addr_width": 10, "data_width": 128, "max_burst": 8, "pause": 0.5, "w_pause": 0.6},
    "fwstrb": {"addr_width": 12, "data_width": 32, "max_burst": 16, "fault": "wrong_wstrb", "pause": 0.3},
    "forder": {"addr_width": 12, "data_width": 32, "max_burst": 16, "fault": "read_passes_write", "pause": 0.3,
               "w_pause": 0.6},
    "farlen": {"addr_width": 10, "data_width": 128, "max_burst": 8, "fault": "long_arlen", "pause": 0.3},
}
GOOD = ["a32", "a128"]
#: Cycles the stand-in accelerator behind `Axi4LiteControl` stays busy after ``start``.
COUNTDOWN = 37
BROKEN = {"wrong_wstrb": "fwstrb", "read_passes_write": "forder", "long_arlen": "farlen"}


def _adapter(spec: dict) -> MemPortToAxi4:
    return MemPortToAxi4(spec["addr_width"], spec["data_width"], max_burst=spec["max_burst"],
                         max_outstanding=16, fault=spec.get("fault"))


class Countdown(Elaboratable):
    """Stand-in accelerator: busy for ``cycles`` cycles after ``start``, then ``done`` (a level) until the next."""

    def __init__(self, cycles: int):
        self.cycles = cycles
        self.start = Signal()
        self.done = Signal()

    def elaborate(self, platform: object) -> Module:
        m = Module()
        left = Signal(range(self.cycles + 1))
        ran = Signal()
        with m.If(self.start):
            m.d.sync += [left.eq(self.cycles), ran.eq(1)]
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.done.eq(ran & (left == 0))
        return m


class AxiTestTop(wiring.Component):
    """Adapters side by side, every port of adapter ``n`` on the top as ``n_<port>``, plus an `Axi4LiteControl`
    (``ctl_s_axil_*``) driving a `Countdown`."""

    def __init__(self, instances: dict[str, dict]):
        self.adapters = {name: _adapter(spec) for name, spec in instances.items()}
        self.ctl = Axi4LiteControl()
        members = {}
        for name, a in self.adapters.items():
            for port, member in a.signature.members.items():
                members[f"{name}_{port}"] = member
        for port, member in self.ctl.signature.members.items():
            if port.startswith("s_axil_"):
                members[f"ctl_{port}"] = member
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.ctl = self.ctl
        m.submodules.countdown = acc = Countdown(COUNTDOWN)
        m.d.comb += [acc.start.eq(self.ctl.start), self.ctl.done.eq(acc.done)]
        parts = [(name, a) for name, a in self.adapters.items()] + [("ctl", self.ctl)]
        for name, a in parts:
            if name != "ctl":
                m.submodules[name] = a
            for port, member in a.signature.members.items():
                if name == "ctl" and not port.startswith("s_axil_"):
                    continue
                outer, inner = getattr(self, f"{name}_{port}"), getattr(a, port)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == Out:
                    m.d.comb += outer.eq(inner)
                else:
                    m.d.comb += inner.eq(outer)
        return m


@pytest.fixture(scope="module")
def axi_build(build_cache) -> Path:
    """The Verilator model of all five adapters (cached by Verilog hash across sessions)."""
    return build({"axi_top.v": verilog.convert(AxiTestTop(INSTANCES), name=TB_NAME)}, build_cache)


def _simulate(build_dir: Path, work: Path, names: list[str], seed: int = 1,
              testcase: str = "axi_adapters") -> tuple[dict | list | None, str]:
    """Run the bench's ``testcase`` driving the adapters ``names`` (the others stay idle); returns the bench's
    results (None if the cocotb test failed, e.g. on an AxiRam protocol assertion) and the simulation log."""
    from cocotb_tools.runner import get_runner

    from hwforge.toolchain import activate_verilator

    config = {"seed": seed, "max_cycles": 20_000, "instances": [{"name": n, **INSTANCES[n]} for n in names]}
    (work / "config.json").write_text(json.dumps(config))
    result = work / "result.json"
    activate_verilator()
    try:
        get_runner("verilator").test(test_module=BENCH, hdl_toplevel=TB_NAME, hdl_toplevel_lang="verilog",
                                     build_dir=build_dir, test_dir=work, log_file=work / "sim.log", testcase=testcase,
                                     plusargs=[f"+config={work / 'config.json'}", f"+result={result}"])
    except SystemExit:              # the runner exits when the cocotb test fails
        pass
    log = (work / "sim.log").read_text()
    return (json.loads(result.read_text()) if result.exists() else None), log


@pytest.fixture(scope="module")
def axi_results(axi_build, tmp_path_factory) -> dict:
    """The two good adapters, simulated together once."""
    work = tmp_path_factory.mktemp("axi_good")
    results, log = _simulate(axi_build, work, GOOD)
    assert results is not None, f"bench failed; see {work / 'sim.log'}:\n{log[-3000:]}"
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", GOOD)
def test_random_traffic_round_trips(axi_results, name):
    """Writes then reads (random, runs, read-after-write) return the model's data, in order, nothing lost."""
    r = axi_results[name]
    assert r["reads"] > 200 and r["writes"] > 100, r
    assert (r["mismatches"], r["missing"], r["extra"]) == (0, 0, 0), r
    assert r["mem_mismatches"] == 0 and r["error"] == 0 and r["idle"] == 1, r


@pytest.mark.slow
@pytest.mark.parametrize("name", GOOD)
def test_reads_coalesce_without_crossing_4k(axi_results, name):
    """Consecutive reads become multi-beat INCR bursts, within ``max_burst`` and never across 4 KiB."""
    r, spec = axi_results[name], INSTANCES[name]
    assert r["page_crossings"] == 0, r
    assert r["multi_beat_bursts"] >= 10 and r["bursts"] < r["reads"], r
    assert 1 < r["max_burst"] <= spec["max_burst"], r


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_caught(axi_build, tmp_path, fault):
    """A checker that cannot fail is worthless: every broken variant must be visibly wrong, either in the data
    (the bench's results) or as an AXI protocol violation that cocotbext-axi's `AxiRam` asserts on."""
    name = BROKEN[fault]
    results, log = _simulate(axi_build, tmp_path, [name])
    if results is None:
        assert "cocotbext/axi" in log and "AssertionError" in log, f"bench failed for another reason:\n{log[-3000:]}"
        return
    r = results[name]
    assert r["mismatches"] + r["missing"] + r["extra"] + r["mem_mismatches"] + r["error"] > 0, r


@pytest.mark.slow
def test_axi4lite_control_starts_and_times_the_accelerator(axi_build, tmp_path):
    """Through cocotbext-axi's AxiLiteMaster: STATUS idle, write CTRL=1, poll until done, CYCLES = the busy time;
    a second start works too (done is a level left high by the first run)."""
    runs, log = _simulate(axi_build, tmp_path, [], testcase="axil_control")
    assert runs is not None, log[-3000:]
    assert runs[0]["status_before"] == 0 and runs[1]["status_before"] == 2, runs
    for run in runs:
        assert run["status"] == 2 and run["cycles"] == COUNTDOWN and run["polls"] >= 2, runs


@pytest.mark.parametrize("kw, what", [
    ({"addr_width": 0}, "addr_width"), ({"data_width": 16}, "data_width"), ({"data_width": 96}, "data_width"),
    ({"max_burst": 257}, "max_burst"), ({"max_burst": 0}, "max_burst"), ({"max_outstanding": 0}, "max_outstanding"),
    ({"axi_addr_width": 8}, "axi_addr_width"), ({"fault": "nope"}, "fault"),
])
def test_bad_parameters_raise_config_error(kw, what):
    args = {"addr_width": 12, "data_width": 32, **kw}
    with pytest.raises(ConfigError, match=what):
        MemPortToAxi4(args.pop("addr_width"), args.pop("data_width"), **args)
