// Package manifest reads Kubernetes manifests the way the API server
// does, strictly, and turns each container of a Pod, or of the pod
// template of a workload, into the OCI runtime spec (config.json) that
// the kubelet and containerd would give it, with secrun's stricter checks.
//
// This package links k8s.io/api, which costs milliseconds of init and
// megabytes of binary: it is for secrunctl and tests, never for the
// runtime wrapper, which uses the spec package's mirror types.
//
// # API
//
//	ws, err := manifest.Parse(data)
//	for _, w := range ws { // *manifest.Workload: Kind, Name, Namespace, PodSpec, PodPath, ...
//		bundles, err := manifest.Translate(w, manifest.Options{RootfsPath: "rootfs"})
//		for _, b := range bundles { // manifest.ContainerBundle: Name, Spec, Warnings, Path, ...
//			// write b.Spec as <bundle>/config.json next to <bundle>/rootfs
//		}
//	}
//
// Parse accepts YAML or JSON, several documents separated by "---", and
// v1 Lists. Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
// CronJobs, ReplicationControllers and PodTemplates become workloads;
// other kinds are skipped (ParseAll says which). A kind that looks like a
// misspelt workload kind is an error.
//
// Parsing is as strict as the API server: unknown fields, fields in the
// wrong case, duplicate keys and values of the wrong type are errors,
// every one of them reported at once with its path and, for an unknown
// field, the field of that object it most likely meant:
//
//	document 1 (Pod demo): spec.containers[0].securityContext.runAsUer: unknown field; did you mean runAsUser?
//
// A document written in the "field <type>" notation of reference pages
// ("runAsUser <integer>") is not YAML; the error says so, line by line
// for the names that are not fields.
//
// Translate starts from kubespec.DefaultSpec and applies the securityContext
// through kubespec.KubernetesSteps (see policy.ApplyOrder for the order,
// seccomp last), with:
//
//   - process.args = command + args, with the kubelet's $(VAR) expansion;
//     with neither, kubespec.DefaultArgs (["/bin/sh"]) stands in for the
//     image's ENTRYPOINT/CMD, which a manifest does not carry;
//   - process.env = PATH, HOSTNAME, then env in order; values from
//     Secrets, ConfigMaps and most fieldRefs are left out with a warning;
//   - namespaces from hostNetwork, hostPID, hostIPC and hostUsers (a user
//     namespace mapping container ids 0-65535 to host ids from 65536 unless
//     Options.UserNamespace says otherwise), or joined by
//     Options.NamespacePaths;
//   - the CRI annotations containerd sets (container name and type,
//     sandbox name and namespace, image), plus the Pod's secrun.dev/*
//     annotations, so that secrun's policy sees the bundle as it would see
//     one from containerd.
//
// Users and groups resolve against Options.ImageRootfs (or RootfsPath
// when absolute); without either, numeric ids stand and a named image
// USER is an error. Errors name the workload and the field path to fix;
// warnings (ignored windowsOptions, AppArmor skipped on a kernel without
// it, drops under privileged) are returned per container.
package manifest
