// Package push is the provider-neutral domain of sending: a rendered Message
// shared by every token of a campaign locale, the per-token Result, the Sender
// interface implemented by the APNs and FCM adapters, and the error classes
// every retry decision goes through (see Classify).
//
// Only the adapters under push/apns and push/fcm know provider reason strings;
// everything above them reasons in terms of the classes defined here.
package push
