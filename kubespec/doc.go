// Package kubespec is the Kubernetes layer of the translation: it turns a
// Pod's and a container's securityContext into spec options with the
// semantics of the kubelet and containerd (internal/cri/opts/spec_opts.go),
// in policy.ApplyOrder, on top of containerd's default spec
// (DefaultSpec), resolving users against the image's /etc files.
//
// Only the tooling (secrunctl translate, check, fidelity, the conformance
// suite) links it. The wrapper applies policy to OCI documents with package
// spec alone; cmd/secrun's deps test keeps it that way.
package kubespec
