# Poverty Mapper: the two commands a fresh Debian 12 machine needs are `make demo`
# and `make test`; both install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SITE := $(VENV)/lib/python3.11/site-packages
PLUGIN_DIR := build/plugins
QGIS_PROCESS := /usr/bin/qgis_process.bin
export QT_QPA_PLATFORM := offscreen

.PHONY: setup demo test model model-nightlights model-lights model-cnn eval eval-kinshasa eval-renders eval-lights lights bench package clean

setup: $(VENV)/.installed

# The checkout is installed editable as the package `poverty_mapper`, with the command
# line `poverty-mapper` in $(VENV)/bin (pyproject.toml), for servers and Dask workers.
$(VENV)/.installed: requirements.txt requirements-dev.txt scripts/install_system.sh pyproject.toml
	scripts/install_system.sh
	[ -x $(PY) ] || /usr/bin/python3.11 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# Registers this checkout as the plugin `poverty_mapper` for qgis_process.
$(PLUGIN_DIR)/poverty_mapper:
	mkdir -p $(PLUGIN_DIR)
	ln -sfn "$(CURDIR)" $@

demo: setup $(PLUGIN_DIR)/poverty_mapper
	QGIS_PROCESS=$(QGIS_PROCESS) PLUGIN_DIR=$(PLUGIN_DIR) SITE=$(SITE) PY=$(PY) scripts/demo.sh

# The whole suite with the kernels this CPU picks, then the engine's tests again as an
# AVX2-only CPU runs them (numpy's loops, OpenBLAS, PyTorch, oneDNN and MKL held to AVX2,
# checked from each library's own report before the tests start; scripts/emulate_cpu.py):
# every machine checks both numeric paths.
test: setup
	$(PY) -m pytest
	$(PY) scripts/emulate_cpu.py avx2 -- $(PY) -m pytest -q tests/engine

# The bundled LSMS models: the RGB histogram model and the night-lights model (the dock's default).
model: setup model-nightlights
	$(PY) scripts/train_default_model.py

model-nightlights: setup
	$(PY) scripts/train_nightlights_model.py

# The bundled model of the Africa night lights (resources/lights/) on the DHS clusters of
# 22 countries: maps a region with no image. Variant and penalty by leave-one-country-out.
model-lights: setup
	$(PY) scripts/train_africa_lights_model.py

# The proxy networks on the real Kinshasa imagery with several seeds each (ImageNet start x5,
# small CNN x10, random start x3), their survey fits, then the bundled CNN model: the median run.
model-cnn: setup
	$(PY) scripts/train_kinshasa_cnn.py --force
	$(PY) scripts/evaluate_kinshasa.py
	$(PY) scripts/train_kinshasa_cnn.py --bundle resources/models/kinshasa_cnn.povmodel

# Scores on the real data (the bundled Africa lights' variants on the DHS clusters among
# them); reads the proxy networks of out/kinshasa/ (trains them first when they are missing).
eval: setup eval-renders
	$(PY) scripts/evaluate.py

# The Kinshasa part of make eval alone: the proxy networks' seeds, their survey fits and the survey stage.
eval-kinshasa: setup
	$(PY) scripts/evaluate_kinshasa.py

# The bundled Kinshasa CNN's maps of generated renders of the two shared scenes against
# the shared render's map, the two dates against each other, and r² at the DHS clusters
# of each date's map (about 12 minutes on 2 CPU cores).
eval-renders: setup
	$(PY) scripts/evaluate_renders.py

# The bundled Africa night lights (resources/lights/) rebuilt from a clone of
# github.com/freetiler/nasa-blackmarble: `make lights BLACKMARBLE=path/to/clone`.
lights: setup
	@[ -n "$(BLACKMARBLE)" ] || { echo "give BLACKMARBLE=<clone of github.com/freetiler/nasa-blackmarble>"; exit 2; }
	$(PY) scripts/build_africa_lights.py "$(BLACKMARBLE)"

# The bundled lights' variants on the DHS clusters, in country and out of country, the
# default's intervals per country, and the bundled lights model on the LSMS clusters.
eval-lights: setup
	$(PY) scripts/evaluate_africa_lights.py

# Throughput and memory on generated rasters; `make bench DEVICE=cuda` on a GPU machine.
DEVICE ?= cpu
bench: setup
	$(PY) scripts/bench.py --device $(DEVICE)

# The plugin zip for the QGIS plugin repository (tracked run-time files only).
package:
	python3 scripts/package.py

clean:
	rm -rf build dist out .pytest_cache .hypothesis
