// Command etcd is the upstream etcd server at the version k8s.io/kubernetes
// itself pins, so the API server runs against the etcd it is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
