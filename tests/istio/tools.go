//go:build tools

// istioctl (for `istioctl analyze`, the comparison in the README's user-report table) is built
// by build.sh from the pinned module, beside the harness; this import keeps its dependencies in
// go.mod when `go mod tidy` runs.
package main

import _ "istio.io/istio/istioctl/cmd"
