"""The machine description: CPU and board names from /proc texts given as strings (no real /proc read
except in the last test)."""
from __future__ import annotations

import pytest

from fixres_edge.board import Board, describe_board


def arm_cpuinfo(parts, implementer="0x41", extra=""):
    blocks = [f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
              f"CPU implementer\t: {implementer}\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\n"
              f"CPU revision\t: 3\n" for i, part in enumerate(parts)]
    return "\n".join(blocks) + "\n" + extra


PI4_64 = arm_cpuinfo(["0xd08"] * 4, extra="Hardware\t: BCM2835\nRevision\t: c03114\n"
                                          "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
# 32-bit Raspberry Pi OS on a Pi 4: "model name" says only ARMv7.
PI4_32 = "\n".join(f"processor\t: {i}\nmodel name\t: ARMv7 Processor rev 3 (v7l)\nBogoMIPS\t: 108.00\n"
                   f"CPU implementer\t: 0x41\nCPU part\t: 0xd08\n" for i in range(4))
X86 = "".join(f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i5-8250U CPU @ "
              f"1.60GHz\nflags\t\t: fpu vme\n\n" for i in range(8))


@pytest.mark.aarch64
@pytest.mark.parametrize("cpuinfo, tree, arch, expected", [
    (PI4_64, "", "aarch64", Board("aarch64", "Cortex-A72", "Raspberry Pi 4 Model B Rev 1.4", 4)),
    (PI4_32, "Raspberry Pi 4 Model B Rev 1.1\x00", "armv7l", Board("armv7l", "Cortex-A72", "Raspberry Pi 4 Model B Rev 1.1", 4)),
    (arm_cpuinfo(["0xd0b"] * 4), "Raspberry Pi 5 Model B Rev 1.0\x00", "aarch64",
     Board("aarch64", "Cortex-A76", "Raspberry Pi 5 Model B Rev 1.0", 4)),
    (arm_cpuinfo(["0xd05"] * 4 + ["0xd0b"] * 4), "Radxa ROCK 5B\x00", "aarch64",
     Board("aarch64", "4x Cortex-A55 + 4x Cortex-A76", "Radxa ROCK 5B", 8)),
    (X86, "", "x86_64", Board("x86_64", "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", None, 8)),
])
def test_known_machines(cpuinfo, tree, arch, expected):
    assert describe_board(cpuinfo, tree, arch=arch) == expected


@pytest.mark.aarch64
def test_device_tree_wins_over_cpuinfo_model():
    board = describe_board(PI4_64, "Raspberry Pi Compute Module 4 Rev 1.0\x00", arch="aarch64")
    assert board.model == "Raspberry Pi Compute Module 4 Rev 1.0"


@pytest.mark.aarch64
def test_unknown_parts_are_shown_raw():
    # A part number of another implementer (0x51: Qualcomm) is not an ARM Ltd core of the same number.
    qualcomm = arm_cpuinfo(["0xd08"], implementer="0x51")
    assert describe_board(qualcomm, "", arch="aarch64").cpu == "ARM part 0xd08"
    assert describe_board(arm_cpuinfo(["0xfff"]), "", arch="aarch64").cpu == "ARM part 0xfff"


@pytest.mark.aarch64
def test_text_form():
    board = describe_board(PI4_64, "", arch="aarch64")
    assert str(board) == "aarch64 Cortex-A72 (4 cores) on Raspberry Pi 4 Model B Rev 1.4"
    assert str(Board("x86_64", "AMD EPYC", None, 2)) == "x86_64 AMD EPYC (2 cores)"
    assert board.to_dict() == {"arch": "aarch64", "cpu": "Cortex-A72", "model": "Raspberry Pi 4 Model B Rev 1.4",
                               "cores": 4}


def test_without_proc_texts_falls_back_to_the_platform():
    board = describe_board("", "")
    assert board.cpu and board.model is None and board.cores >= 1 and board.arch


def test_this_machine():
    board = describe_board()
    assert board.cpu and board.cores >= 1


def test_benchmark_uses_the_same_description():
    from fixres_edge import benchmark

    assert benchmark.cpu_model() == describe_board().cpu
    assert benchmark.board_model() == describe_board().model
