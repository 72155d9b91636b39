# natter roles (gateway, bridge, persister) as a static binary on a
# minimal non-root image. The one-process default needs PostgreSQL server
# binaries and is meant for a laptop, not for this image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /natter ./cmd/natter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /natter /natter
USER nonroot:nonroot
ENTRYPOINT ["/natter"]
