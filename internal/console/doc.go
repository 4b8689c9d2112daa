// Package console is the launch console: web pages served by `owlctl serve`
// beside the control API, over the same control.Service and the same
// identities. Server-rendered with html/template, assets embedded with
// go:embed, a little plain JavaScript that follows Server-Sent Events; no
// build step, nothing from a CDN.
//
// Pages: /console/ (campaigns and their states), /console/c/{id} (the
// definition, a phone-like preview per locale, the plan, the readiness
// checklist, the last proof with each device's outcome, the GO button,
// progress, abort, the audit log; on a launch, the Rehearse form and its
// rehearsals; on a rehearsal, what it rehearses), POST /console/c/{id}/rehearse
// (control.Service.Rehearse, then the rehearsal's page), /console/c/{id}/events (the status
// as an SSE stream, once a second), /console/c/{id}/chart.svg (the live
// curve, drawn by report.LiveSnapshot) and /console/c/{id}/report (the
// final report as `owlctl report` prints it, with report.svg and
// report.json). The console computes no figure itself: the counts, rates,
// percentiles and lag are the control status's, the report is report.Build's.
//
// Security: login with a token (control.Server.Login: the same identities,
// the same per-address limit on wrong tokens); a random session id in a
// cookie (HttpOnly, SameSite=Strict, Secure under TLS, 12 h); a per-session
// CSRF token required on every form; a Content-Security-Policy allowing only
// this origin's script and style, so no inline script runs. Actions go
// through control.Allow and the Service like the API's, so a viewer's press
// is refused by the server whatever the page shows, and "by" is the
// session's identity.
//
// The GO button is one large square, disabled until every gate is green and
// the campaign id is typed; a press that loses shows "already fired by X",
// and every open page shows "fired at T by X" from the next event.
package console
