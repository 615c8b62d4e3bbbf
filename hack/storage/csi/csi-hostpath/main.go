// A CSI driver for the test node that keeps volumes as directories on the
// node's host and snapshots as tar archives, so VolumeSnapshots (and PVCs
// restored from them) can run here. csi-driver-host-path, external-provisioner
// and node-driver-registrar would be the upstream parts; the module proxy here
// refuses them, so this one binary stands in for the three:
//
//   - the CSI Identity, Controller (snapshots) and Node (bind mounts) services
//     on --endpoint, which the kubelet and external-snapshotter's csi-snapshotter
//     sidecar call;
//   - the kubelet plugin registration (what node-driver-registrar does): a
//     socket in the kubelet's plugins_registry naming the driver and endpoint;
//   - provisioning (what external-provisioner does, on
//     sig-storage-lib-external-provisioner): a PVC of a class naming the driver
//     becomes a directory and a CSI PersistentVolume, restored from a
//     VolumeSnapshot's archive when the PVC's dataSource names one.
//
// It runs on the host beside the kubelet, in the host's mount namespace, so a
// bind mount it makes is the one the container runtime sees.
//
//	csi-hostpath --kubeconfig K --node N --root DIR --endpoint SOCK --kubelet-registry DIR
package main

import (
	"context"
	"flag"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v11/controller"
)

func listen(path string) net.Listener {
	_ = os.Remove(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		klog.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		klog.Fatal(err)
	}
	return l
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	driverName := flag.String("driver", "hostpath.csi.sandboxing.dev", "CSI driver name (the StorageClass's provisioner)")
	node := flag.String("node", "", "the node this driver serves")
	root := flag.String("root", "", "host directory holding volumes/ and snapshots/")
	endpoint := flag.String("endpoint", "", "unix socket of the CSI services")
	registry := flag.String("kubelet-registry", "", "the kubelet's plugins_registry directory")
	klog.InitFlags(nil)
	flag.Parse()
	if *node == "" || *root == "" || *endpoint == "" || *registry == "" {
		klog.Fatal("--node, --root, --endpoint and --kubelet-registry are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatal(err)
	}
	d := &driver{
		name:    *driverName,
		node:    *node,
		volumes: filepath.Join(filepath.Clean(*root), "volumes"),
		snaps:   filepath.Join(filepath.Clean(*root), "snapshots"),
		dyn:     dynamic.NewForConfigOrDie(cfg),
	}
	for _, dir := range []string{d.volumes, d.snaps} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			klog.Fatal(err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	csiServer := grpc.NewServer()
	csi.RegisterIdentityServer(csiServer, d)
	csi.RegisterControllerServer(csiServer, d)
	csi.RegisterNodeServer(csiServer, d)
	go func() { klog.Fatal(csiServer.Serve(listen(*endpoint))) }()

	regServer := grpc.NewServer()
	registration.RegisterRegistrationServer(regServer, &registrar{driver: d.name, endpoint: *endpoint})
	// The kubelet's plugin watcher takes any socket in plugins_registry and asks
	// it for the driver's name, so the file's name only has to be short: a unix
	// socket path has at most 107 bytes, and the test node's kubelet root sits
	// deep under the cache (<driver>-reg.sock made it 110).
	regSocket := filepath.Join(*registry, "csi-hostpath.sock")
	go func() { klog.Fatal(regServer.Serve(listen(regSocket))) }()

	pc := controller.NewProvisionController(ctx, kubernetes.NewForConfigOrDie(cfg), d.name, d,
		controller.LeaderElection(false),
		controller.MetricsPort(0),
	)
	klog.Infof("CSI driver %s for node %s: %s, registered at %s", d.name, d.node, *endpoint, regSocket)
	go pc.Run(ctx)
	<-ctx.Done()
	csiServer.Stop()
	regServer.Stop()
	_ = os.Remove(regSocket)
}

// registrar answers the kubelet's plugin watcher: what node-driver-registrar does.
type registrar struct {
	registration.UnimplementedRegistrationServer
	driver, endpoint string
}

func (r *registrar) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              r.driver,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		klog.Errorf("the kubelet refused the registration: %s", s.Error)
	}
	return &registration.RegistrationStatusResponse{}, nil
}
