"""What a figure was measured on: CPU model, the widest vector ISA, cores; every bench JSON carries it.

Float results of training and the speed of int8 kernels both depend on the CPU (AVX2 vs
AVX-512, VNNI, AMX), so a figure without its CPU cannot be compared with the next machine's.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        facts.setdefault(key.strip(), value.strip())
    return facts


def widest_isa(flags: set[str]) -> str:
    """The widest x86 vector extension the CPU reports, with the int8 helpers beside it."""
    base = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/other"
    extras = [name for flag, name in (("avx512_vnni", "VNNI"), ("avx_vnni", "AVX-VNNI"), ("amx_int8", "AMX")) if flag in flags]
    return " + ".join([base, *extras])


def machine_facts() -> dict[str, object]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    capped = {name: os.environ[name] for name in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if name in os.environ}
    return {
        "cpu": info.get("model name", platform.processor() or platform.machine()),
        "vendor": info.get("vendor_id", "unknown"),
        "isa": widest_isa(flags),
        "isa_caps": capped,  # oneDNN/MKL capped below what the CPU offers, when set
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": load_average(),  # 1/5/15-minute, when the result was written: the host is shared
    }


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def write_result(name: str, result: dict[str, object], headline: tuple[str, ...]) -> Path:
    """``bench/results/<name>.json`` with the time and the machine added; prints the headline keys."""
    stamped = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine_facts(), **result}
    out = Path(__file__).resolve().parent / "results" / f"{name}.json"
    out.write_text(json.dumps(stamped, indent=2) + "\n")
    print(json.dumps({key: stamped[key] for key in headline}))
    return out
