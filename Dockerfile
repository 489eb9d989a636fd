# syntax=docker/dockerfile:1
# failoverd: a static, non-root image (distroless, uid 65532).
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     -t ghcr.io/failoverd/failoverd:<version> --push .
#
# docs/install-helm.md has the details. The binary is /failoverd and, as a
# symlink, /usr/local/bin/failoverd on PATH: the entrypoint is `failoverd`,
# and the standby bootstrap runs the image with `--entrypoint failoverd`.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
      -o /out/failoverd ./cmd/failoverd \
 && mkdir -p /out/usr/local/bin \
 && ln -s /failoverd /out/usr/local/bin/failoverd

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="failoverd" \
      org.opencontainers.image.description="Keyless cloud standbys for home validators, keys move only on human approval" \
      org.opencontainers.image.source="https://github.com/failoverd/failoverd" \
      org.opencontainers.image.version="$VERSION"
# /out holds /failoverd and the symlink /usr/local/bin/failoverd (COPY keeps symlinks).
COPY --from=build /out/ /
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 9097
ENTRYPOINT ["failoverd"]
CMD ["--help"]
