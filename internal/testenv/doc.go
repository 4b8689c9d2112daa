// Package testenv is the one place integration tests get their real
// services from: the Kafka broker and redis-server started by
// scripts/devstack.sh (addresses from OWLPOST_TEST_KAFKA and
// OWLPOST_TEST_REDIS, defaulting to the dev stack's ports). Each test gets its
// own random topic names, group names and Redis key prefix, removed by
// t.Cleanup. When a service is unreachable the test FAILS with a message
// saying how to start it; it never skips silently.
package testenv
