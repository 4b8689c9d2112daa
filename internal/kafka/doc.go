// Package kafka is owlpost's franz-go glue: client options from the Config
// (seeds, TLS, SASL), the topic admin that creates every topic the system uses
// with the right settings (safe to run repeatedly), consistent snapshot reads
// of a topic up to the end offsets taken when the read starts, consumer lag
// per group and partition, and conversion between record headers and the
// client-free wire.Header.
//
// What each topic carries is documented in package wire; this package only
// knows names, partition counts and settings.
package kafka
