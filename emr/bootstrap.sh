#!/usr/bin/env bash
# EMR bootstrap action for Fruits!: runs on every node (as the hadoop user) before Spark starts.
#   1. creates the virtualenv /opt/fruits/venv with the node's python3 (3.9 on EMR 7.x),
#   2. installs the pinned requirements minus pyspark and jupyterlab (EMR ships Spark and JupyterHub,
#      and spark-submit puts EMR's own pyspark first on the PYTHONPATH),
#   3. installs the fruits_lib wheel with --no-deps (its dependencies are the pins of step 2),
#   4. pre-fetches the MobileNetV2 ImageNet weights into /opt/fruits/cache (FRUITS_CACHE_DIR),
#      so that no executor downloads them at run time.
# Usage: bootstrap.sh s3://BUCKET/PREFIX/code WHEEL_FILE_NAME
# FRUITS_ROOT and FRUITS_PROFILE_D override /opt/fruits and /etc/profile.d (used by the offline tests only).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: bootstrap.sh s3://BUCKET/PREFIX/code WHEEL_FILE_NAME" >&2
  exit 2
fi
ARTIFACTS="${1%/}"
WHEEL_NAME="$2"
ROOT="${FRUITS_ROOT:-/opt/fruits}"
PROFILE_D="${FRUITS_PROFILE_D:-/etc/profile.d}"
VENV="$ROOT/venv"
CACHE="$ROOT/cache"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { echo "[fruits-bootstrap] $*"; }

case "$ARTIFACTS" in
  s3://*) ;;
  *) echo "bootstrap.sh: the artifacts prefix must be an s3:// URI, got: $ARTIFACTS" >&2; exit 2 ;;
esac
case "$WHEEL_NAME" in
  */* | "") echo "bootstrap.sh: bad wheel file name: $WHEEL_NAME" >&2; exit 2 ;;
  *.whl) ;;
  *) echo "bootstrap.sh: not a wheel: $WHEEL_NAME" >&2; exit 2 ;;
esac

sudo mkdir -p "$ROOT" "$CACHE"
sudo chown -R "$(id -u):$(id -g)" "$ROOT"

log "downloading requirements.txt and $WHEEL_NAME from $ARTIFACTS"
aws s3 cp --only-show-errors "$ARTIFACTS/requirements.txt" "$WORK/requirements.txt"
aws s3 cp --only-show-errors "$ARTIFACTS/$WHEEL_NAME" "$WORK/$WHEEL_NAME"

# Drop pyspark and jupyterlab (exact names only: a hypothetical "pyspark-stubs" would stay).
grep -viE '^[[:space:]]*(pyspark|jupyterlab)([^A-Za-z0-9_.-]|$)' "$WORK/requirements.txt" \
  > "$WORK/requirements-emr.txt" || true

log "creating $VENV with $(python3 --version 2>&1)"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$WORK/requirements-emr.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$WORK/$WHEEL_NAME"

# Drivers started from a login shell (spark-submit on the primary node) read FRUITS_CACHE_DIR from here;
# Spark executors and the YARN application master get it from spark-defaults (see emr/cluster.json).
echo "export FRUITS_CACHE_DIR=$CACHE" | sudo tee "$PROFILE_D/fruits.sh" > /dev/null
export FRUITS_CACHE_DIR="$CACHE"

log "pre-fetching the MobileNetV2 ImageNet weights and their TFLite form into $CACHE (the driver broadcasts the model)"
"$VENV/bin/python" -m fruits_lib fetch-weights --weights imagenet

# Executors (yarn), Livy sessions (livy) and notebooks run as other users: they only need to read.
sudo chmod -R a+rX "$ROOT"
log "done"
