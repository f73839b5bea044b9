// Command kubectl is the upstream kubectl, built at the same version as the
// API server so tests never depend on whatever kubectl the host happens to have.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		// Pretty-print the error and exit non-zero, as upstream kubectl does.
		cmdutil.CheckErr(err)
	}
}
