//go:build tools

// Package controlplane only records the packages build.sh compiles, so that
// `go mod tidy` keeps them in go.sum.
package controlplane

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
