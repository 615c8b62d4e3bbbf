package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
)

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	name, node     string
	volumes, snaps string
	dyn            dynamic.Interface
}

// IDs become file names: nothing that could leave the directory.
var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

func (d *driver) volumeDir(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "volume id %q", id)
	}
	return filepath.Join(d.volumes, id), nil
}

func (d *driver) snapshotFile(id string) (string, error) {
	if !safeID.MatchString(id) {
		return "", status.Errorf(codes.InvalidArgument, "snapshot id %q", id)
	}
	return filepath.Join(d.snaps, id+".tar"), nil
}

// ---- Identity

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
		}},
	}}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// ---- Controller: snapshots (volumes are made by the provisioner, provision.go)

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	capability := func(t csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
		return &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t},
		}}
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{
		capability(csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT),
	}}, nil
}

// CreateSnapshot archives the volume's directory. The name the sidecar passes
// ("snapshot-<uid>") is the id, so a retried call finds the archive made.
func (d *driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	src, err := d.volumeDir(req.GetSourceVolumeId())
	if err != nil {
		return nil, err
	}
	file, err := d.snapshotFile(req.GetName())
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(src); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetSourceVolumeId(), err)
	}
	info, err := os.Stat(file)
	if err != nil {
		tmp := file + ".tmp"
		// --numeric-owner: the archive restores the workload's UIDs, whatever the host's names.
		out, err := exec.Command("tar", "--numeric-owner", "-C", src, "-cf", tmp, ".").CombinedOutput()
		if err != nil {
			_ = os.Remove(tmp)
			return nil, status.Errorf(codes.Internal, "tar: %v: %s", err, out)
		}
		if err := os.Rename(tmp, file); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if info, err = os.Stat(file); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		klog.Infof("snapshot %s of volume %s: %d bytes", req.GetName(), req.GetSourceVolumeId(), info.Size())
	}
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId:     req.GetName(),
		SourceVolumeId: req.GetSourceVolumeId(),
		SizeBytes:      info.Size(),
		CreationTime:   timestamppb.New(info.ModTime()),
		ReadyToUse:     true,
	}}, nil
}

func (d *driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	file, err := d.snapshotFile(req.GetSnapshotId())
	if err != nil {
		return nil, err
	}
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// restore unpacks snapshot `id` into `dir`.
func (d *driver) restore(id, dir string) error {
	file, err := d.snapshotFile(id)
	if err != nil {
		return err
	}
	if out, err := exec.Command("tar", "--numeric-owner", "-C", dir, "-xpf", file).CombinedOutput(); err != nil {
		return fmt.Errorf("restoring snapshot %s: %v: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ---- Node: a bind mount of the volume's directory at the kubelet's target

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.node}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	src, err := d.volumeDir(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if target == "" || req.GetVolumeCapability().GetMount() == nil {
		return nil, status.Error(codes.InvalidArgument, "a target path and a mount capability are required")
	}
	if _, err := os.Stat(src); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", req.GetVolumeId(), err)
	}
	if mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return nil, status.Errorf(codes.Internal, "bind mount: %v", err)
	}
	if req.GetReadonly() {
		// A bind mount takes MS_RDONLY only on a remount.
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			return nil, status.Errorf(codes.Internal, "read-only remount: %v", err)
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	for deadline := time.Now().Add(10 * time.Second); mounted(target); {
		if err := unix.Unmount(target, 0); err != nil && time.Now().After(deadline) {
			return nil, status.Errorf(codes.Internal, "unmount: %v", err)
		}
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// mounted: whether path is a mount point (its device differs from its parent's, or it is in mountinfo).
func mounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.ReplaceAll(f[4], `\040`, " ") == path {
			return true
		}
	}
	return false
}
