# syntax=docker/dockerfile:1
#
# owlpost images, built from this repository (used by deploy/docker-compose.yml and deploy/k8s).
#
#   docker build -t owlpost:dev .                    runtime image (default, last stage): every binary of ./cmd/...
#   docker build --target toolbox -t owlpost-toolbox:dev .   the same binaries on busybox, with a shell
#
# runtime: distroless static, non-root (65532), no shell, no package manager. Every binary is in
# /usr/local/bin; the container's command picks one (planner, fanout, sender, owlctl, pushsim).
# toolbox: for the compose demo only (the push simulator, secret generation and the scripted demo
# campaign need a shell and wget for health checks); never deploy it to production.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/bin/ ./cmd/... \
 && mkdir -p /out/state/creds /out/state/ca /out/state/secrets

# Shell tooling for the compose demo. Static binaries run on busybox as they are.
FROM busybox:1.37.0 AS toolbox
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/owlpost/
USER 65532:65532
WORKDIR /var/lib/owlpost
ENTRYPOINT []
CMD ["/usr/local/bin/owlctl", "help"]

# The default target: what runs in production.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/bin/ /usr/local/bin/
# Named volumes mounted below /var/lib/owlpost start out owned by the non-root user.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/owlpost/
USER 65532:65532
WORKDIR /var/lib/owlpost
# 9100: /metrics, /healthz, /readyz of every stage (metrics.addr); 8080: control API (control.addr).
EXPOSE 9100 8080
CMD ["/usr/local/bin/owlctl", "help"]
