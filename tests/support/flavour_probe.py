"""Run inside a flavour venv: load MODEL with PROVIDERS through OnnxClassifier and print one JSON line."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime

from shiftwatch.errors import Invalid
from shiftwatch.retrain.runtime import OnnxClassifier

model, providers, images = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
answer: dict = {"onnxruntime": onnxruntime.__version__, "available": onnxruntime.get_available_providers()}
try:
    classifier = OnnxClassifier(model, providers=providers)
except Invalid as refused:
    answer["refused"] = str(refused)
else:
    answer["registered"] = classifier.providers
    answer["placement"] = classifier.placement.nodes if classifier.placement else None
    answer["logits"] = classifier.run(images).logits.tolist()
print(json.dumps(answer))
