#!/usr/bin/env bash
# The smoke pipeline's wall time on the embedded stores against the team servers
# (`zooflow server up --auth`: PostgreSQL, MLflow with basic auth, Prefect), in a fresh clone.
# Embedded: each run starts its own temporary Prefect server and writes mlflow/mlflow.db.
# Team: the same run reports to the servers (MLFLOW_TRACKING_URI, PREFECT_API_URL).
#
# Usage (from the repo root): bash benchmarks/team_mode.sh [RUNS] [WORKDIR]
# Not a test: the figures (min / median / max of RUNS runs each) go in the issue notes.
# Writes only under WORKDIR (default a temp dir that others may traverse: PostgreSQL runs as an
# unprivileged account when this runs as root); stops the servers it started.
set -euo pipefail
RUNS=${1:-3}
REPO=$(pwd)
WORK=${2:-$(mktemp -d -t zooflow-team-XXXXXX)}
chmod 755 "$WORK"
git clone -q "$REPO" "$WORK/repo"
cd "$WORK/repo"
make install > "$WORK/install.log"
.venv/bin/zooflow data ensure-demo > "$WORK/data.log" 2>&1
export ZOOFLOW_OFFLINE=1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stats() {  # min / median / max of the numbers on stdin
  sort -n | awk '{v[NR]=$1} END {printf "%.1f / %.1f / %.1f s", v[1], v[int((NR+1)/2)], v[NR]}'
}

time_runs() {  # $1: label; the runs use the environment as it is
  local times=()
  for n in $(seq "$RUNS"); do
    local start end
    start=$(date +%s.%N)
    .venv/bin/zooflow run classification --model vgg16-transfer --profile smoke > "$WORK/$1-$n.log" 2>&1 \
      || { echo "$1 run $n failed: $WORK/$1-$n.log"; tail -5 "$WORK/$1-$n.log"; exit 1; }
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  echo "| $1 | $(printf '%s\n' "${times[@]}" | stats) |"
}

trap '.venv/bin/zooflow server down > /dev/null 2>&1 || true' EXIT
echo "| classification vgg16-transfer smoke, $RUNS runs | wall min / median / max |"
echo "|---|---|"
time_runs embedded
start=$(date +%s.%N)
.venv/bin/zooflow server up --auth --postgres-port "$(free_port)" --mlflow-port "$(free_port)" \
  --prefect-port "$(free_port)" > "$WORK/server-up.log"
echo "| zooflow server up --auth (first start: initdb, both schemas) | $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f') s |"
eval "$(grep '^ *export ' "$WORK/server-up.log")"
time_runs team-servers
