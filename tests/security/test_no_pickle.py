"""No code path unpickles: every loader in the package is called in its pickle-free form.

A ratchet over the source (ast, not grep), so a domain merged later cannot add ``torch.load``
without ``weights_only=True`` or ``np.load`` without ``allow_pickle=False`` unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shiftwatch", "collector", "detectors", "labeling", "retrain", "rollout", "dashboards", "migrations")
# Calls that unpickle whatever they are given.
FORBIDDEN = {"pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads", "dill.load", "dill.loads",
             "joblib.load", "marshal.loads", "shelve.open", "pd.read_pickle", "pandas.read_pickle"}  # fmt: skip
# Calls that are safe only with a keyword set just so.
REQUIRED_KEYWORD = {"torch.load": ("weights_only", True), "np.load": ("allow_pickle", False),
                    "numpy.load": ("allow_pickle", False)}  # fmt: skip


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def unsafe_loads(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if name in FORBIDDEN:
            found.append(f"{filename}:{node.lineno} {name}")
        if name in REQUIRED_KEYWORD:
            keyword, value = REQUIRED_KEYWORD[name]
            given = {k.arg: k.value for k in node.keywords}
            if not (isinstance(given.get(keyword), ast.Constant) and given[keyword].value is value):
                found.append(f"{filename}:{node.lineno} {name} without {keyword}={value}")
    return found


def test_no_loader_in_the_package_unpickles():
    files = [p for package in PACKAGES if (ROOT / package).is_dir() for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 20
    found = [hit for path in files for hit in unsafe_loads(path.read_text(), str(path.relative_to(ROOT)))]
    assert found == []


def test_the_ratchet_sees_unsafe_calls():
    source = "import numpy as np, torch, pickle\nnp.load(f)\ntorch.load(p, weights_only=False)\npickle.loads(b)\nnp.load(f, allow_pickle=False)\n"
    assert [hit.split(" ", 1)[1] for hit in unsafe_loads(source, "x.py")] == [
        "np.load without allow_pickle=False",
        "torch.load without weights_only=True",
        "pickle.loads",
    ]
