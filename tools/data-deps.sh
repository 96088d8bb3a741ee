#!/usr/bin/env bash
# Set-up for the Fashion-MNIST test of tests/test_data.py, run by `make data-deps` (part of `make test`).
#
#   tools/data-deps.sh WORK_DIR
#
# Debian's dataset-fashion-mnist package (about 30 MB: the four IDX files in /usr/share/datasets/fashion-mnist,
# or $DATA_DEPS_FASHION_DIR) is what gm.load_fashion_mnist reads offline. This installs it with apt-get when its
# files are missing, and only when this runs as root where apt-get exists. Like tools/browser-deps.sh it never
# fails `make test`: what it cannot do it says in one line (prefixed "data-deps:") and writes to
# WORK_DIR/data-deps-problem.txt, and that one test is skipped while every other test runs.
# tests/test_data_deps.py runs it against fake apt-get and id commands.
set -u

if [ $# -ne 1 ]; then
  echo "usage: $0 WORK_DIR" >&2
  exit 2
fi
work_dir=$1
fashion=${DATA_DEPS_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
problem_file=$work_dir/data-deps-problem.txt

complete() {
  for f in "${files[@]}"; do [ -s "$fashion/$f" ] || return 1; done
}

mkdir -p "$work_dir" || exit 0
rm -f "$problem_file"
problem=
if complete; then
  exit 0
elif [ "$(id -u)" != 0 ]; then
  problem="Fashion-MNIST missing in $fashion, and apt-get needs root: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) and run make test again"
elif ! command -v apt-get >/dev/null 2>&1; then
  problem="Fashion-MNIST missing in $fashion, and there is no apt-get: put its four IDX files there by hand and run make test again"
else
  echo "data-deps: apt-get install dataset-fashion-mnist"
  log=$work_dir/data-deps-apt.log
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >"$log" 2>&1; then
    last=$(grep -E '^E:' "$log" | tail -n 1)
    problem="apt-get install dataset-fashion-mnist failed (${last:-see $log}); the full log is in $log"
  elif ! complete; then
    problem="the Fashion-MNIST files are still missing in $fashion after apt-get install dataset-fashion-mnist"
  fi
fi

if [ -n "$problem" ]; then
  echo "data-deps: $problem"
  echo "data-deps: the Fashion-MNIST test of tests/test_data.py will be skipped for this reason; every other test runs"
  printf '%s\n' "$problem" >"$problem_file"
fi
exit 0
