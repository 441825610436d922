#!/usr/bin/env bash
# `npm test`: every test, on the embedded defaults and on this machine's real PostgreSQL and
# Redis (started if they are down), then the scan of everything the run logged.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-services.sh
export TELESALUD_TEST_DATABASE_URL="${TELESALUD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export TELESALUD_TEST_REDIS_URL="${TELESALUD_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# This run's templates and logs, apart from any other run on the machine.
export TELESALUD_TEST_RUN_DIR="$PWD/.test-data/run-$$"
trap 'rm -rf "$TELESALUD_TEST_RUN_DIR"' EXIT

npx tsc -p tsconfig.json --noEmit
npx tsc -p web/tsconfig.json
npm run build --silent
npx vitest run "$@"
npx tsx scripts/scan-logs-for-health-data.ts
