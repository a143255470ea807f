#!/usr/bin/env bash
# Start Ray on one POM server by hand (when not using `ray up ray_cluster.yaml`).
#
# Every POM server carries the custom Ray resource `pom_server`: the CampaignDirector starts
# one MediaGateway on each node that has it and spreads CampaignManagers over those nodes.
# Ray workers run at normal priority (RAY_worker_niceness=0) instead of Ray's default nice 15.
set -euo pipefail

usage() {
    cat >&2 <<USAGE
usage: $(basename "$0") head
       $(basename "$0") worker HEAD_ADDRESS

  head                  start the Ray head on this server (port \$RAY_PORT, default 6379)
  worker HEAD_ADDRESS   join the cluster whose head is HEAD_ADDRESS (host:port)

environment:
  RAY       the ray executable (default: ray on PATH, e.g. ~/pom/.venv/bin/ray)
  RAY_PORT  port of the head's GCS (head only; default 6379)

After the head is up, start POM on it with POM_RAY_ADDRESS=auto and POM_DATABASE_URL set to a
PostgreSQL every server can reach (see docs/operations.md and cluster/pom.service).
USAGE
    exit 2
}

RAY=${RAY:-ray}
RESOURCES='{"pom_server": 1}'
export RAY_worker_niceness=0

[[ $# -ge 1 ]] || usage
case "$1" in
    head)
        [[ $# -eq 1 ]] || usage
        "$RAY" stop || true
        exec "$RAY" start --head --port="${RAY_PORT:-6379}" --resources="$RESOURCES"
        ;;
    worker)
        [[ $# -eq 2 ]] || usage
        "$RAY" stop || true
        exec "$RAY" start --address="$2" --resources="$RESOURCES"
        ;;
    -h|--help|help)
        usage
        ;;
    *)
        usage
        ;;
esac
