#!/usr/bin/env bash
# ./build.sh              lint, types and every test
# ./build.sh SERVICE      one service's tests (users, inventory, orders, gateway, common, ui)
# ./build.sh --test-only  tests without lint and types
# ./build.sh --build-only build the wheel into dist/
source "$(dirname "$0")/scripts/lib.sh"
cd "$ROOT"

mode=all service=""
for arg in "$@"; do
  case "$arg" in
    --test-only) mode=test ;;
    --build-only) mode=build ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) service="$arg" ;;
  esac
done

if [ "$mode" = build ]; then
  ensure_uv
  "$UV" build --wheel --out-dir dist
  exit 0
fi

sync_env
export PATH="$ROOT/.venv/bin:$PATH"
# Without a bytecode cache every Python process the suite starts (servers, CLI runs, pytest's
# workers) compiles each module it imports again, about 1 s of CPU a server: the tests took
# 246 s with PYTHONDONTWRITEBYTECODE set and 188-200 s without it. The caches go into .venv and
# __pycache__/, which git ignores.
unset PYTHONDONTWRITEBYTECODE

if [ "$mode" != build ]; then
  # Real servers the tests start on free loopback ports (nothing is mocked); prometheus for
  # `promtool check metrics` on /metrics, nginx (and openssl for a test certificate) for the
  # generated routing configuration (those tests fail in CI without them).
  apt_install redis-server postgresql chromium prometheus nginx openssl
fi

if [ "$mode" = all ] && [ -z "$service" ]; then
  echo "==> ruff"; ruff check src tests bench; ruff format --check src tests bench
  echo "==> mypy"; mypy
fi

echo "==> pytest"
# The browser tests run in a pytest of their own: Playwright's sync API keeps an event loop
# running in the main thread, which breaks the asyncio tests that would follow it.
status=0
case "$service" in
  "") ;;
  ui|webui) exec pytest -q tests/ui ;;
  *) exec pytest -q -k "$service" --ignore=tests/ui tests ;;
esac
# On every core: each test file runs whole in one worker (--dist loadfile), so a module's servers
# start once; every server a test starts picks a free port, so workers never collide. The
# browser tests run beside them: they mostly wait (for the browser, for a tick), and waited
# alone for a minute after the rest. Their output follows the others'.
browser_log="$(mktemp)" browser=""
trap '[ -n "$browser" ] && kill "$browser" 2>/dev/null; rm -f "$browser_log"' EXIT
pytest -q tests/ui >"$browser_log" 2>&1 &
browser=$!
pytest -q -n auto --dist loadfile --ignore=tests/ui tests || status=$?
echo "==> pytest (browser)"
wait "$browser" || status=$?
browser=""
cat "$browser_log"
exit $status
