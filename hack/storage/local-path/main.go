// A local-path dynamic provisioner for the test node: a PVC of its
// StorageClass becomes a directory under --root on the node's host and a
// `local` PersistentVolume pinned to the node, so a Pod that mounts the PVC
// gets that directory and the next Pod that mounts it finds the same data.
//
// It runs on the host beside the node's kubelet (same mount namespace), so it
// makes and removes the directories itself: no helper Pod, no image. Built on
// sigs.k8s.io/sig-storage-lib-external-provisioner, which does the PVC/PV
// bookkeeping (claims, delayed binding, the Released->Delete path).
//
// Only claims whose scheduler-selected node is --node are provisioned (the
// class binds WaitForFirstConsumer), so several test nodes can each run one.
//
//	local-path --kubeconfig K --name sandboxing.dev/local-path --node N --root DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v11/controller"
)

type localPath struct {
	node string
	root string
}

func (p *localPath) dir(pvName string) string { return filepath.Join(p.root, pvName) }

func (p *localPath) Provision(_ context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if o.SelectedNode == nil {
		// Immediate binding has no node to pin the directory to.
		return nil, controller.ProvisioningFinished, errors.New("the class must bind WaitForFirstConsumer (no selected node)")
	}
	if o.SelectedNode.Name != p.node {
		return nil, controller.ProvisioningNoChange, &controller.IgnoredError{Reason: "claim is for node " + o.SelectedNode.Name}
	}
	for _, m := range o.PVC.Spec.AccessModes {
		if m != v1.ReadWriteOnce && m != v1.ReadWriteOncePod {
			return nil, controller.ProvisioningFinished, fmt.Errorf("access mode %s: a node-local directory is only ReadWriteOnce/ReadWriteOncePod", m)
		}
	}
	if o.PVC.Spec.DataSource != nil || o.PVC.Spec.DataSourceRef != nil {
		// No snapshots here: say so rather than hand out an empty volume.
		return nil, controller.ProvisioningFinished, errors.New("data sources (snapshots, clones) are not supported by this provisioner")
	}
	dir := p.dir(o.PVName)
	// World-writable like rancher's local-path: the workload's UID is not known
	// here, and `local` volumes get no ownership change from fsGroup on every node.
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			VolumeMode:                    o.PVC.Spec.VolumeMode,
			// A directory has no size of its own: the claim's request is recorded, not enforced.
			Capacity:     v1.ResourceList{v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			MountOptions: o.StorageClass.MountOptions,
			PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: dir},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{p.node},
				}}}},
			}},
		},
	}, controller.ProvisioningFinished, nil
}

func (p *localPath) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.Local == nil || filepath.Dir(pv.Spec.Local.Path) != p.root {
		return &controller.IgnoredError{Reason: "not a directory of this provisioner"}
	}
	return os.RemoveAll(pv.Spec.Local.Path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	name := flag.String("name", "sandboxing.dev/local-path", "provisioner name (the StorageClass's provisioner)")
	node := flag.String("node", "", "the node whose directories this process makes")
	root := flag.String("root", "", "host directory holding the volumes")
	klog.InitFlags(nil)
	flag.Parse()
	if *node == "" || *root == "" {
		klog.Fatal("--node and --root are required")
	}
	if err := os.MkdirAll(*root, 0o755); err != nil {
		klog.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pc := controller.NewProvisionController(ctx, client, *name, &localPath{node: *node, root: filepath.Clean(*root)},
		controller.LeaderElection(false),
		controller.MetricsPort(0),
	)
	klog.Infof("local-path provisioner %s for node %s under %s", *name, *node, *root)
	pc.Run(ctx)
}
