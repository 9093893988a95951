"""Peer side of bench/detectors_speed.py: alibi-detect's MMDDrift (pytorch backend) on the cases in an .npz, JSON out.

Runs only inside bench/.alibi-venv (alibi-detect is BSL 1.1 and pins numpy<2; it is never a
dependency of shiftwatch). Usage: bench/.alibi-venv/bin/python bench/alibi_mmd_peer.py CASES.npz OUT.json PERMUTATIONS
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from alibi_detect.cd import MMDDrift


def main() -> None:
    cases_path, out_path, permutations = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    cases = np.load(cases_path, allow_pickle=False)
    names = [key[len("reference_"):] for key in cases.files if key.startswith("reference_")]
    results = {}
    for name in names:
        reference, current = cases[f"reference_{name}"], cases[f"current_{name}"]
        start = time.perf_counter()
        detector = MMDDrift(reference, backend="pytorch", p_val=0.05, n_permutations=permutations, device="cpu")
        prediction = detector.predict(current)
        seconds = time.perf_counter() - start
        data = prediction["data"]
        results[name] = {
            "seconds": seconds,
            "p_value": float(data["p_val"]),
            "drift": bool(data["is_drift"]),
            "statistic": float(data["distance"]),
        }
    with open(out_path, "w") as handle:
        json.dump({"torch_threads": torch.get_num_threads(), "cases": results}, handle)


if __name__ == "__main__":
    main()
