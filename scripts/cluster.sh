# shellcheck shell=bash
# cluster.sh: the production-shaped dev stack, sourced by scripts/devstack.sh (`--cluster` and node verbs).
#
# Topology (OWLPOST_CLUSTER_ID=N, 0-9, default 0; several ids coexist on one machine):
#   kafka-1..3   three Apache Kafka brokers, KRaft, each also one of the three controller voters
#   redis-1..3   Redis with failover: redis-1 starts as the primary, redis-2/3 replicate it; each host also runs
#                a Sentinel (sentinel-1..3, port 26379) watching the master named "owlpost" (quorum 2)
#   rc-1..6      a Redis Cluster: three primaries with one replica each (redis-cli --cluster create)
# Every host is its own network namespace owlN-<host> with one veth into the bridge owlN-br in the root
# namespace; hosts get 10.250.N.<h>/24 (kafka .11-.13, redis .21-.23, rc .31-.36), the bridge 10.250.N.1.
# owlpost and the tests run in the root namespace and reach the hosts through the bridge; a process started
# with `ip netns exec owlN-kafka-2 ...` (see `devstack.sh netns kafka-2`) lives on that host, so a partition
# of the host cuts it off too. `partition HOST` sets the host's veth down (a real link failure: connections
# hang, nothing is refused); `heal HOST` sets it up again.
#
# Why combined KRaft roles (broker+controller in one JVM per host): a quorum of three dedicated controllers
# beside three brokers is six JVMs, which a 2-core machine shared with other stacks cannot afford, and the
# failures the suite needs (leader election, the transaction coordinator moving, the ISR shrinking, the active
# controller failing over) all happen with combined roles too. The price: killing the active controller also
# kills a broker. Managed services (MSK, Confluent Cloud, Strimzi's recommended setup) run dedicated
# controllers; nothing in owlpost depends on which.
#
# Without network namespaces (not root, or `ip netns add` refused) the hosts fall back to loopback addresses
# 127.250.N.<h> on the same ports: everything but partition/heal works, and up says so.

readonly CLUSTER_ID="${OWLPOST_CLUSTER_ID:-0}"
[[ "${CLUSTER_ID}" =~ ^[0-9]$ ]] || die "OWLPOST_CLUSTER_ID must be a digit 0-9 (got '${CLUSTER_ID}')"
readonly CL_DIR="${STATE_DIR}/cluster"
readonly CL_PREFIX="owl${CLUSTER_ID}"
readonly CL_BRIDGE="${CL_PREFIX}-br"
readonly CL_MASTER=owlpost
readonly CL_KAFKA_HOSTS=(kafka-1 kafka-2 kafka-3)
readonly CL_REDIS_HOSTS=(redis-1 redis-2 redis-3)
readonly CL_RC_HOSTS=(rc-1 rc-2 rc-3 rc-4 rc-5 rc-6)
readonly CL_HOSTS=("${CL_KAFKA_HOSTS[@]}" "${CL_REDIS_HOSTS[@]}" "${CL_RC_HOSTS[@]}")
# Kafka settings the production topology needs (the suite's cases rely on them):
readonly CL_KAFKA_PORT=9092 CL_CONTROLLER_PORT=9093 CL_REDIS_PORT=6379 CL_SENTINEL_PORT=26379

# cl_mode: netns or loopback (decided once per state dir by cl_net_up, remembered in ${CL_DIR}/mode).
cl_mode() { cat "${CL_DIR}/mode" 2>/dev/null || printf 'none\n'; }

# cl_ip HOST: the host's address.
cl_ip() {
	local h="$1" n base
	n="${h##*-}"
	case "${h}" in
	kafka-*) base=10 ;;
	redis-* | sentinel-*) base=20 ;;
	rc-*) base=30 ;;
	*) die "unknown cluster host '${h}'" ;;
	esac
	if [[ "$(cl_mode)" == loopback ]]; then
		printf '127.250.%s.%s\n' "${CLUSTER_ID}" "$((base + n))"
	else
		printf '10.250.%s.%s\n' "${CLUSTER_ID}" "$((base + n))"
	fi
}

# cl_host NODE: the host a node runs on (sentinel-N shares redis-N's host).
cl_host() {
	case "$1" in
	kafka-[1-3] | redis-[1-3] | rc-[1-6]) printf '%s\n' "$1" ;;
	sentinel-[1-3]) printf 'redis-%s\n' "${1##*-}" ;;
	*) die "unknown cluster node '$1' (kafka-1..3, redis-1..3, sentinel-1..3, rc-1..6)" ;;
	esac
}

cl_ns() { printf '%s-%s\n' "${CL_PREFIX}" "$1"; }

# cl_in HOST CMD...: runs CMD on HOST (inside its namespace, or directly in loopback mode).
cl_in() {
	local h="$1"
	shift
	if [[ "$(cl_mode)" == netns ]]; then
		ip netns exec "$(cl_ns "${h}")" "$@"
	else
		"$@"
	fi
}

# ---------------------------------------------------------------------------------------------------------
# network

cl_net_up() {
	mkdir -p "${CL_DIR}"
	if [[ "$(cl_mode)" == none ]]; then
		if [[ "$(id -u)" -eq 0 ]] && command -v ip >/dev/null && ip netns add "${CL_PREFIX}-probe" 2>/dev/null; then
			ip netns del "${CL_PREFIX}-probe"
			printf 'netns\n' >"${CL_DIR}/mode"
		else
			printf 'loopback\n' >"${CL_DIR}/mode"
		fi
	fi
	if [[ "$(cl_mode)" == loopback ]]; then
		log "cluster ${CLUSTER_ID}: NO network namespaces here (needs root and iproute2); hosts are loopback addresses 127.250.${CLUSTER_ID}.x and partition/heal are unavailable"
		return
	fi
	if ! ip link show "${CL_BRIDGE}" >/dev/null 2>&1; then
		ip link add "${CL_BRIDGE}" type bridge
		ip addr add "10.250.${CLUSTER_ID}.1/24" dev "${CL_BRIDGE}"
	fi
	ip link set "${CL_BRIDGE}" up
	local h ns
	for h in "${CL_HOSTS[@]}"; do
		ns="$(cl_ns "${h}")"
		[[ -e "/run/netns/${ns}" ]] || ip netns add "${ns}"
		if ! ip link show "${ns}" >/dev/null 2>&1; then
			# the root end is named like the namespace; the host end is eth0 inside it
			ip link add "${ns}" type veth peer name eth0 netns "${ns}"
			ip -n "${ns}" addr add "$(cl_ip "${h}")/24" dev eth0
			ip -n "${ns}" link set lo up
			ip -n "${ns}" link set eth0 up
			ip -n "${ns}" route add default via "10.250.${CLUSTER_ID}.1" 2>/dev/null || true
			ip link set "${ns}" master "${CL_BRIDGE}"
		fi
		# up, unless the host is partitioned on purpose
		[[ -f "${CL_DIR}/${h}.partitioned" ]] || ip link set "${ns}" up
	done
}

cl_net_down() {
	[[ "$(cl_mode)" == netns ]] || return 0
	local h ns pid
	for h in "${CL_HOSTS[@]}"; do
		ns="$(cl_ns "${h}")"
		if [[ -e "/run/netns/${ns}" ]]; then
			# anything still running on the host was started there for this stack (by up or a test)
			for pid in $(ip netns pids "${ns}" 2>/dev/null); do kill -KILL "${pid}" 2>/dev/null || true; done
			ip link del "${ns}" 2>/dev/null || true
			ip netns del "${ns}" 2>/dev/null || true
		fi
		rm -f "${CL_DIR}/${h}.partitioned"
	done
	ip link del "${CL_BRIDGE}" 2>/dev/null || true
	rm -f "${CL_DIR}/mode"
}

cl_partition() {
	local h
	h="$(cl_host "$1")"
	[[ "$(cl_mode)" == netns ]] || die "partition needs network namespaces (this cluster runs on loopback)"
	ip link set "$(cl_ns "${h}")" down
	: >"${CL_DIR}/${h}.partitioned"
	log "${h}: partitioned (link $(cl_ns "${h}") down)"
}

cl_heal() {
	local h
	h="$(cl_host "$1")"
	[[ "$(cl_mode)" == netns ]] || die "heal needs network namespaces (this cluster runs on loopback)"
	ip link set "$(cl_ns "${h}")" up
	rm -f "${CL_DIR}/${h}.partitioned"
	log "${h}: healed (link $(cl_ns "${h}") up)"
}

# cl_tcp_open ADDR PORT (from the root namespace)
cl_tcp_open() {
	# shellcheck disable=SC2016
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------------------
# Kafka

cl_kafka_dir() { printf '%s/%s\n' "${CL_DIR}" "$1"; }

cl_kafka_bootstrap() {
	local h out=()
	for h in "${CL_KAFKA_HOSTS[@]}"; do out+=("$(cl_ip "${h}"):${CL_KAFKA_PORT}"); done
	(IFS=,; printf '%s\n' "${out[*]}")
}

cl_kafka_config() {
	local h="$1" n="${1##*-}" dir ip voters="" v
	dir="$(cl_kafka_dir "${h}")"
	ip="$(cl_ip "${h}")"
	for v in "${CL_KAFKA_HOSTS[@]}"; do voters+="${voters:+,}${v##*-}@$(cl_ip "${v}"):${CL_CONTROLLER_PORT}"; done
	mkdir -p "${dir}/data" "${dir}/logs"
	cat >"${dir}/server.properties" <<CONF
# Generated by scripts/devstack.sh (cluster ${CLUSTER_ID}) on every start; edit the script, not this file.
# Combined roles: this JVM is broker ${n} and one of the three controller voters (see scripts/cluster.sh).
process.roles=broker,controller
node.id=${n}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://${ip}:${CL_KAFKA_PORT},CONTROLLER://${ip}:${CL_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${ip}:${CL_KAFKA_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${dir}/data

# The production settings: every topic (internal ones too) on three brokers, a write needs two in sync.
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
num.partitions=1
# A small internal topic of consumer offsets and transactions: fewer partitions to move on a failover.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
# Failure detection. broker.session.timeout.ms: how long the active controller waits for a silent broker
# before fencing it (leaders move); replica.lag.time.max.ms: how long a silent follower stays in the ISR.
broker.session.timeout.ms=9000
broker.heartbeat.interval.ms=2000
replica.lag.time.max.ms=30000
controller.quorum.election.timeout.ms=1000
controller.quorum.fetch.timeout.ms=2000
log.cleaner.enable=true
log.cleaner.threads=1
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.retention.hours=168
CONF
	sed "s#${KAFKA_LOG}#${dir}/logs/server.log#g" "${KAFKA_DIR}/log4j2.properties" >"${dir}/log4j2.properties"
}

cl_kafka_pid() {
	local h="$1" dir pid
	dir="$(cl_kafka_dir "${h}")"
	pid="$(read_pid "${dir}/kafka.pid")" || return 1
	pid_matches "${pid}" "kafka.Kafka ${dir}/server.properties" || return 1
	printf '%s\n' "${pid}"
}

# cl_kafka_brokers: how many brokers the cluster's metadata lists (registered and unfenced).
cl_kafka_brokers() {
	local cfg="${CL_DIR}/probe.properties"
	[[ -f "${cfg}" ]] || printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"${cfg}"
	timeout 40 "${JAVA}" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
		-cp "${CLASSPATH_KAFKA}" org.apache.kafka.tools.BrokerApiVersionsCommand \
		--bootstrap-server "$(cl_kafka_bootstrap)" --command-config "${cfg}" 2>>"${CL_DIR}/probe.log" |
		grep -c '(id: ' || true
}

# cl_kafka_spawn HOST: starts the broker's JVM on its host (no wait).
cl_kafka_spawn() {
	local h="$1" dir pid
	dir="$(cl_kafka_dir "${h}")"
	if pid="$(cl_kafka_pid "${h}")"; then
		return
	fi
	rm -f "${dir}/kafka.pid"
	cl_kafka_config "${h}"
	if [[ ! -f "${dir}/data/meta.properties" ]]; then
		"${JAVA}" -cp "${CLASSPATH_KAFKA}" -Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
			kafka.tools.StorageTool format --cluster-id "$(cat "${CL_DIR}/kafka.cluster.id")" \
			--config "${dir}/server.properties" --ignore-formatted >"${dir}/logs/format.log" 2>&1 || {
			cat "${dir}/logs/format.log" >&2
			die "${h}: kafka storage format failed"
		}
	fi
	log "${h}: starting kafka ${KAFKA_VERSION} on $(cl_ip "${h}"):${CL_KAFKA_PORT} (controller :${CL_CONTROLLER_PORT})"
	# shellcheck disable=SC2086 # KAFKA_HEAP holds several JVM flags
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "${dir}/kafka.pid" \
		$(cl_in_prefix "${h}") "${JAVA}" ${KAFKA_HEAP} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:ActiveProcessorCount=1 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="${dir}/log4j2.properties" -Dkafka.logs.dir="${dir}/logs" \
		-cp "${CLASSPATH_KAFKA}" kafka.Kafka "${dir}/server.properties" \
		</dev/null >>"${dir}/logs/stdout.log" 2>&1 9>&- &
	# the pid file is written by the child, which then execs the JVM: wait for both
	local i
	for ((i = 0; i < 100; i++)); do
		cl_kafka_pid "${h}" >/dev/null && return
		sleep 0.1
	done
	die "${h}: kafka did not start (no pid file)"
}

# cl_in_prefix HOST: the words that put a command on HOST (empty in loopback mode).
cl_in_prefix() {
	[[ "$(cl_mode)" == netns ]] && printf 'ip netns exec %s\n' "$(cl_ns "$1")"
	return 0
}

# cl_kafka_wait HOSTS...: waits until each named broker accepts connections and all three are registered
# (twice the single node's wait: three JVMs start on a shared machine).
cl_kafka_wait() {
	local h deadline=$((SECONDS + 2 * KAFKA_WAIT)) ok
	while ((SECONDS < deadline)); do
		ok=1
		for h in "$@"; do
			if ! cl_kafka_pid "${h}" >/dev/null; then
				tail -n 20 "$(cl_kafka_dir "${h}")/logs/stdout.log" >&2 2>/dev/null || true
				die "${h}: kafka exited during startup; see $(cl_kafka_dir "${h}")/logs/server.log"
			fi
			cl_tcp_open "$(cl_ip "${h}")" "${CL_KAFKA_PORT}" || ok=0
		done
		if ((ok)) && [[ "$(cl_kafka_brokers)" -ge 3 ]]; then
			log "kafka cluster ready ($(cl_kafka_bootstrap))"
			return
		fi
		sleep 1
	done
	die "kafka cluster: $* not ready within $((2 * KAFKA_WAIT)) s; see ${CL_DIR}/kafka-*/logs/server.log"
}

cl_kafka_prepare() {
	JAVA="$(require_java)"
	CLASSPATH_KAFKA="$(kafka_classpath)"
	[[ -f "${KAFKA_DIR}/log4j2.properties" ]] || write_kafka_config
	if [[ ! -s "${CL_DIR}/kafka.cluster.id" ]]; then
		"${JAVA}" -cp "${CLASSPATH_KAFKA}" -Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
			kafka.tools.StorageTool random-uuid >"${CL_DIR}/kafka.cluster.id"
	fi
}

# ---------------------------------------------------------------------------------------------------------
# Redis (Sentinel group and Redis Cluster)

cl_redis_dir() { printf '%s/%s\n' "${CL_DIR}" "$1"; }

# cl_redis_port NODE
cl_redis_port() { [[ "$1" == sentinel-* ]] && printf '%s\n' "${CL_SENTINEL_PORT}" || printf '%s\n' "${CL_REDIS_PORT}"; }

cl_redis_pid() {
	local node="$1" dir pid
	dir="$(cl_redis_dir "${node}")"
	pid="$(read_pid "${dir}/redis.pid")" || return 1
	pid_matches "${pid}" "$(cl_ip "${node}"):$(cl_redis_port "${node}")" || return 1
	[[ "$(readlink "/proc/${pid}/cwd" 2>/dev/null)" == "$(readlink -f "${dir}")" ]] || return 1
	printf '%s\n' "${pid}"
}

cl_redis_ping() {
	[[ "$(timeout 3 redis-cli -h "$(cl_ip "$1")" -p "$(cl_redis_port "$1")" ping 2>/dev/null)" == PONG ]]
}

# cl_redis_config NODE: written once (Sentinel and CONFIG REWRITE change these files at runtime: after a
# failover they hold the new roles, which a restart must keep).
cl_redis_config() {
	local node="$1" dir ip port conf
	dir="$(cl_redis_dir "${node}")"
	ip="$(cl_ip "${node}")"
	port="$(cl_redis_port "${node}")"
	conf="${dir}/redis.conf"
	mkdir -p "${dir}"
	[[ -f "${conf}" ]] && return
	{
		cat <<CONF
# Generated once by scripts/devstack.sh (cluster ${CLUSTER_ID}); Redis rewrites it at runtime.
bind ${ip}
port ${port}
protected-mode no
daemonize yes
pidfile "${dir}/redis.pid"
logfile "${dir}/redis.log"
dir "${dir}"
CONF
		case "${node}" in
		sentinel-*)
			cat <<CONF
sentinel monitor ${CL_MASTER} $(cl_ip redis-1) ${CL_REDIS_PORT} 2
sentinel down-after-milliseconds ${CL_MASTER} 3000
sentinel failover-timeout ${CL_MASTER} 10000
sentinel parallel-syncs ${CL_MASTER} 1
CONF
			;;
		*)
			cat <<CONF
appendonly yes
appendfsync everysec
save 60 1
maxmemory-policy noeviction
CONF
			;;&
		redis-2 | redis-3) printf 'replicaof %s %s\n' "$(cl_ip redis-1)" "${CL_REDIS_PORT}" ;;
		rc-*)
			cat <<CONF
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 3000
CONF
			;;
		esac
	} >"${conf}"
}

# cl_redis_spawn NODE: starts one redis-server or Sentinel on its host (daemonized; no wait).
cl_redis_spawn() {
	local node="$1" h dir
	cl_redis_pid "${node}" >/dev/null && return
	h="$(cl_host "${node}")"
	dir="$(cl_redis_dir "${node}")"
	cl_redis_config "${node}"
	rm -f "${dir}/redis.pid"
	log "${node}: starting $([[ "${node}" == sentinel-* ]] && echo sentinel || echo redis) on $(cl_ip "${node}"):$(cl_redis_port "${node}")"
	local mode=()
	[[ "${node}" == sentinel-* ]] && mode=(--sentinel)
	# shellcheck disable=SC2046
	(cd "${dir}" && $(cl_in_prefix "${h}") redis-server "${dir}/redis.conf" "${mode[@]}" \
		</dev/null >>"${dir}/stdout.log" 2>&1 9>&-) || die "${node}: redis-server failed to start; see ${dir}/redis.log"
}

cl_redis_wait() {
	local node deadline=$((SECONDS + 30)) ok
	while ((SECONDS < deadline)); do
		ok=1
		for node in "$@"; do cl_redis_pid "${node}" >/dev/null && cl_redis_ping "${node}" || ok=0; done
		((ok)) && return
		sleep 0.2
	done
	die "redis nodes $* did not answer PING within 30 s; see ${CL_DIR}/<node>/redis.log"
}

cl_sentinel_nodes() { printf 'sentinel-%s\n' 1 2 3; }

cl_rc_create() {
	local first info ips=() h
	first="$(cl_ip rc-1)"
	info="$(redis-cli -h "${first}" -p "${CL_REDIS_PORT}" cluster info 2>/dev/null | tr -d '\r')"
	if ! grep -q '^cluster_known_nodes:1$' <<<"${info}"; then
		return # created before (nodes.conf remembers it)
	fi
	for h in "${CL_RC_HOSTS[@]}"; do ips+=("$(cl_ip "${h}"):${CL_REDIS_PORT}"); done
	log "creating the Redis Cluster (3 primaries, 1 replica each)"
	redis-cli --cluster create "${ips[@]}" --cluster-replicas 1 --cluster-yes >"${CL_DIR}/rc-create.log" 2>&1 || {
		cat "${CL_DIR}/rc-create.log" >&2
		die "redis-cli --cluster create failed"
	}
}

cl_rc_wait() {
	local h deadline=$((SECONDS + 60)) ok
	while ((SECONDS < deadline)); do
		ok=1
		for h in "${CL_RC_HOSTS[@]}"; do
			[[ -f "${CL_DIR}/${h}.partitioned" ]] && continue
			redis-cli -h "$(cl_ip "${h}")" -p "${CL_REDIS_PORT}" cluster info 2>/dev/null | tr -d '\r' |
				grep -q '^cluster_state:ok$' || ok=0
		done
		((ok)) && { log "redis cluster ready"; return; }
		sleep 0.5
	done
	die "redis cluster not ok within 60 s; see ${CL_DIR}/rc-*/redis.log"
}

# cl_sentinel_wait: every Sentinel knows the master and its two replicas.
cl_sentinel_wait() {
	local s deadline=$((SECONDS + 60)) ok
	while ((SECONDS < deadline)); do
		ok=1
		for s in $(cl_sentinel_nodes); do
			[[ "$(timeout 3 redis-cli -h "$(cl_ip "${s}")" -p "${CL_SENTINEL_PORT}" \
				sentinel master "${CL_MASTER}" 2>/dev/null | tr -d '\r' |
				sed -n '/^num-slaves$/{n;p}')" == 2 ]] || ok=0
		done
		((ok)) && { log "sentinels ready (master ${CL_MASTER})"; return; }
		sleep 0.5
	done
	die "sentinels did not see the master ${CL_MASTER} with two replicas within 60 s"
}

# ---------------------------------------------------------------------------------------------------------
# verbs

cl_env() {
	local h s=() r=()
	for h in "${CL_REDIS_HOSTS[@]}"; do s+=("$(cl_ip "${h}"):${CL_SENTINEL_PORT}"); done
	for h in "${CL_RC_HOSTS[@]}"; do r+=("$(cl_ip "${h}"):${CL_REDIS_PORT}"); done
	printf 'export OWLPOST_TEST_KAFKA_CLUSTER=%s\n' "$(cl_kafka_bootstrap)"
	(IFS=,; printf 'export OWLPOST_TEST_REDIS_SENTINEL=%s\n' "${s[*]}")
	printf 'export OWLPOST_TEST_REDIS_MASTER=%s\n' "${CL_MASTER}"
	(IFS=,; printf 'export OWLPOST_TEST_REDIS_CLUSTER=%s\n' "${r[*]}")
}

# cl_up [kafka|redis]: the whole cluster stack, or only its Kafka or only its Redis topologies.
cl_up() {
	local what="${1:-all}" h
	case "${what}" in all | kafka | redis) ;; *) die "up --cluster: unknown part '${what}' (kafka or redis)" ;; esac
	cl_net_up
	if [[ "${what}" != kafka ]]; then
		require_redis
		local nodes=(redis-1 redis-2 redis-3 sentinel-1 sentinel-2 sentinel-3 "${CL_RC_HOSTS[@]}") n
		for n in "${nodes[@]}"; do cl_redis_spawn "${n}"; done
		cl_redis_wait "${nodes[@]}"
		cl_rc_create
		cl_rc_wait
		cl_sentinel_wait
	fi
	if [[ "${what}" != redis ]]; then
		cl_kafka_prepare
		for h in "${CL_KAFKA_HOSTS[@]}"; do cl_kafka_spawn "${h}"; done
		cl_kafka_wait "${CL_KAFKA_HOSTS[@]}"
	fi
	cl_env
}

cl_nodes() { printf '%s\n' "${CL_KAFKA_HOSTS[@]}" redis-1 redis-2 redis-3 sentinel-1 sentinel-2 sentinel-3 "${CL_RC_HOSTS[@]}"; }

cl_node_pid() {
	case "$1" in
	kafka-*) cl_kafka_pid "$1" ;;
	*) cl_redis_pid "$1" ;;
	esac
}

cl_pidfile() {
	case "$1" in
	kafka-*) printf '%s/kafka.pid\n' "$(cl_kafka_dir "$1")" ;;
	*) printf '%s/redis.pid\n' "$(cl_redis_dir "$1")" ;;
	esac
}

# cl_stop NODE SIG: signals the node's process and waits for it to exit.
cl_stop() {
	local node="$1" sig="$2" pid deadline
	cl_host "${node}" >/dev/null
	if ! pid="$(cl_node_pid "${node}")"; then
		log "${node}: not running"
		rm -f "$(cl_pidfile "${node}")"
		return
	fi
	log "${node}: sending SIG${sig} to pid ${pid}"
	kill -s "${sig}" "${pid}" 2>/dev/null || true
	deadline=$((SECONDS + 60))
	while kill -0 "${pid}" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			kill -s KILL "${pid}" 2>/dev/null || true
			sleep 0.5
			break
		fi
		sleep 0.2
	done
	rm -f "$(cl_pidfile "${node}")"
	log "${node}: stopped"
}

cl_start() {
	local node="$1"
	cl_host "${node}" >/dev/null
	[[ "$(cl_mode)" != none ]] || die "the cluster stack is not up: scripts/devstack.sh up --cluster"
	case "${node}" in
	kafka-*)
		cl_kafka_prepare
		cl_kafka_spawn "${node}"
		cl_kafka_wait "${node}"
		;;
	*)
		require_redis
		cl_redis_spawn "${node}"
		cl_redis_wait "${node}"
		;;
	esac
}

# cl_down: SIGTERM to every node at once (one by one, the last Kafka brokers wait for a quorum that is gone),
# then wait for each.
cl_down() {
	local n pid
	for n in $(cl_nodes); do
		pid="$(cl_node_pid "${n}")" && kill -s TERM "${pid}" 2>/dev/null
	done
	for n in $(cl_nodes); do cl_stop "${n}" TERM; done
	cl_net_down
}

cl_status() {
	local n pid rc=0 state h
	printf 'cluster %s: %s\n' "${CLUSTER_ID}" "$(cl_mode)"
	for n in $(cl_nodes); do
		h="$(cl_host "${n}")"
		state=""
		[[ -f "${CL_DIR}/${h}.partitioned" ]] && state=" (host ${h} partitioned)"
		if pid="$(cl_node_pid "${n}")"; then
			printf '%s: running pid %s %s:%s%s\n' "${n}" "${pid}" "$(cl_ip "${n}")" "$(cl_port_of "${n}")" "${state}"
		else
			printf '%s: stopped%s\n' "${n}" "${state}"
			rc=1
		fi
	done
	return "${rc}"
}

cl_port_of() {
	case "$1" in
	kafka-*) printf '%s\n' "${CL_KAFKA_PORT}" ;;
	*) cl_redis_port "$1" ;;
	esac
}

cl_logs() {
	local n="$1"
	case "${n}" in
	kafka-*) printf '%s/logs/server.log\n' "$(cl_kafka_dir "${n}")" ;;
	*) printf '%s/redis.log\n' "$(cl_redis_dir "${n}")" ;;
	esac
}

# is_cluster_node NAME
is_cluster_node() { [[ "$1" =~ ^(kafka-[1-3]|redis-[1-3]|sentinel-[1-3]|rc-[1-6])$ ]]; }
