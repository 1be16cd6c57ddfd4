// Command etcd is the upstream etcd server, built from the same module version that
// kube-apiserver's go.mod pins, so the pair is known to work together.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
