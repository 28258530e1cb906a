"""`GemmAxi4` on Verilator, driven like a SoC host would: cocotbext-axi's `AxiRam` holds the program image and
`AxiLiteMaster` writes CTRL, polls STATUS and reads CYCLES, with random pauses on every AXI channel.

One Verilator model holds three wrapped accelerators (4x4 OS on a 32-bit bus running a two-layer MLP, 4x4 WS on
a 128-bit bus running a conv -> fc -> fc network with gather tables, and the first with a flipped accumulator
bit), so one cached build serves every test; the bench
(`hwforge.rtl.tb.cocotb_gemm_axi_tb`) only reports, and the outputs are compared here with the integer golden
model `reference`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from gemm_cases import conv_net, mlp

from hwforge.errors import ConfigError
from hwforge.rtl.gemm import GemmConfig, build_program, reference
from hwforge.rtl.gemm.axi_top import GemmAxi4
from hwforge.rtl.tb.verilator import TB_NAME, build

BENCH = "hwforge.rtl.tb.cocotb_gemm_axi_tb"

CFG32 = GemmConfig(rows=4, cols=4, width=8, acc_width=32, dataflow="os", op_depth=16, out_depth=64, bus_width=32)
CFG128 = GemmConfig(rows=4, cols=4, width=8, acc_width=32, dataflow="ws", op_depth=8, out_depth=64,
                    bus_width=128)

#: name -> design (config, fault, adapter limits) and bench settings (``pause``: probability that any AXI
#: channel, on either interface, is paused in a cycle; ``case``: the network it runs).
INSTANCES: dict[str, dict] = {
    "g32": {"cfg": CFG32, "max_burst": 16, "max_outstanding": 8, "pause": 0.5, "case": "mlp"},
    "g128": {"cfg": CFG128, "max_burst": 8, "max_outstanding": 4, "pause": 0.5, "case": "conv"},
    "flip": {"cfg": CFG32, "fault": "flip_acc_bit", "max_burst": 16, "max_outstanding": 8, "pause": 0.3,
             "case": "mlp"},
}
GOOD = ["g32", "g128"]
#: Cycles STATUS.done may trail the last B response by (the accelerator's own finishing states).
DONE_SLACK = 16


def _network(name: str):
    """The instance's program and golden outputs: a two-layer MLP, or conv -> fc -> fc with gather tables."""
    layers, x = mlp(1, m=6, k=13, n=7) if INSTANCES[name]["case"] == "mlp" else conv_net(2)
    cfg = INSTANCES[name]["cfg"]
    return build_program(cfg, layers, x), reference(cfg, layers, x)


class GemmAxiTestTop(wiring.Component):
    """`GemmAxi4` instances side by side, every port of instance ``n`` on the top as ``n_<port>``."""

    def __init__(self, instances: dict[str, dict]):
        self.parts = {name: GemmAxi4(s["cfg"], s.get("fault"), max_burst=s["max_burst"],
                                     max_outstanding=s["max_outstanding"]) for name, s in instances.items()}
        super().__init__({f"{name}_{port}": member for name, part in self.parts.items()
                          for port, member in part.signature.members.items()})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for name, part in self.parts.items():
            m.submodules[name] = part
            for port, member in part.signature.members.items():
                outer, inner = getattr(self, f"{name}_{port}"), getattr(part, port)
                m.d.comb += outer.eq(inner) if member.flow == Out else inner.eq(outer)
        return m


@pytest.fixture(scope="module")
def gemm_axi_build(build_cache) -> Path:
    """The Verilator model of all three instances (cached by Verilog hash across sessions)."""
    return build({"gemm_axi_top.v": verilog.convert(GemmAxiTestTop(INSTANCES), name=TB_NAME)}, build_cache)


def _simulate(build_dir: Path, work: Path, names: list[str], runs: int, seed: int = 1) -> tuple[dict | None, str]:
    """Run the bench on the instances ``names`` (the others stay idle); returns ``{name: [run results]}`` (None
    if the cocotb test failed, e.g. on an AxiRam protocol assertion) and the simulation log."""
    from cocotb_tools.runner import get_runner

    from hwforge.toolchain import activate_verilator

    instances = []
    for n in names:
        prog, _ = _network(n)
        instances.append({"name": n, "bus_width": INSTANCES[n]["cfg"].bus_width, "words": prog.words,
                          "out_lo": prog.out_lo, "pause": INSTANCES[n]["pause"], "runs": runs})
    (work / "config.json").write_text(json.dumps({"seed": seed, "max_cycles": 100_000, "instances": instances}))
    result = work / "result.json"
    activate_verilator()
    try:
        get_runner("verilator").test(test_module=BENCH, hdl_toplevel=TB_NAME, hdl_toplevel_lang="verilog",
                                     build_dir=build_dir, test_dir=work, log_file=work / "sim.log",
                                     plusargs=[f"+config={work / 'config.json'}", f"+result={result}"])
    except SystemExit:              # the runner exits when the cocotb test fails
        pass
    log = (work / "sim.log").read_text()
    return (json.loads(result.read_text()) if result.exists() else None), log


def _mismatched_layers(name: str, run: dict) -> list[int]:
    prog, ref = _network(name)
    got = prog.read_outputs(run["outputs"], base=prog.out_lo)
    return [i for i, (g, w) in enumerate(zip(got, ref, strict=True)) if not np.array_equal(g, w)]


@pytest.fixture(scope="module")
def good_results(gemm_axi_build, tmp_path_factory) -> dict:
    """The good instances, simulated together once, each started twice."""
    work = tmp_path_factory.mktemp("gemm_axi_good")
    results, log = _simulate(gemm_axi_build, work, GOOD, runs=2)
    assert results is not None, f"bench failed; see {work / 'sim.log'}:\n{log[-3000:]}"
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", GOOD)
def test_outputs_bit_exact(good_results, name):
    """Both runs finish and every layer's output in the AxiRam equals the integer golden model."""
    runs = good_results[name]
    assert len(runs) == 2 and not any(r["timed_out"] for r in runs), [r["status"] for r in runs]
    for k, run in enumerate(runs):
        assert _mismatched_layers(name, run) == [], f"{name} run {k}"


@pytest.mark.slow
@pytest.mark.parametrize("name", GOOD)
def test_host_view_is_consistent(good_results, name):
    """STATUS idle before the first start and done after it (and left at done until the next start); CYCLES is
    the start-to-last-write-response time and covers every data beat; all traffic stays in the image, outputs
    are written once each, the program is not overwritten and no AXI error is flagged."""
    prog, _ = _network(name)
    runs = good_results[name]
    assert [r["status_before"] for r in runs] == [0, 2] and all(r["status"] == 2 for r in runs), runs
    for r in runs:
        summary = {k: v for k, v in r.items() if k != "outputs"}
        assert r["error"] == 0 and r["clobbered"] == 0 and r["out_of_image"] == 0, summary
        assert r["w_beats"] == r["b_resps"] == r["aw_bursts"] == prog.size - prog.out_lo, summary
        assert r["r_beats"] > 0 and r["ar_bursts"] <= r["r_beats"], summary
        drained = r["last_b_cycle"] - r["start_cycle"]
        assert r["r_beats"] + r["w_beats"] <= r["cycles"], summary
        assert drained <= r["cycles"] <= drained + DONE_SLACK, summary
        assert r["cycles"] < r["done_seen_cycle"] - r["start_cycle"], summary


@pytest.mark.slow
def test_fault_is_caught(gemm_axi_build, tmp_path):
    """The same bench on a design with a flipped accumulator bit must report mismatching outputs."""
    results, log = _simulate(gemm_axi_build, tmp_path, ["flip"], runs=1)
    assert results is not None, f"bench failed:\n{log[-3000:]}"
    run = results["flip"][0]
    assert not run["timed_out"] and run["status"] == 2, {k: v for k, v in run.items() if k != "outputs"}
    assert _mismatched_layers("flip", run), "flip_acc_bit went unnoticed"


@pytest.mark.parametrize("kw, what", [({"fault": "nope"}, "fault"), ({"max_burst": 0}, "max_burst"),
                                      ({"max_outstanding": 0}, "max_outstanding")])
def test_bad_parameters_raise_config_error(kw, what):
    with pytest.raises(ConfigError, match=what):
        GemmAxi4(CFG32, **kw)
