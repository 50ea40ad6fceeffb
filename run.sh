#!/usr/bin/env bash
# Start Order Processor in embedded mode: http://127.0.0.1:8080 (docs at /docs).
# Extra arguments go to `orderproc serve` (--host, --port, --data-dir).
source "$(dirname "$0")/scripts/lib.sh"
sync_env --no-dev --inexact  # --inexact: leave dev tools of a shared venv alone
exec "$ROOT/.venv/bin/orderproc" serve "$@"
