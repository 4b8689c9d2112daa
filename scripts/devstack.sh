#!/usr/bin/env bash
# devstack.sh: real Kafka (KRaft, single node) and Redis on loopback for development, tests and CI.
#
# Usage:
#   scripts/devstack.sh up [kafka|redis]       start (both by default); idempotent; prints the test env vars
#   scripts/devstack.sh down [kafka|redis]     clean stop (SIGTERM, wait) of what up started (pid files only)
#   scripts/devstack.sh start kafka|redis      start one service
#   scripts/devstack.sh stop kafka|redis       clean stop of one service (SIGTERM, wait)
#   scripts/devstack.sh kill kafka|redis       kill -9 one service (crash tests)
#   scripts/devstack.sh status                 one line per service; exit 0 only if both run
#   scripts/devstack.sh logs [kafka|redis] [-f]  tail the logs (-f follows)
#   scripts/devstack.sh env                    print the env vars tests use
#   scripts/devstack.sh bench-tools            install what make bench needs beyond the stack (h2load)
#   eval "$(scripts/devstack.sh up)"           messages go to stderr, the export lines to stdout
#   scripts/devstack.sh kafka-class CLASS ARGS...  run a Kafka tool class from the same classpath, e.g.
#       scripts/devstack.sh kafka-class org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# The cluster stack (production topology, see scripts/cluster.sh), beside the single node one:
#   scripts/devstack.sh up --cluster [kafka|redis]   3 Kafka brokers (KRaft, 3 voters), Redis primary + 2 replicas
#                                      + 3 Sentinels, a 3x2 Redis Cluster; idempotent; prints the test env vars
#   scripts/devstack.sh down --cluster               stop every node, remove the namespaces (data is kept)
#   scripts/devstack.sh status --cluster | env --cluster
#   scripts/devstack.sh stop|start|kill NODE         NODE: kafka-1..3, redis-1..3, sentinel-1..3, rc-1..6
#   scripts/devstack.sh partition|heal NODE          take the node's host off the network (link down) / back
#   scripts/devstack.sh netns NODE                   print the host's namespace (for ip netns exec)
#   scripts/devstack.sh logs NODE [-f]
#
# Environment:
#   OWLPOST_STATE                   state dir (default <repo>/.devstack): configs, data, logs, pid files
#   OWLPOST_CACHE                   cache dir (default $HOME/.cache/owlpost): Kafka jars resolved by Maven
#   OWLPOST_KAFKA_PORT              PLAINTEXT listener port (default 9092)
#   OWLPOST_KAFKA_CONTROLLER_PORT   KRaft controller port (default 9093)
#   OWLPOST_REDIS_PORT              Redis port (default 6379)
#   OWLPOST_KAFKA_HEAP              JVM heap flags for the broker (default "-Xms256m -Xmx1G")
#   OWLPOST_KAFKA_WAIT              seconds to wait for the broker to answer metadata requests (default 90)
#   OWLPOST_CLUSTER_ID              0-9: which cluster stack (namespaces owl<id>-*, subnet 10.250.<id>.0/24)
#
# Kafka comes from the official Maven Central artifacts (org.apache.kafka:kafka_2.13, main class kafka.Kafka),
# resolved once into the cache; Redis is Debian's redis-server, run as our own instance (not the system service).
# Everything listens on 127.0.0.1 only.
set -euo pipefail

readonly KAFKA_VERSION=4.1.1
# log4j 2 backend for Kafka's slf4j logging (Kafka 4.1 itself is built against log4j 2.24.x).
readonly LOG4J_VERSION=2.24.3

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_DIR
readonly STATE_DIR="${OWLPOST_STATE:-${REPO_DIR}/.devstack}"
readonly CACHE_DIR="${OWLPOST_CACHE:-${HOME}/.cache/owlpost}"
readonly KAFKA_PORT="${OWLPOST_KAFKA_PORT:-9092}"
readonly KAFKA_CONTROLLER_PORT="${OWLPOST_KAFKA_CONTROLLER_PORT:-9093}"
readonly REDIS_PORT="${OWLPOST_REDIS_PORT:-6379}"
readonly KAFKA_HEAP="${OWLPOST_KAFKA_HEAP:--Xms256m -Xmx1G}"
readonly KAFKA_WAIT="${OWLPOST_KAFKA_WAIT:-90}"
readonly HOST=127.0.0.1

readonly KAFKA_CACHE="${CACHE_DIR}/kafka-${KAFKA_VERSION}"
readonly KAFKA_CLASSPATH_FILE="${KAFKA_CACHE}/classpath.txt"
readonly KAFKA_DIR="${STATE_DIR}/kafka"
readonly KAFKA_PID="${KAFKA_DIR}/kafka.pid"
readonly KAFKA_LOG="${KAFKA_DIR}/logs/server.log"
readonly KAFKA_STDOUT="${KAFKA_DIR}/logs/stdout.log"
readonly REDIS_DIR="${STATE_DIR}/redis"
readonly REDIS_PID="${REDIS_DIR}/redis.pid"
readonly REDIS_LOG="${REDIS_DIR}/redis.log"

log() { printf 'devstack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------------------------------------------------
# helpers

# tcp_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
	# shellcheck disable=SC2016 # $0 and $1 expand in the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${HOST}" "$1" 2>/dev/null
}

# read_pid FILE: prints the pid stored in FILE, if it is a number.
read_pid() {
	local pid
	[[ -f "$1" ]] || return 1
	pid="$(tr -dc '0-9' <"$1")"
	[[ -n "${pid}" ]] || return 1
	printf '%s\n' "${pid}"
}

# pid_matches PID PATTERN: true if PID is alive and its command line contains PATTERN
# (guards against a recycled pid belonging to some other process).
pid_matches() {
	local pid="$1" pattern="$2" cmdline
	kill -0 "${pid}" 2>/dev/null || return 1
	cmdline="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" || return 1
	[[ "${cmdline}" == *"${pattern}"* ]]
}

# our_pid SVC: prints the pid of our live instance of SVC, per its pid file.
our_pid() {
	local pid
	case "$1" in
	kafka)
		pid="$(read_pid "${KAFKA_PID}")" || return 1
		pid_matches "${pid}" "kafka.Kafka ${KAFKA_DIR}/server.properties" || return 1
		;;
	redis)
		pid="$(read_pid "${REDIS_PID}")" || return 1
		pid_matches "${pid}" "redis-server ${HOST}:${REDIS_PORT}" || return 1
		# our instance runs in our data dir (its 'dir' setting), which tells it from another one
		[[ "$(readlink "/proc/${pid}/cwd" 2>/dev/null)" == "$(readlink -f "${REDIS_DIR}/data")" ]] || return 1
		;;
	esac
	printf '%s\n' "${pid}"
}

redis_ping() {
	[[ "$(timeout 3 redis-cli -h "${HOST}" -p "${REDIS_PORT}" ping 2>/dev/null)" == "PONG" ]]
}

# answering SVC: the service's port answers (TCP accept for Kafka, PING for Redis).
answering() {
	case "$1" in
	kafka) tcp_open "${KAFKA_PORT}" ;;
	redis) redis_ping ;;
	esac
}

# running SVC: pid file, live process and port answering.
running() {
	our_pid "$1" >/dev/null && answering "$1"
}

pid_file_of() {
	case "$1" in
	kafka) printf '%s\n' "${KAFKA_PID}" ;;
	redis) printf '%s\n' "${REDIS_PID}" ;;
	esac
}

port_of() {
	case "$1" in
	kafka) printf '%s\n' "${KAFKA_PORT}" ;;
	redis) printf '%s\n' "${REDIS_PORT}" ;;
	esac
}

# lock: serialise concurrent invocations (e.g. two test packages calling up at once).
lock() {
	mkdir -p "${STATE_DIR}"
	exec 9>"${STATE_DIR}/.lock"
	flock -w 300 9 || die "another devstack.sh holds ${STATE_DIR}/.lock for over 300 s"
}

# ---------------------------------------------------------------------------------------------------------
# Kafka

java_bin() {
	if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
		printf '%s\n' "${JAVA_HOME}/bin/java"
	else
		command -v java || true
	fi
}

require_java() {
	local java major
	java="$(java_bin)"
	[[ -n "${java}" ]] || die "java 17+ not found: apt-get install openjdk-17-jre-headless"
	major="$("${java}" -XshowSettings:properties -version 2>&1 |
		sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')"
	[[ -n "${major}" && "${major}" -ge 17 ]] ||
		die "java 17+ not found (${java} is version ${major:-unknown}): apt-get install openjdk-17-jre-headless"
	printf '%s\n' "${java}"
}

# write_pom FILE: the tiny pom whose runtime dependencies are the broker, its tools and a log4j2 backend.
write_pom() {
	cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/devstack.sh: resolves Apache Kafka ${KAFKA_VERSION} from Maven Central. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>owlpost.devstack</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- the broker: main class kafka.Kafka, storage tool kafka.tools.StorageTool -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- command line tools: TopicCommand (readiness check), ConsoleProducer, ConsoleConsumer, ... -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>${KAFKA_VERSION}</version>
    </dependency>
    <!-- logging backend: Kafka 4.1 logs through slf4j 1.7, bound to log4j 2 as in its binary distribution -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
}

# kafka_classpath: prints the broker classpath, resolving it with Maven once per Kafka version.
# The jars are copied into the cache so it does not depend on ~/.m2 staying around.
kafka_classpath() {
	if [[ -s "${KAFKA_CLASSPATH_FILE}" ]]; then
		cat "${KAFKA_CLASSPATH_FILE}"
		return
	fi
	command -v mvn >/dev/null || die "maven not found: apt-get install maven"
	log "resolving Apache Kafka ${KAFKA_VERSION} from Maven Central into ${KAFKA_CACHE} (first run only)"
	local tmp
	mkdir -p "${CACHE_DIR}"
	tmp="$(mktemp -d "${CACHE_DIR}/.kafka-${KAFKA_VERSION}.XXXXXX")"
	write_pom "${tmp}/pom.xml"
	if ! mvn -q -B -f "${tmp}/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="${tmp}/lib" >"${tmp}/mvn.log" 2>&1; then
		tail -n 30 "${tmp}/mvn.log" >&2
		die "maven could not resolve org.apache.kafka:kafka_2.13:${KAFKA_VERSION} (log: ${tmp}/mvn.log)"
	fi
	[[ -f "${tmp}/lib/kafka_2.13-${KAFKA_VERSION}.jar" ]] ||
		die "maven finished but kafka_2.13-${KAFKA_VERSION}.jar is missing in ${tmp}/lib"
	rm -rf "${KAFKA_CACHE}"
	mv "${tmp}" "${KAFKA_CACHE}"
	# The classpath file is written last: its presence means the cache is complete.
	(
		shopt -s nullglob
		jars=("${KAFKA_CACHE}"/lib/*.jar)
		IFS=:
		printf '%s\n' "${jars[*]}"
	) >"${KAFKA_CLASSPATH_FILE}.tmp"
	mv "${KAFKA_CLASSPATH_FILE}.tmp" "${KAFKA_CLASSPATH_FILE}"
	cat "${KAFKA_CLASSPATH_FILE}"
}

write_kafka_config() {
	mkdir -p "${KAFKA_DIR}/data" "${KAFKA_DIR}/logs"
	cat >"${KAFKA_DIR}/server.properties" <<EOF
# Generated by scripts/devstack.sh on every start; edit the script, not this file.
# Single node KRaft in combined mode: this process is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${KAFKA_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=${KAFKA_DIR}/data

# One node: every internal topic has replication factor 1, so transactions and consumer groups work.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=1
group.initial.rebalance.delay.ms=0
# Topics are created explicitly by the code (internal/kafka admin), never by a stray produce or fetch.
auto.create.topics.enable=false
# The batches topic is compacted.
log.cleaner.enable=true
log.cleaner.threads=1
# Modest resources: the machine is small and shared.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
	cat >"${KAFKA_DIR}/log4j2.properties" <<EOF
# Generated by scripts/devstack.sh: broker log in ${KAFKA_LOG}.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${KAFKA_LOG}
appender.file.filePattern = ${KAFKA_LOG}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
# Chatty loggers at WARN.
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
EOF
	cat >"${KAFKA_DIR}/tools-log4j2.properties" <<'EOF'
# Generated by scripts/devstack.sh: Kafka command line tools log warnings to stderr.
status = warn
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

# kafka_tool CLASS ARGS...: runs a Kafka tool class from the broker's classpath.
kafka_tool() {
	local java cp
	java="$(require_java)"
	cp="$(kafka_classpath)"
	[[ -f "${KAFKA_DIR}/tools-log4j2.properties" ]] || write_kafka_config
	"${java}" -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
		-cp "${cp}" "$@"
}

# kafka_metadata_ok: the broker answers a metadata request (lists topics through the Admin API).
kafka_metadata_ok() {
	local cfg="${KAFKA_DIR}/probe.properties"
	[[ -f "${cfg}" ]] || printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' >"${cfg}"
	timeout 40 "${JAVA}" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
		-cp "${CLASSPATH_KAFKA}" org.apache.kafka.tools.TopicCommand \
		--bootstrap-server "${HOST}:${KAFKA_PORT}" --command-config "${cfg}" --list \
		>/dev/null 2>>"${KAFKA_DIR}/logs/probe.log"
}

format_kafka_storage() {
	local cluster_id_file="${KAFKA_DIR}/cluster.id" cluster_id
	if [[ -f "${KAFKA_DIR}/data/meta.properties" ]]; then
		return
	fi
	if [[ ! -s "${cluster_id_file}" ]]; then
		cluster_id="$("${JAVA}" -cp "${CLASSPATH_KAFKA}" \
			-Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
			kafka.tools.StorageTool random-uuid)"
		printf '%s\n' "${cluster_id}" >"${cluster_id_file}"
	fi
	cluster_id="$(cat "${cluster_id_file}")"
	log "formatting Kafka storage in ${KAFKA_DIR}/data (cluster id ${cluster_id})"
	"${JAVA}" -cp "${CLASSPATH_KAFKA}" \
		-Dlog4j2.configurationFile="${KAFKA_DIR}/tools-log4j2.properties" \
		kafka.tools.StorageTool format --cluster-id "${cluster_id}" \
		--config "${KAFKA_DIR}/server.properties" --ignore-formatted >"${KAFKA_DIR}/logs/format.log" 2>&1 || {
		cat "${KAFKA_DIR}/logs/format.log" >&2
		die "kafka storage format failed"
	}
}

start_kafka() {
	local pid
	if pid="$(our_pid kafka)"; then
		if answering kafka; then
			log "kafka already running (pid ${pid}, ${HOST}:${KAFKA_PORT})"
			return
		fi
		log "kafka process ${pid} is up but ${HOST}:${KAFKA_PORT} does not answer yet; waiting"
	else
		if tcp_open "${KAFKA_PORT}" || tcp_open "${KAFKA_CONTROLLER_PORT}"; then
			die "port ${KAFKA_PORT} or ${KAFKA_CONTROLLER_PORT} is in use by a process devstack did not start; set OWLPOST_KAFKA_PORT / OWLPOST_KAFKA_CONTROLLER_PORT"
		fi
		JAVA="$(require_java)"
		CLASSPATH_KAFKA="$(kafka_classpath)"
		rm -f "${KAFKA_PID}"
		write_kafka_config
		format_kafka_storage
		log "starting kafka ${KAFKA_VERSION} on ${HOST}:${KAFKA_PORT} (controller ${HOST}:${KAFKA_CONTROLLER_PORT})"
		# shellcheck disable=SC2086 # KAFKA_HEAP holds several JVM flags
		setsid "${JAVA}" ${KAFKA_HEAP} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
			-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
			-Djava.awt.headless=true \
			-Dlog4j2.configurationFile="${KAFKA_DIR}/log4j2.properties" \
			-Dkafka.logs.dir="${KAFKA_DIR}/logs" \
			-cp "${CLASSPATH_KAFKA}" kafka.Kafka "${KAFKA_DIR}/server.properties" \
			</dev/null >>"${KAFKA_STDOUT}" 2>&1 9>&- &
		pid=$!
		printf '%s\n' "${pid}" >"${KAFKA_PID}"
	fi
	JAVA="${JAVA:-$(require_java)}"
	CLASSPATH_KAFKA="${CLASSPATH_KAFKA:-$(kafka_classpath)}"
	local deadline=$((SECONDS + KAFKA_WAIT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "${pid}" 2>/dev/null; then
			tail -n 20 "${KAFKA_STDOUT}" "${KAFKA_LOG}" >&2 2>/dev/null || true
			rm -f "${KAFKA_PID}"
			die "kafka exited during startup; see ${KAFKA_LOG} and ${KAFKA_STDOUT}"
		fi
		if tcp_open "${KAFKA_PORT}" && kafka_metadata_ok; then
			log "kafka ready (pid ${pid}, ${HOST}:${KAFKA_PORT}, $((SECONDS - deadline + KAFKA_WAIT)) s)"
			return
		fi
		sleep 1
	done
	die "kafka (pid ${pid}) did not answer metadata requests on ${HOST}:${KAFKA_PORT} within ${KAFKA_WAIT} s; see ${KAFKA_LOG}"
}

# ---------------------------------------------------------------------------------------------------------
# Redis

require_redis() {
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
	if [[ "$(id -u)" -ne 0 ]]; then
		die "redis-server not found: sudo apt-get install -y redis-server"
	fi
	log "installing redis-server from Debian's packages"
	# The distribution's own service is not used (we run our own instance); on this kind of machine
	# /usr/sbin/policy-rc.d keeps apt from starting it, and start_redis refuses a port it did not take.
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; } >&2 ||
		die "apt-get install redis-server failed"
	command -v redis-server >/dev/null || die "redis-server still not found after apt-get install"
}

# h2load (Debian's nghttp2-client) is the bench's lean HTTP/2 client reference (make bench).
require_h2load() {
	command -v h2load >/dev/null && return
	if [[ "$(id -u)" -ne 0 ]]; then
		die "h2load not found: sudo apt-get install -y nghttp2-client"
	fi
	log "installing nghttp2-client (h2load) from Debian's packages"
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nghttp2-client; } >&2 ||
		die "apt-get install nghttp2-client failed"
	command -v h2load >/dev/null || die "h2load still not found after apt-get install"
}

write_redis_config() {
	mkdir -p "${REDIS_DIR}/data"
	cat >"${REDIS_DIR}/redis.conf" <<EOF
# Generated by scripts/devstack.sh on every start; edit the script, not this file.
bind ${HOST}
port ${REDIS_PORT}
protected-mode yes
daemonize yes
pidfile "${REDIS_PID}"
logfile "${REDIS_LOG}"
loglevel notice
dir "${REDIS_DIR}/data"
# Persistence, on purpose, so restart tests know what survives:
# - AOF on, fsync once a second: a clean stop (SIGTERM, 'stop redis', 'down') keeps every write;
#   a kill -9 ('kill redis') may lose about the last second of writes (guard keys written just before).
# - RDB snapshot too (after 60 s if at least 1 key changed, and on clean shutdown), as a second copy.
# On start Redis loads the AOF (it wins over the RDB when appendonly is yes).
appendonly yes
appendfsync everysec
appenddirname "appendonlydir"
save 60 1
dbfilename dump.rdb
# No memory cap: the guard keys are few; never evict them silently.
maxmemory-policy noeviction
EOF
}

start_redis() {
	local pid
	require_redis
	if pid="$(our_pid redis)" && redis_ping; then
		log "redis already running (pid ${pid}, ${HOST}:${REDIS_PORT})"
		return
	fi
	if [[ -z "${pid:-}" ]]; then
		if tcp_open "${REDIS_PORT}"; then
			die "port ${REDIS_PORT} is in use by a process devstack did not start; set OWLPOST_REDIS_PORT"
		fi
		rm -f "${REDIS_PID}"
		write_redis_config
		log "starting redis on ${HOST}:${REDIS_PORT}"
		redis-server "${REDIS_DIR}/redis.conf" </dev/null >>"${REDIS_DIR}/stdout.log" 2>&1 9>&- ||
			die "redis-server failed to start; see ${REDIS_LOG}"
	fi
	local deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		if pid="$(our_pid redis)" && redis_ping; then
			log "redis ready (pid ${pid}, ${HOST}:${REDIS_PORT})"
			return
		fi
		sleep 0.2
	done
	tail -n 20 "${REDIS_LOG}" >&2 2>/dev/null || true
	die "redis did not answer PING on ${HOST}:${REDIS_PORT} within 30 s; see ${REDIS_LOG}"
}

# ---------------------------------------------------------------------------------------------------------
# stop / kill / status / logs

# stop_svc SVC SIGNAL: signals our instance (per its pid file) and waits for it to exit.
stop_svc() {
	local svc="$1" sig="$2" pid pidfile wait_s=60
	pidfile="$(pid_file_of "${svc}")"
	if ! pid="$(our_pid "${svc}")"; then
		if [[ -f "${pidfile}" ]]; then
			log "${svc}: not running (removing stale pid file)"
			rm -f "${pidfile}"
		else
			log "${svc}: not running"
		fi
		return
	fi
	log "${svc}: sending SIG${sig} to pid ${pid}"
	kill -s "${sig}" "${pid}" 2>/dev/null || true
	local deadline=$((SECONDS + wait_s))
	while kill -0 "${pid}" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "${svc}: pid ${pid} still alive ${wait_s} s after SIG${sig}; sending SIGKILL"
			kill -s KILL "${pid}" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
			break
		fi
		sleep 0.2
	done
	rm -f "${pidfile}"
	log "${svc}: stopped"
}

status_line() {
	local svc="$1" pid port
	port="$(port_of "${svc}")"
	if pid="$(our_pid "${svc}")"; then
		if answering "${svc}"; then
			printf '%s: running pid %s %s:%s\n' "${svc}" "${pid}" "${HOST}" "${port}"
			return 0
		fi
		printf '%s: not ready (pid %s alive, %s:%s not answering)\n' "${svc}" "${pid}" "${HOST}" "${port}"
		return 1
	fi
	if [[ -f "$(pid_file_of "${svc}")" ]]; then
		printf '%s: stopped (stale pid file)\n' "${svc}"
	elif answering "${svc}"; then
		printf '%s: stopped (but %s:%s answers: a process devstack did not start)\n' "${svc}" "${HOST}" "${port}"
	else
		printf '%s: stopped\n' "${svc}"
	fi
	return 1
}

print_env() {
	printf 'export OWLPOST_TEST_KAFKA=%s:%s\n' "${HOST}" "${KAFKA_PORT}"
	printf 'export OWLPOST_TEST_REDIS=%s:%s\n' "${HOST}" "${REDIS_PORT}"
}

# pick_services ONE|ANY ARG: sets SVCS to the services ARG names (both when empty and ANY).
pick_services() {
	case "${2:-}" in
	"") [[ "$1" == ANY ]] || die "name one service: kafka or redis"; SVCS=(redis kafka) ;;
	kafka | redis) SVCS=("$2") ;;
	*) die "unknown service '$2' (kafka or redis)" ;;
	esac
}

# shellcheck source=scripts/cluster.sh
source "${REPO_DIR}/scripts/cluster.sh"

# cluster_main CMD ARGS...: the verbs of the cluster stack (--cluster, or a cluster node named).
cluster_main() {
	local cmd="$1"
	shift
	case "${cmd}" in
	up) lock; cl_up "${1:-}" ;;
	down) lock; cl_down ;;
	status) cl_status ;;
	env) cl_env ;;
	start) lock; cl_start "${1:?name a node}" ;;
	stop) lock; cl_stop "${1:?name a node}" TERM ;;
	kill) lock; cl_stop "${1:?name a node}" KILL ;;
	partition) lock; cl_partition "${1:?name a node}" ;;
	heal) lock; cl_heal "${1:?name a node}" ;;
	netns)
		[[ "$(cl_mode)" == netns ]] || die "netns: the cluster runs on loopback (no namespaces)"
		cl_ns "$(cl_host "$1")"
		;;
	logs)
		local f
		f="$(cl_logs "$1")"
		shift
		exec tail -n 100 "$@" "${f}"
		;;
	*) log "command '${cmd}' has no --cluster form"; usage ;;
	esac
}

main() {
	local cmd="${1:-}" svc rc=0 i arg args=()
	SVCS=()
	shift || true
	# --cluster anywhere, or a cluster node as the argument, selects the cluster stack.
	for arg in "$@"; do
		if [[ "${arg}" == --cluster ]]; then
			CLUSTER=1
		else
			args+=("${arg}")
		fi
	done
	if [[ -n "${CLUSTER:-}" ]] || { [[ ${#args[@]} -gt 0 ]] && is_cluster_node "${args[0]}"; }; then
		cluster_main "${cmd}" "${args[@]}"
		return
	fi
	case "${cmd}" in
	partition | heal | netns) die "${cmd}: name a cluster node (kafka-1..3, redis-1..3, sentinel-1..3, rc-1..6)" ;;
	up | start)
		if [[ "${cmd}" == start ]]; then pick_services ONE "${1:-}"; else pick_services ANY "${1:-}"; fi
		lock
		for svc in "${SVCS[@]}"; do "start_${svc}"; done
		print_env
		;;
	down | stop)
		if [[ "${cmd}" == stop ]]; then pick_services ONE "${1:-}"; else pick_services ANY "${1:-}"; fi
		lock
		# Kafka first (the reverse of up): clients of Redis are usually also Kafka clients.
		for ((i = ${#SVCS[@]} - 1; i >= 0; i--)); do stop_svc "${SVCS[i]}" TERM; done
		;;
	kill)
		pick_services ONE "${1:-}"
		lock
		stop_svc "${SVCS[0]}" KILL
		;;
	status)
		for svc in kafka redis; do status_line "${svc}" || rc=1; done
		return "${rc}"
		;;
	logs)
		local follow=() files=()
		for arg in "$@"; do
			case "${arg}" in
			-f | --follow) follow=(-F) ;;
			kafka) files+=("${KAFKA_LOG}" "${KAFKA_STDOUT}") ;;
			redis) files+=("${REDIS_LOG}") ;;
			*) die "logs: unknown argument '${arg}'" ;;
			esac
		done
		((${#files[@]})) || files=("${KAFKA_LOG}" "${KAFKA_STDOUT}" "${REDIS_LOG}")
		local existing=()
		for f in "${files[@]}"; do [[ -f "${f}" || ${#follow[@]} -gt 0 ]] && existing+=("${f}"); done
		((${#existing[@]})) || die "no logs yet in ${STATE_DIR}"
		exec tail -n 100 "${follow[@]}" "${existing[@]}"
		;;
	env) print_env ;;
	bench-tools) require_h2load ;;
	kafka-class)
		[[ $# -ge 1 ]] || die "kafka-class: name a class, e.g. org.apache.kafka.tools.TopicCommand"
		kafka_tool "$@"
		;;
	-h | --help | help | "") usage ;;
	*) log "unknown command '${cmd}'"; usage ;;
	esac
}

main "$@"
