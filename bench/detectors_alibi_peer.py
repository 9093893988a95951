"""Peer side of bench/detectors_quality_synthetic.py: alibi-detect's MMDDrift and KSDrift on every window of an .npz.

Runs only inside bench/.alibi-venv (alibi-detect is BSL 1.1 and pins numpy<2; never a dependency
of shiftwatch). Keys are ``reference_<window>`` / ``current_<window>``; MMDDrift runs on the
windows named in the ``mmd_windows`` array (it is the slow one), KSDrift (per-feature KS,
Bonferroni, alibi's default) on all. Usage:
bench/.alibi-venv/bin/python bench/detectors_alibi_peer.py WINDOWS.npz OUT.json PERMUTATIONS
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from alibi_detect.cd import KSDrift, MMDDrift


def main() -> None:
    windows_path, out_path, permutations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    windows = np.load(windows_path, allow_pickle=False)
    mmd_windows = set(str(w) for w in windows["mmd_windows"])
    names = [key[len("reference_"):] for key in windows.files if key.startswith("reference_")]
    results: dict[str, dict] = {}
    for name in names:
        reference, current = windows[f"reference_{name}"], windows[f"current_{name}"]
        start = time.perf_counter()
        ks = KSDrift(reference, p_val=0.05).predict(current)["data"]
        results[name] = {"ks": {"drift": bool(ks["is_drift"]), "seconds": time.perf_counter() - start}}
        if name in mmd_windows:
            start = time.perf_counter()
            mmd = MMDDrift(reference, backend="pytorch", p_val=0.05, n_permutations=permutations, device="cpu")
            data = mmd.predict(current)["data"]
            results[name]["mmd"] = {
                "drift": bool(data["is_drift"]), "p_value": float(data["p_val"]), "seconds": time.perf_counter() - start
            }
    with open(out_path, "w") as handle:
        json.dump({"torch_threads": torch.get_num_threads(), "windows": results}, handle)


if __name__ == "__main__":
    main()
