// Package audience generates synthetic audiences: realistic audience records
// (wire.AudienceRecord JSON, keyed by user id) written to an audience topic
// for demos, tests and benchmarks, together with the exact ground truth of
// what a correct planner must make of them (Counts).
//
// What a generated audience holds, for Spec{IOS: I, Android: A, ...}:
//
//   - exactly I distinct valid iOS tokens (64 hex characters, lower case) and
//     A distinct valid Android tokens (FCM-shaped: 22 characters, ":APA91b",
//     134 more, 163 in all, of [A-Za-z0-9_-]); about one user in ten has two
//     devices (two records with the same user id and key);
//   - round(DuplicateFraction*(I+A)) duplicate records repeating an earlier
//     token with the same user id (half of the repeated iOS tokens in upper
//     case, which a planner must still see as the same token);
//   - round(BadFraction*(I+A)) malformed records spread evenly over the reject
//     reasons of package wire: invalid JSON, wrong token shape for the
//     platform, unknown platform, missing fields, records over 16 KiB;
//   - floor(InvalidFraction*I) of the iOS tokens and floor(InvalidFraction*A)
//     of the Android tokens are well-shaped but refused by the push
//     simulator (package pushsim): iOS tokens starting "dead0410" (APNs 410
//     Unregistered) and FCM tokens containing "UNREGISTERED" (FCM 404
//     UNREGISTERED). They are planned like any other token and count in
//     Counts.IOS/Android; the sender must report them to the feedback topic.
//     Valid tokens never match any other simulator pattern ("dead" prefix,
//     UNREGISTERED, INVALIDARG, QUOTA429, UNAVAIL503, INTERNAL500).
//
// The output is a pure function of the Spec (Seed included): the same Spec
// gives the same records in the same order. Tokens embed their index, so
// distinctness is guaranteed, not just likely.
package audience
