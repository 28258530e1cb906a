"""The HLS emitter: structure of the generated kernel, host code and build files, determinism, and that g++
compiles every variant as it is."""

from __future__ import annotations

import re
import subprocess

import pytest

from hwforge.errors import ConfigError
from hwforge.fpga.hls import HlsOptions, kernel_source, render
from hwforge.fpga.hls.native import CXXFLAGS
from hwforge.ir import OptimizerSpec, lower_optimizer

SPECS = {
    "adamw-fp32": OptimizerSpec(kind="adamw", lr=1e-3, weight_decay=0.01, half_copy=True),
    "adam-topk16": OptimizerSpec(kind="adam", lr=1e-3, grad_format="topk_fp16"),
    "sgd-fp16": OptimizerSpec(kind="sgd", lr=0.1, momentum=0.9, nesterov=True, grad_format="fp16", half_copy=True),
    "adagrad-topk32": OptimizerSpec(kind="adagrad", lr=0.1, initial_accumulator_value=0.1, grad_format="topk_fp32"),
}


def _files(key: str, **opts) -> dict[str, str]:
    spec = SPECS[key]
    return render(lower_optimizer(spec, 1000), spec, HlsOptions(**opts))


def test_kernel_interface_pragmas_and_guards() -> None:
    files = _files("adamw-fp32")
    cpp, h = files["hls/adamw_update.cpp"], files["hls/adamw_update.h"]
    assert 'extern "C" void adamw_update(' in cpp
    bundles = re.findall(r"#pragma HLS INTERFACE m_axi port = (\w+) offset = slave bundle = (gmem\d+)", cpp)
    assert [b for _, b in bundles] == [f"gmem{i}" for i in range(len(bundles))]  # one bundle per stream
    assert {p for p, _ in bundles} == {"param_in", "param_out", "exp_avg_in", "exp_avg_out", "exp_avg_sq_in",
                                       "exp_avg_sq_out", "grad", "param_fp16"}
    for scalar in ("n", "inv_scale", "neg_step_size", "bc2_sqrt", "decay", "return"):
        assert f"#pragma HLS INTERFACE s_axilite port = {scalar}\n" in cpp
    assert cpp.count("#pragma HLS PIPELINE II = 1") == 3  # read, compute, write loops
    assert "read:" in cpp and "compute:" in cpp and "write:" in cpp and "DATAFLOW" not in cpp
    # vendor types only under the Vitis guard; plain C++ (and _Float16) otherwise; no vendor header shipped
    guarded, plain = h.split("#else", 1)
    assert "hls::vector<float, 16>" in guarded and "typedef half fp16_t;" in guarded
    assert "#if defined(__SYNTHESIS__) || defined(__VITIS_HLS__)" in guarded
    assert "typedef _Float16 fp16_t;" in plain and "#include <hls" not in plain
    assert not any(name.endswith((".h", ".hpp")) and "ap_" in name for name in files)


def test_dataflow_variant_uses_streams_between_processes() -> None:
    cpp = _files("adam-topk16", dataflow=True)["hls/adam_update.cpp"]
    assert "#pragma HLS DATAFLOW" in cpp
    for proc in ("load(", "load_topk(", "compute(", "store("):
        assert f"    {proc}" in cpp
    assert "hwf_stream<f32x16> s_grad_dense;" in cpp


def test_host_makefile_and_link_cfg() -> None:
    files = _files("adamw-fp32", memory="HBM")
    host, make, link = files["host/host.cpp"], files["Makefile"], files["link.cfg"]
    for api in ("xrt::device device(0)", "xrt::kernel kernel(", "xrt::bo::flags::p2p", "kernel.group_id(",
                "O_DIRECT", "run.wait()"):
        assert api in host, api
    assert "PLATFORM ?=" in make and "$(VPP) -c -k $(KERNEL)" in make and "$(VPP) -l" in make
    assert "--config link.cfg" in make
    sp = dict(re.findall(r"^sp=adamw_update_1\.(\w+):(\S+)$", link, re.M))
    assert sp["param_in"] == sp["param_out"] != sp["grad"]  # in/out of one buffer share its bank
    assert link.startswith("# v++ link") and "[connectivity]" in link


def test_output_is_byte_deterministic() -> None:
    for key in SPECS:
        assert _files(key) == _files(key)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="chunk"):
        HlsOptions(chunk=100)
    with pytest.raises(ConfigError, match="fault"):
        HlsOptions(fault="sometimes")
    spec = SPECS["sgd-fp16"]
    with pytest.raises(ConfigError, match="no_bias_correction"):
        kernel_source(lower_optimizer(spec, 10), HlsOptions(fault="no_bias_correction"))


@pytest.mark.parametrize("key", sorted(SPECS))
@pytest.mark.parametrize("dataflow", [False, True])
def test_gxx_compiles_every_variant_warning_free(tmp_path, key: str, dataflow: bool) -> None:
    spec = SPECS[key]
    name, header, source = kernel_source(lower_optimizer(spec, 10), HlsOptions(dataflow=dataflow))
    (tmp_path / f"{name}.h").write_text(header)
    (tmp_path / f"{name}.cpp").write_text(source)
    proc = subprocess.run(["g++", *CXXFLAGS, "-fsyntax-only", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label",
                           str(tmp_path / f"{name}.cpp")], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr


XRT_STUBS = {  # just enough of the XRT native API's shape to syntax-check host.cpp (not shipped anywhere)
    "xrt/xrt_device.h": "#pragma once\n#include <string>\nnamespace xrt { struct uuid {}; struct device { explicit "
                        "device(int) {} uuid load_xclbin(const std::string&) { return {}; } }; }\n",
    "xrt/xrt_bo.h": "#pragma once\n#include <cstddef>\n#include \"xrt_device.h\"\n#define XCL_BO_SYNC_BO_TO_DEVICE 0\n"
                    "#define XCL_BO_SYNC_BO_FROM_DEVICE 1\nnamespace xrt { struct bo {"
                    " enum class flags { normal, p2p }; bo(const device&, size_t, flags, int) {}"
                    " bo(const device&, size_t, int) {} template <typename T>"
                    " T map() { return nullptr; } void sync(int) {} size_t size() const { return 0; } }; }\n",
    "xrt/xrt_kernel.h": "#pragma once\n#include \"xrt_device.h\"\nnamespace xrt { struct run { void wait() {} }; "
                        "struct kernel { kernel(const device&, const uuid&, const char*) {} int group_id(int) const "
                        "{ return 0; } template <typename... A> run operator()(A&&...) { return {}; } }; }\n",
}


@pytest.mark.parametrize("key", ["adamw-fp32", "adam-topk16", "sgd-fp16"])
def test_host_program_is_valid_cpp_against_the_xrt_api_shape(tmp_path, key: str) -> None:
    for name, text in XRT_STUBS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "host.cpp").write_text(_files(key)["host/host.cpp"])
    proc = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-fsyntax-only", f"-I{tmp_path}",
                           str(tmp_path / "host.cpp")], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
