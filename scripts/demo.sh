#!/usr/bin/env bash
# make demo: one whole campaign end to end on this machine.
#
# Brings up the dev stack (real Kafka, real Redis), starts the push simulator
# and the stages as separate processes (planner, 2 fanout instances, an APNs
# and an FCM sender, the control API), generates a synthetic audience, defines
# the campaign, plans, prepares, sends a proof, fires (pressing GO several
# times concurrently on purpose), waits for completion, prints the report and
# checks it against the simulator's own delivery record, then stops what it
# started (the dev stack stays up; `make down` stops it).
#
# Variables: DEMO_TOKENS (200000), DEMO_IOS_SHARE (0.6), DEMO_BAD_FRACTION
# (0.01 malformed records), DEMO_INVALID_FRACTION (0.005 tokens the provider
# refuses), DEMO_PRESSES (5 concurrent GO presses), DEMO_JSON (1 = JSON
# report), DEMO_TIMEOUT (600 s to wait for completion).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TOKENS=${DEMO_TOKENS:-200000}
IOS_SHARE=${DEMO_IOS_SHARE:-0.6}
BAD=${DEMO_BAD_FRACTION:-0.01}
INVALID=${DEMO_INVALID_FRACTION:-0.005}
PRESSES=${DEMO_PRESSES:-5}
TIMEOUT=${DEMO_TIMEOUT:-600}
IOS=$(awk -v n="$TOKENS" -v s="$IOS_SHARE" 'BEGIN{printf "%d", n*s}')
ANDROID=$((TOKENS - IOS))
ID="owlpost-demo-$(date +%Y%m%d-%H%M%S)"
OUT="$ROOT/demo-out/$ID"
mkdir -p "$OUT"

say() { printf '\n== %s\n' "$*" >&2; }

# DEMO_TOPOLOGY=cluster runs the demo on the production-topology stack (scripts/devstack.sh up --cluster):
# three Kafka brokers with replication factor 3 and min.insync.replicas 2, Redis through its Sentinels.
TOPOLOGY=${DEMO_TOPOLOGY:-single}
case "$TOPOLOGY" in
single)
	say "dev stack (real Kafka + Redis)"
	scripts/devstack.sh up >/dev/null
	KAFKA_YAML="kafka: {brokers: [\"${OWLPOST_TEST_KAFKA:-127.0.0.1:9092}\"]}"
	REDIS_YAML="redis: {addr: \"${OWLPOST_TEST_REDIS:-127.0.0.1:6379}\", prefix: \"owlpost-demo\"}"
	;;
cluster)
	say "cluster stack (3 Kafka brokers, Redis with Sentinel failover)"
	cl="$(scripts/devstack.sh up --cluster)"
	eval "$cl"
	KAFKA_YAML="kafka: {brokers: [\"${OWLPOST_TEST_KAFKA_CLUSTER//,/\", \"}\"]}
topics: {replication_factor: 3, min_insync_replicas: 2}"
	REDIS_YAML="redis: {mode: sentinel, addrs: [\"${OWLPOST_TEST_REDIS_SENTINEL//,/\", \"}\"], master_name: \"$OWLPOST_TEST_REDIS_MASTER\", prefix: \"owlpost-demo\"}"
	;;
*) echo "demo: DEMO_TOPOLOGY is single or cluster, not '$TOPOLOGY'" >&2; exit 2 ;;
esac

say "building binaries"
go build -o bin/ ./cmd/...

PIDS=()
NAMES=()
cleanup() {
	say "stopping the processes this demo started"
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.2
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	echo "logs and report in $OUT" >&2
}
trap cleanup EXIT

start() { # name, env..., -- cmd...
	local name=$1
	shift
	env "$@" >"$OUT/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}

check_alive() {
	local i
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			echo "demo: ${NAMES[$i]} exited; last lines of $OUT/${NAMES[$i]}.log:" >&2
			tail -20 "$OUT/${NAMES[$i]}.log" >&2
			exit 1
		fi
	done
}

say "push simulator (APNs HTTP/2 + FCM v1 on loopback)"
start pushsim bin/pushsim --gen-creds "$OUT/creds" --write-ca "$OUT/ca.pem"
for _ in $(seq 100); do [ -s "$OUT/ca.pem" ] && break; sleep 0.1; done
[ -s "$OUT/ca.pem" ] || { tail "$OUT/pushsim.log" >&2; echo "demo: pushsim did not start" >&2; exit 1; }

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/control-token"
cat >"$OUT/owlpost.yaml" <<YAML
$KAFKA_YAML
$REDIS_YAML
apns:
  host: https://127.0.0.1:2197
  key_file: $OUT/creds/AuthKey.p8
  key_id: SIMKEY0001
  team_id: SIMTEAM001
  topic: com.example.owlapp
  ca_file: $OUT/ca.pem
fcm:
  project_id: owlpost-sim
  credentials_file: $OUT/creds/service-account.json
  endpoint: https://127.0.0.1:2198/v1
  ca_file: $OUT/ca.pem
control: {addr: "127.0.0.1:8080", url: "http://127.0.0.1:8080", token_file: "$OUT/control-token"}
YAML
export OWLPOST_CONFIG="$OUT/owlpost.yaml"

say "topics"
bin/owlctl topics create >/dev/null

say "stages: planner, fanout x2, sender ios, sender android, control API"
start planner OWLPOST_INSTANCE_ID=planner-1 OWLPOST_METRICS_ADDR=127.0.0.1:9101 bin/planner
start fanout-1 OWLPOST_INSTANCE_ID=fanout-1 OWLPOST_METRICS_ADDR=127.0.0.1:9102 bin/fanout
start fanout-2 OWLPOST_INSTANCE_ID=fanout-2 OWLPOST_METRICS_ADDR=127.0.0.1:9103 bin/fanout
# The senders' runtime settings, as in the bench (BENCHMARKS.md, "runtime settings"):
# stacks kept across GCs, and half the cores each, as a CPU limit would give them.
SENDER_RT=(GODEBUG=gcshrinkstackoff=1 "GOMAXPROCS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))")
start sender-ios "${SENDER_RT[@]}" OWLPOST_INSTANCE_ID=sender-ios-1 OWLPOST_SENDER_PLATFORM=ios OWLPOST_METRICS_ADDR=127.0.0.1:9104 bin/sender
start sender-android "${SENDER_RT[@]}" OWLPOST_INSTANCE_ID=sender-android-1 OWLPOST_SENDER_PLATFORM=android OWLPOST_METRICS_ADDR=127.0.0.1:9105 bin/sender
start control OWLPOST_INSTANCE_ID=control-1 OWLPOST_METRICS_ADDR=127.0.0.1:9106 bin/owlctl serve
sleep 2
check_alive

say "audience: $TOKENS tokens ($IOS iOS, $ANDROID Android), $BAD malformed, $INVALID refused by the provider"
bin/owlctl audience generate --topic "audience.$ID" --ios "$IOS" --android "$ANDROID" \
	--locales en-US,es-US,de-DE,de-AT,pt-BR,fr-FR --bad-fraction "$BAD" --invalid-fraction "$INVALID" --seed 1 | tee "$OUT/audience.txt"

say "campaign $ID"
sed -e "s/^id: owlpost-demo$/id: $ID/" -e "s/^audience_topic: .*/audience_topic: audience.$ID/" \
	deploy/demo/campaign.yaml >"$OUT/campaign.yaml"
bin/owlctl campaign create "$OUT/campaign.yaml"

say "plan (by the planner service)"
bin/owlctl plan "$ID" --via-service
check_alive

say "prepare: fanout loads the batches, senders are warm"
bin/owlctl prepare "$ID" --wait
bin/owlctl status "$ID"

say "proof send to the internal devices"
bin/owlctl proof "$ID"

say "GO: $PRESSES people press the button at once"
for i in $(seq "$PRESSES"); do
	bin/owlctl fire "$ID" --yes --by "marketer-$i" >"$OUT/fire-$i.txt" 2>&1 &
done
set +e
wait_fire=0
for job in $(jobs -p); do
	case " ${PIDS[*]} " in *" $job "*) continue ;; esac
	wait "$job"; rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 3 ] && wait_fire=1
done
set -e
cat "$OUT"/fire-*.txt
[ $wait_fire = 0 ] || { echo "demo: a fire press failed" >&2; exit 1; }

say "sending; waiting for every planned token to have an outcome (at most ${TIMEOUT}s)"
bin/owlctl report "$ID" --wait "${TIMEOUT}s" --svg "$OUT/report.svg" --check-sim http://127.0.0.1:2199 \
	$([ "${DEMO_JSON:-0}" = 1 ] && echo --json) | tee "$OUT/report.txt"
check_alive
