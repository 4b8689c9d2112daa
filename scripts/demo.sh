#!/usr/bin/env bash
# make demo: one whole campaign end to end on this machine.
#
# Brings up the dev stack (real Kafka, real Redis), starts the push simulator
# and the stages as separate processes (planner, 2 fanout instances, an APNs
# and an FCM sender, the control API; DEMO_FLEET sets the fleet), generates a
# synthetic audience, defines
# the campaign, plans, prepares, sends a proof, fires (pressing GO several
# times concurrently on purpose), waits for completion, prints the report and
# checks it against the simulator's own delivery record, then stops what it
# started (the dev stack stays up; `make down` stops it).
#
# Variables: DEMO_TOKENS (200000), DEMO_IOS_SHARE (0.6), DEMO_BAD_FRACTION
# (0.01 malformed records), DEMO_INVALID_FRACTION (0.005 tokens the provider
# refuses), DEMO_PRESSES (5 concurrent GO presses), DEMO_JSON (1 = JSON
# report), DEMO_TIMEOUT (600 s to wait for completion).
#
# DEMO_FLEET=FxSxC (default 2x1x1): F fanout instances, S senders per
# platform, C control API replicas, each its own process. With C > 1 the
# presses go through the control API (owlctl fire --via-api), press i to
# replica i mod C; with one replica they act directly, as before.
#
# DEMO_PORT_BASE=B (default 9100): every port the demo listens on is derived
# from B, so a bigger fleet needs no hand-picked ports and the whole demo
# moves when something else holds one of them:
#   B+1 ..  B+79   metrics of every process, in start order (planner, fanouts,
#                  iOS senders, Android senders, control replicas)
#   B+80 .. B+96   the control API replicas
#   B+97, 98, 99   the push simulator: APNs, FCM, admin API
# The default fleet's metrics are 9101-9106 as before; the simulator and the
# control API moved from 2197-2199 and 8080 to 9197-9199 and 9180.
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

say() { printf '\n== %s\n' "$*" >&2; }

FLEET=${DEMO_FLEET:-2x1x1}
if ! [[ $FLEET =~ ^([1-9][0-9]?)x([1-9][0-9]?)x([1-9][0-9]?)$ ]]; then
	echo "demo: DEMO_FLEET is FANOUTSxSENDERSxCONTROLS (each 1-99), e.g. 3x4x2, not '$FLEET'" >&2
	exit 2
fi
FANOUTS=${BASH_REMATCH[1]} SENDERS=${BASH_REMATCH[2]} CONTROLS=${BASH_REMATCH[3]}
BASE=${DEMO_PORT_BASE:-9100}
if ! [[ $BASE =~ ^[0-9]+$ ]] || [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65435 ]; then
	echo "demo: DEMO_PORT_BASE is a port from 1024 to 65435, not '$BASE'" >&2
	exit 2
fi
PROCS=$((1 + FANOUTS + 2 * SENDERS + CONTROLS))
if [ "$PROCS" -gt 79 ] || [ "$CONTROLS" -gt 17 ]; then
	echo "demo: DEMO_FLEET $FLEET runs $PROCS processes and $CONTROLS control replicas; at most 79 and 17 fit the port layout" >&2
	exit 2
fi
SIM_APNS=$((BASE + 97)) SIM_FCM=$((BASE + 98)) SIM_ADMIN=$((BASE + 99))
control_port() { echo $((BASE + 79 + $1)); } # replica 1..CONTROLS
# Every port the demo will listen on must be free now: name the one that is not.
PORTS=($(seq $((BASE + 1)) $((BASE + PROCS))) $(seq $((BASE + 80)) $((BASE + 79 + CONTROLS))) "$SIM_APNS" "$SIM_FCM" "$SIM_ADMIN")
for port in "${PORTS[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: port $port is in use; choose another DEMO_PORT_BASE (now $BASE; the demo uses $BASE+1 to $BASE+99)" >&2
		exit 2
	fi
done
mkdir -p "$OUT"

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
start pushsim bin/pushsim --gen-creds "$OUT/creds" --write-ca "$OUT/ca.pem" \
	--apns-addr "127.0.0.1:$SIM_APNS" --fcm-addr "127.0.0.1:$SIM_FCM" --admin-addr "127.0.0.1:$SIM_ADMIN"
for _ in $(seq 100); do [ -s "$OUT/ca.pem" ] && break; sleep 0.1; done
[ -s "$OUT/ca.pem" ] || { tail "$OUT/pushsim.log" >&2; echo "demo: pushsim did not start" >&2; exit 1; }

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/control-token"
cat >"$OUT/owlpost.yaml" <<YAML
$KAFKA_YAML
$REDIS_YAML
apns:
  host: https://127.0.0.1:$SIM_APNS
  key_file: $OUT/creds/AuthKey.p8
  key_id: SIMKEY0001
  team_id: SIMTEAM001
  topic: com.example.owlapp
  ca_file: $OUT/ca.pem
fcm:
  project_id: owlpost-sim
  credentials_file: $OUT/creds/service-account.json
  endpoint: https://127.0.0.1:$SIM_FCM/v1
  ca_file: $OUT/ca.pem
control: {addr: "127.0.0.1:$(control_port 1)", url: "http://127.0.0.1:$(control_port 1)", token_file: "$OUT/control-token"}
YAML
export OWLPOST_CONFIG="$OUT/owlpost.yaml"

say "topics"
bin/owlctl topics create >/dev/null

say "stages: planner, $FANOUTS fanout(s), $SENDERS sender(s) per platform, $CONTROLS control API replica(s) (fleet $FLEET)"
[ "$FANOUTS" -le 12 ] && [ "$SENDERS" -le 12 ] ||
	echo "demo: note: the topics have 12 partitions; instances beyond 12 per group stay idle" >&2
next_metrics=$((BASE + 1))
metrics() { echo "OWLPOST_METRICS_ADDR=127.0.0.1:$next_metrics"; }
start planner OWLPOST_INSTANCE_ID=planner-1 "$(metrics)" bin/planner
next_metrics=$((next_metrics + 1))
for i in $(seq "$FANOUTS"); do
	start "fanout-$i" "OWLPOST_INSTANCE_ID=fanout-$i" "$(metrics)" bin/fanout
	next_metrics=$((next_metrics + 1))
done
# The senders' runtime settings, as in the bench (BENCHMARKS.md, "runtime settings"):
# stacks kept across GCs, and half the cores each, as a CPU limit would give them.
SENDER_RT=(GODEBUG=gcshrinkstackoff=1 "GOMAXPROCS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))")
for platform in ios android; do
	for i in $(seq "$SENDERS"); do
		name="sender-$platform"
		[ "$i" = 1 ] || name="sender-$platform-$i"
		start "$name" "${SENDER_RT[@]}" "OWLPOST_INSTANCE_ID=sender-$platform-$i" "OWLPOST_SENDER_PLATFORM=$platform" "$(metrics)" bin/sender
		next_metrics=$((next_metrics + 1))
	done
done
CONTROL_URLS=()
for i in $(seq "$CONTROLS"); do
	name=control
	[ "$i" = 1 ] || name="control-$i"
	start "$name" "OWLPOST_INSTANCE_ID=control-$i" "$(metrics)" "OWLPOST_CONTROL_ADDR=127.0.0.1:$(control_port "$i")" bin/owlctl serve
	next_metrics=$((next_metrics + 1))
	CONTROL_URLS+=("http://127.0.0.1:$(control_port "$i")")
done
sleep 2
for url in "${CONTROL_URLS[@]}"; do
	for _ in $(seq 100); do curl -sf -o /dev/null "$url/v1/openapi.json" && break; sleep 0.1; done
done
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
	if [ "$CONTROLS" -gt 1 ]; then # through the API, split across the replicas
		bin/owlctl fire "$ID" --yes --via-api --control.url "${CONTROL_URLS[$(((i - 1) % CONTROLS))]}" >"$OUT/fire-$i.txt" 2>&1 &
	else
		bin/owlctl fire "$ID" --yes --by "marketer-$i" >"$OUT/fire-$i.txt" 2>&1 &
	fi
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
bin/owlctl report "$ID" --wait "${TIMEOUT}s" --svg "$OUT/report.svg" --check-sim http://127.0.0.1:$SIM_ADMIN \
	$([ "${DEMO_JSON:-0}" = 1 ] && echo --json) | tee "$OUT/report.txt"
check_alive
