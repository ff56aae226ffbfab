# syntax=docker/dockerfile:1
# The API server image: a static binary on distroless (CA certificates, time zone data,
# a non-root user, no shell). Build: docker build --build-arg COMMIT=$(git rev-parse --short=12 HEAD) -t enterprise-automation .
# internal/deploy checks that the build line below is the one the tests build and run.

# The build stage's Go is go.mod's toolchain line (its go line when it has none: then any
# Go as new); GOTOOLCHAIN=local builds with exactly that Go. internal/deploy checks it.
FROM golang:1.27.3-bookworm AS build
ENV GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X enterprise-automation/internal/app.Commit=${COMMIT}" -o /out/automation ./cmd/automation

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/automation /automation
USER nonroot:nonroot
EXPOSE 8000
ENTRYPOINT ["/automation"]
CMD ["serve"]
