// Package validate checks the deployment files in deploy/ offline: the Helm
// chart rendered as `helm template` renders it (Helm's own chart loader and
// engine) and decoded strictly into Kubernetes API types, the committed plain
// manifests, the Dockerfile (parsed with BuildKit's parser) and the systemd
// units (systemd-analyze verify). Every dfp2p flag the files use is checked
// against the real binary's --help, and the config files they carry against
// `dfp2p config validate`.
//
// It is its own Go module so that Helm and the Kubernetes libraries stay out
// of dfp2p's dependencies; `make deploy-check` runs it. It owns no runtime
// code and must not be imported.
package validate
