#!/usr/bin/env bash
# Set-up for tests/test_browser.py, run by `make browser-deps` (part of `make test`).
#
#   tools/browser-deps.sh JS_DIR NPM_PACKAGE...
#
# 1. Debian's Chromium (/usr/bin/chromium, or $BROWSER_DEPS_CHROMIUM) and `npm`: only the one that is
#    missing is installed, with apt-get, and only when this runs as root where apt-get exists. `npm` is
#    checked on PATH: Node.js from NodeSource ships its own npm, and Debian's `npm` package conflicts
#    with that `nodejs` ("held broken packages"), so it is never asked for while an npm is there.
# 2. The npm packages the test serves in place of CDNs, installed into JS_DIR/node_modules.
#
# This script never fails `make test`: whatever it cannot do, it says in one line (prefixed
# "browser-deps:") and writes to JS_DIR/setup-problem.txt, and the browser test is skipped with that
# reason while every other test runs. When everything is in place it removes that file and touches
# JS_DIR/.installed. tests/test_browser_deps.py runs it against fake apt-get, id and npm commands.
set -u

if [ $# -lt 2 ]; then
  echo "usage: $0 JS_DIR NPM_PACKAGE..." >&2
  exit 2
fi
js_dir=$1
shift
chromium=${BROWSER_DEPS_CHROMIUM:-/usr/bin/chromium}
problem_file=$js_dir/setup-problem.txt
problems=()

mkdir -p "$js_dir" || exit 0
rm -f "$problem_file" "$js_dir/.installed"

missing=()
[ -x "$chromium" ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    problems+=("${missing[*]} missing, and apt-get needs root: install Debian's ${missing[*]} (apt-get install ${missing[*]}) and run make test again")
  elif ! command -v apt-get >/dev/null 2>&1; then
    problems+=("${missing[*]} missing, and there is no apt-get: install ${missing[*]} by hand and run make test again")
  else
    echo "browser-deps: apt-get install ${missing[*]}"
    log=$js_dir/apt-get.log
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
      last=$(grep -E '^E:' "$log" | tail -n 1)
      problems+=("apt-get install ${missing[*]} failed (${last:-see $log}); the full log is in $log")
    fi
  fi
fi

if [ ! -x "$chromium" ] && [ ${#problems[@]} -eq 0 ]; then
  problems+=("$chromium is still missing after apt-get install chromium")
fi

if command -v npm >/dev/null 2>&1; then
  if ! npm install --prefix "$js_dir" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error "$@" \
       >"$js_dir/npm.log" 2>&1; then
    problems+=("npm install $* failed; the log is in $js_dir/npm.log")
  fi
elif [ ${#problems[@]} -eq 0 ]; then
  problems+=("npm is still missing after apt-get install npm")
fi

if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "browser-deps: $p"; done
  echo "browser-deps: tests/test_browser.py will be skipped for this reason; every other test runs"
  printf '%s\n' "${problems[@]}" >"$problem_file"
else
  touch "$js_dir/.installed"
fi
exit 0
