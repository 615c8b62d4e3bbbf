package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v11/controller"
)

const snapshotGroup = "snapshot.storage.k8s.io"

var (
	volumeSnapshots        = schema.GroupVersionResource{Group: snapshotGroup, Version: "v1", Resource: "volumesnapshots"}
	volumeSnapshotContents = schema.GroupVersionResource{Group: snapshotGroup, Version: "v1", Resource: "volumesnapshotcontents"}
)

// Provision makes the volume's directory (from a snapshot's archive when the
// claim's dataSource names a VolumeSnapshot of this driver) and a CSI PV
// pinned to the node.
func (d *driver) Provision(ctx context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if o.SelectedNode == nil {
		return nil, controller.ProvisioningFinished, errors.New("the class must bind WaitForFirstConsumer (no selected node)")
	}
	if o.SelectedNode.Name != d.node {
		return nil, controller.ProvisioningNoChange, &controller.IgnoredError{Reason: "claim is for node " + o.SelectedNode.Name}
	}
	for _, m := range o.PVC.Spec.AccessModes {
		if m != v1.ReadWriteOnce && m != v1.ReadWriteOncePod {
			return nil, controller.ProvisioningFinished, fmt.Errorf("access mode %s: a node-local directory is only ReadWriteOnce/ReadWriteOncePod", m)
		}
	}
	snapshot := ""
	if src := o.PVC.Spec.DataSource; src != nil {
		if src.APIGroup == nil || *src.APIGroup != snapshotGroup || src.Kind != "VolumeSnapshot" {
			return nil, controller.ProvisioningFinished, fmt.Errorf("data source %s: only VolumeSnapshots are supported", src.Kind)
		}
		handle, err := d.snapshotHandle(ctx, o.PVC.Namespace, src.Name)
		if err != nil {
			return nil, controller.ProvisioningFinished, err
		}
		snapshot = handle
	}
	dir := filepath.Join(d.volumes, o.PVName)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	// World-writable: the workload's UID is not known here (see local-path).
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	if snapshot != "" {
		if err := d.restore(snapshot, dir); err != nil {
			_ = os.RemoveAll(dir)
			return nil, controller.ProvisioningFinished, err
		}
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
			Capacity:                      v1.ResourceList{v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				CSI: &v1.CSIPersistentVolumeSource{Driver: d.name, VolumeHandle: o.PVName},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{d.node},
				}}}},
			}},
		},
	}, controller.ProvisioningFinished, nil
}

// snapshotHandle: the archive a ready VolumeSnapshot of this driver points at.
func (d *driver) snapshotHandle(ctx context.Context, namespace, name string) (string, error) {
	vs, err := d.dyn.Resource(volumeSnapshots).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("VolumeSnapshot %s: %w", name, err)
	}
	if ready, _, _ := unstructured.NestedBool(vs.Object, "status", "readyToUse"); !ready {
		return "", fmt.Errorf("VolumeSnapshot %s is not ready to use", name)
	}
	contentName, _, _ := unstructured.NestedString(vs.Object, "status", "boundVolumeSnapshotContentName")
	if contentName == "" {
		return "", fmt.Errorf("VolumeSnapshot %s has no content", name)
	}
	content, err := d.dyn.Resource(volumeSnapshotContents).Get(ctx, contentName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("VolumeSnapshotContent %s: %w", contentName, err)
	}
	if driver, _, _ := unstructured.NestedString(content.Object, "spec", "driver"); driver != d.name {
		return "", fmt.Errorf("VolumeSnapshot %s is of driver %q, not %s", name, driver, d.name)
	}
	handle, _, _ := unstructured.NestedString(content.Object, "status", "snapshotHandle")
	if handle == "" {
		return "", fmt.Errorf("VolumeSnapshotContent %s has no snapshot handle", contentName)
	}
	return handle, nil
}

func (d *driver) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != d.name {
		return &controller.IgnoredError{Reason: "not a volume of this driver"}
	}
	dir, err := d.volumeDir(pv.Spec.CSI.VolumeHandle)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
