# The two commands of the README: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml client/pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo demo-realistic bench-own-model test lint install test-services bench clean wheels

# The SDK (client/, distribution shiftwatch-client) installs editable beside the server that depends on it.
# [all] includes [ray] (ray[serve]==2.60.0, ~500 MB, ~2 min): tests/rollout/test_ray_serve.py needs it.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e ./client -e '.[all,train,test,broker]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shiftwatch demo --yes

# The demo's story on the realistic example (docs/own-model.md): ResNet-18 (width 0.25) on 3x96x96
# textured digits, registered through the model contract like your own model, then served, drifted,
# alerted, labeled, retrained, int8-quantized, shadowed, canaried and promoted (5 min 24 s measured on 2 shared cores).
demo-realistic: $(STAMP)
	$(VENV)/bin/shiftwatch demo --realistic --yes --out shiftwatch-demo-realistic

# The realistic example as a benchmark: trained, pruned, int8-quantized, timed against eager PyTorch and
# served through the batcher; writes bench/results/own_model.json (7-13 min on 2 shared cores).
bench-own-model: $(STAMP)
	$(PY) bench/own_model.py

# The real services the tests talk to besides PostgreSQL: a Label Studio server (its own
# venv, its pins clash with ours) and Debian's Chromium for the console's browser tests.
test-services:
	bash tests/support/studio_venv.sh
	bash tests/support/prometheus_fetch.sh
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "note: install Debian's chromium for the browser tests (apt-get install chromium)"; fi; \
	fi

# ruff, then mypy over the package as it installs (see .ci/lint); CI runs it before the tests.
lint: $(STAMP)
	PY=$(PY) bash .ci/lint

test: $(STAMP) test-services
	$(PY) -m pytest -q

# Both distributions as wheels in dist/: shiftwatch-client (the SDK, numpy only) for serving images,
# shiftwatch (the service) which depends on it.
wheels: $(STAMP)
	rm -rf dist build client/build *.egg-info client/*.egg-info; mkdir -p dist  # a stale build/ would go into a wheel
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist ./client .

clean:
	rm -rf $(VENV) shiftwatch.db* shiftwatch-data dist build client/build
