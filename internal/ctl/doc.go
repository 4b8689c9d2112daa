// Package ctl implements owlctl, the operators' CLI: one file per command
// group (topics, campaign, audience, plan, prepare, proof, fire, abort,
// status, report, serve, bench). cmd/owlctl only calls Main.
//
// Every command takes the config flags (--config, --kafka.brokers, ...; see
// package config) after its own arguments, and prints human-readable text, or
// JSON with --json where a machine consumes it.
package ctl
