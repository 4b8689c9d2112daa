// Package identity is who acts on a campaign: people with a role, known by a
// bearer token. owlctl, the control API and the console all resolve a token
// to an Identity here, and the actor recorded in the audit log ("by") is the
// identity's name, never a name the caller typed.
//
// # Roles
//
// viewer reads; operator also defines, plans, prepares, sends proofs and
// aborts; launcher also fires. Each role includes the ones below it: the
// person trusted to press GO on air is trusted to send the proof and to
// abort. A campaign may narrow firing further to named launchers
// (campaign.Launch.Launchers).
//
// # Users file
//
//	users:
//	  - {name: alice, role: launcher, token_hash: "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"}
//	  - {name: vera,  role: viewer,   token_hash: "..."}
//
// Only a salted argon2id hash of each token is stored (NewToken prints a
// token and its hash; `owlctl user new` wraps it). A token is checked against
// every user's hash, so a verified token is remembered (by its SHA-256, in
// memory) to keep argon2's cost to the first request. Names match
// [a-z0-9][a-z0-9._-]{0,62}.
//
// # Other sources
//
// Authenticator is the one method the front ends need, so an OIDC verifier
// (a signed ID token mapped to a name and role) can stand beside the users
// file later. Static is the single shared token of earlier versions, kept as
// one configured identity.
package identity
