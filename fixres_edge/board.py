"""What machine a measurement ran on: CPU, board and core count, in one record.

Read from Linux's ``/proc/cpuinfo`` and ``/proc/device-tree/model``. x86 names its CPU in
``model name``; ARM kernels give only a ``CPU part`` number, named here for the cores found on
boards (Cortex-A72 on a Raspberry Pi 4, Cortex-A76 on a Pi 5). The board comes from the device
tree, or from the ``Model`` line Raspberry Pi kernels add to ``/proc/cpuinfo``.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# ARM Ltd's "CPU part" numbers of common board cores (implementer 0x41); lscpu has the full table.
_ARM_IMPLEMENTER = "0x41"
_ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2",
}


@dataclass(frozen=True)
class Board:
    """The machine a measurement ran on.

    Attributes
    ----------
    arch : str
        ``platform.machine()``: ``"x86_64"``, ``"aarch64"``, ``"armv7l"``, ...
    cpu : str
        The CPU's name: x86 ``model name``, ARM core names (``"Cortex-A72"``, or
        ``"4x Cortex-A76 + 4x Cortex-A55"`` for mixed clusters), or the platform's.
    model : str or None
        The board (``"Raspberry Pi 4 Model B Rev 1.4"``), when the system names it.
    cores : int
        Logical CPUs.
    """

    arch: str
    cpu: str
    model: str | None
    cores: int

    def __str__(self) -> str:
        text = f"{self.arch} {self.cpu} ({self.cores} cores)"
        return f"{text} on {self.model}" if self.model else text

    def to_dict(self) -> dict:
        return {"arch": self.arch, "cpu": self.cpu, "model": self.model, "cores": self.cores}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _fields(cpuinfo: str) -> list[tuple[str, str]]:
    pairs = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


def _arm_cores(fields: list[tuple[str, str]]) -> str | None:
    """Core names from the per-processor ``CPU implementer`` / ``CPU part`` lines, or None when
    a part is not in the table."""
    counts: dict[str, int] = {}
    implementer = None
    for key, value in fields:
        if key == "CPU implementer":
            implementer = value.lower()
        elif key == "CPU part":
            part = value.lower()
            name = _ARM_PARTS.get(part) if implementer in (None, _ARM_IMPLEMENTER) else None
            if name is None:
                return None
            counts[name] = counts.get(name, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return " + ".join(f"{n}x {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) or None


def _raw_parts(fields: list[tuple[str, str]]) -> str | None:
    parts = sorted({value.lower() for key, value in fields if key == "CPU part"})
    return " + ".join(f"ARM part {p}" for p in parts) or None


def _macos_cpu() -> str | None:
    try:
        done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                              timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def describe_board(cpuinfo: str | None = None, device_tree_model: str | None = None, *,
                   arch: str | None = None) -> Board:
    """Describe this machine (or the one whose ``/proc`` texts are given).

    Parameters
    ----------
    cpuinfo : str, optional
        Text of ``/proc/cpuinfo``; read from the system when None ("" when there is none).
    device_tree_model : str, optional
        Text of ``/proc/device-tree/model``; read when None. "" means none.
    arch : str, optional
        Defaults to ``platform.machine()``.

    Returns
    -------
    Board
        ``cpu``: an ARM core named from its part number first (32-bit ARM kernels put only
        "ARMv7 Processor rev 3 (v7l)" into ``model name``), else ``model name``, else the raw part
        numbers, else the platform's name. ``model``: the device tree's, else cpuinfo's ``Model``.
        ``cores``: the ``processor`` entries of cpuinfo, else ``os.cpu_count()``.

    Examples
    --------
    >>> pi4 = "processor\\t: 0\\nCPU implementer\\t: 0x41\\nCPU part\\t: 0xd08\\n" * 4
    >>> str(describe_board(pi4 + "Model\\t: Raspberry Pi 4 Model B Rev 1.4\\n", "", arch="aarch64"))
    'aarch64 Cortex-A72 (4 cores) on Raspberry Pi 4 Model B Rev 1.4'
    """
    if cpuinfo is None:
        cpuinfo = _read("/proc/cpuinfo")
    if device_tree_model is None:
        device_tree_model = _read("/proc/device-tree/model")
    fields = _fields(cpuinfo)
    values: dict[str, str] = {}
    for key, value in fields:
        values.setdefault(key, value)
    cpu = _arm_cores(fields) or values.get("model name") or _raw_parts(fields)
    if not cpu and sys.platform == "darwin":
        cpu = _macos_cpu()
    cpu = cpu or platform.processor() or platform.machine() or "unknown"
    model = device_tree_model.replace("\x00", "").strip() or values.get("Model") or None
    processors = sum(1 for key, _ in fields if key == "processor")
    return Board(arch=arch or platform.machine() or "unknown", cpu=cpu, model=model,
                 cores=processors or os.cpu_count() or 1)
