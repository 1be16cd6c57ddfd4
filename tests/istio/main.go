// Command istio-harness answers questions about a set of Kubernetes and Istio objects with
// Istio's own code, at the version pinned in go.mod:
//
//  1. validation: what istiod's validating webhook says about each Istio object
//     (pkg/config/validation, reached through the schema collections, as
//     pilot/pkg/config/kube/crd.ParseInputs does);
//  2. traffic: what a sidecar client in a given locality and namespace receives from pilot:
//     the Envoy clusters (CDS: is outlier detection set) and each cluster's
//     ClusterLoadAssignment (EDS, or CDS for STATIC/DNS clusters: per locality, the priority, the
//     weight and the endpoints), built by pilot's own test harness
//     (istio.io/istio/pilot/test/xds.FakeDiscoveryServer, the one Istio's xDS tests use).
//  3. ztunnel: what pilot's ambient index gives ztunnel for each Service (its waypoint, scope and
//     workloads), over this cluster and the remote clusters it reads (ztunnel, below);
//  4. dataplane: what a real xDS client (grpc-go, proxyless) does with pilot's EDS when
//     backends stop and restart (dataplane.go).
//
// It reads one JSON request on stdin ({"cases": [...]}, see Case) and prints one JSON line per
// case on stdout, so many cases share one process start. Istio's logs go to stderr at error
// level only. Nothing here is shipped: it is a test oracle for failover-guard.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1"
	clientsecurity "istio.io/client-go/pkg/apis/security/v1"
	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/serviceregistry/ambient"
	labelutil "istio.io/istio/pilot/pkg/serviceregistry/util/label"
	"istio.io/istio/pilot/pkg/serviceregistry/util/xdsfake"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/activenotifier"
	istiocluster "istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/gvr"
	"istio.io/istio/pkg/config/schema/resource"
	kubelib "istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/kclient/clienttest"
	"istio.io/istio/pkg/kube/krt"
	"istio.io/istio/pkg/kube/multicluster"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/network"
	"istio.io/istio/pkg/wellknown"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Request is the whole input.
type Request struct {
	Cases []Case `json:"cases"`
}

// Case is one set of objects and the questions asked about it.
type Case struct {
	Name string `json:"name"`
	// Objects are Kubernetes (Service, Pod, Node, EndpointSlice, Namespace) and Istio objects,
	// as JSON. Other kinds are ignored.
	Objects  []json.RawMessage `json:"objects"`
	Validate bool              `json:"validate"`
	Traffic  bool              `json:"traffic"`
	// Ztunnel asks pilot's ambient index (PILOT_ENABLE_AMBIENT) what ztunnel receives over
	// WDS for each input Service: its waypoint and its load balancing.
	Ztunnel bool `json:"ztunnel"`
	// Dataplane runs a real xDS client (grpc-go, proxyless) against pilot and counts which
	// endpoint answers its requests, phase after phase (dataplane.go).
	Dataplane *Dataplane `json:"dataplane,omitempty"`
	Mesh      Mesh       `json:"mesh"`
	// Clients to ask for; default: one per local locality in namespace "default".
	Clients []Client `json:"clients"`
	// Hosts to report; default: every Service and ServiceEntry host in Objects.
	Hosts []string `json:"hosts"`
	// Leave out of pilot the Istio objects Istio's validation rejects, as istiod's
	// validating webhook would have: the traffic question is then about what a cluster admits.
	DropInvalid bool `json:"dropInvalid"`
	// MeshConfig is the mesh config as YAML (the istio ConfigMap's data.mesh), applied over
	// Istio's defaults as istiod applies it (mesh.ApplyMeshConfigDefaults); empty: the defaults.
	MeshConfig string `json:"meshConfig"`
}

// Mesh is this cluster and the remote clusters, as failover-guard's config names them.
type Mesh struct {
	Cluster    string   `json:"cluster"`
	Network    string   `json:"network"`
	Localities []string `json:"localities"`
	Remotes    []Remote `json:"remotes"`
	// List the remote networks' gateways in meshNetworks (a multi-network install whose
	// istiod knows the remote gateways); by default only this cluster's network is declared,
	// as in the replicated-control-plane pattern where the ServiceEntries name the gateways.
	RemoteGatewaysInMeshNetworks bool `json:"remoteGatewaysInMeshNetworks"`
	// A native multicluster model (multi-primary, or the primary of primary-remote): istiod
	// reads every remote cluster through a remote secret. Each remote runs the same Services
	// (namespace sameness) with one pod per subset label set in its locality, and a remote on
	// another network has an east-west gateway Service labelled with its network at Address
	// (the way istio.io installs it). Istio config is read from this cluster only.
	Native bool `json:"native"`
	// Multi-network ambient (PILOT_ENABLE_AMBIENT and AMBIENT_ENABLE_MULTI_NETWORK on): pilot
	// scopes services by the mesh config's serviceScopeConfigs.
	AmbientMultiNetwork bool `json:"ambientMultiNetwork"`
}

// Remote is a remote cluster reached through its east-west gateway.
type Remote struct {
	Name     string `json:"name"`
	Network  string `json:"network"`
	Address  string `json:"address"`
	Port     uint32 `json:"port"`
	Locality string `json:"locality"`
	// Objects are what this remote holds instead of copies of the local Namespaces, Services
	// and Gateways (a cluster configured differently); empty: namespace sameness.
	Objects []json.RawMessage `json:"objects,omitempty"`
}

// Client is a sidecar that asks pilot for its configuration.
type Client struct {
	Locality  string `json:"locality"`
	Namespace string `json:"namespace"`
}

// Result is the answer for one case.
type Result struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
	// Panic is set when Istio's own code panicked while building the configuration (pilot's
	// push path has no recover: in istiod this takes the control plane down). It is a
	// verdict, not a harness error: the message and the Istio function that panicked.
	Panic      string       `json:"panic,omitempty"`
	Validation []Validation `json:"validation,omitempty"`
	Clusters   []Cluster    `json:"clusters,omitempty"`
	// Local workloads the harness made up for Services that had none in the input.
	Synthesized []string `json:"synthesized,omitempty"`
	// What ztunnel receives per Service (namespace/name), when Ztunnel was asked.
	ZtunnelServices map[string]ZtunnelService `json:"ztunnel,omitempty"`
	// What the real xDS client saw, when Dataplane was asked.
	Dataplane *DataplaneResult `json:"dataplane,omitempty"`
	// Istio objects left out because Istio's validation rejects them (dropInvalid), as
	// "Kind namespace/name".
	Dropped []string `json:"dropped,omitempty"`
}

// Validation is Istio's verdict on one object.
type Validation struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Error     string `json:"error,omitempty"`
	Warning   string `json:"warning,omitempty"`
}

// Cluster is one outbound Envoy cluster as one client receives it.
type Cluster struct {
	Name             string `json:"name"`
	Host             string `json:"host"`
	Port             int    `json:"port"`
	Subset           string `json:"subset,omitempty"`
	Client           Client `json:"client"`
	Type             string `json:"type"`
	OutlierDetection bool   `json:"outlierDetection"`
	// MaxEjectionPercent is Envoy's max_ejection_percent (0: unset, Envoy's default of 10).
	MaxEjectionPercent uint32     `json:"maxEjectionPercent,omitempty"`
	Priorities         []Priority `json:"priorities"`
	Verdict            string     `json:"verdict"`
}

// Priority is one LocalityLbEndpoints of a ClusterLoadAssignment.
type Priority struct {
	Priority  uint32     `json:"priority"`
	Locality  string     `json:"locality"`
	Weight    uint32     `json:"weight"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one LbEndpoint; Cluster names the remote cluster whose gateway it is; MTLS says
// whether the client talks Istio mTLS to it (the east-west gateway accepts nothing else).
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Cluster string `json:"cluster,omitempty"`
	Weight  uint32 `json:"weight,omitempty"`
	MTLS    bool   `json:"mtls"`
}

// ZtunnelService is the part of a workloadapi.Service that decides where ztunnel sends traffic,
// and the workloads ztunnel receives for it.
type ZtunnelService struct {
	// The waypoint's address, when the service is bound to one that pilot found.
	Waypoint bool `json:"waypoint"`
	// The waypoint as "namespace/hostname" (or its IP), "" without one.
	WaypointName string `json:"waypointName,omitempty"`
	// The service's scope in the merged index (GLOBAL, LOCAL), "" when pilot does not scope.
	Scope string `json:"scope,omitempty"`
	// The workloads ztunnel receives for the service (pilot's SplitHorizonWorkloads in
	// multi-network ambient): this network's pods, and one workload per other network that
	// stands for that network's east-west gateway.
	Workloads []ZtunnelWorkload `json:"workloads"`
	// LoadBalancing.RoutingPreference (NETWORK, REGION, ZONE, SUBZONE, NODE), in order.
	RoutingPreference []string `json:"routingPreference"`
	// LoadBalancing.Mode (FAILOVER, STRICT), "" without load balancing.
	Mode string `json:"mode,omitempty"`
	// LoadBalancing.HealthPolicy (ALLOW_ALL), "" when only healthy endpoints are used.
	HealthPolicy string `json:"healthPolicy,omitempty"`
}

// ZtunnelWorkload is one workloadapi.Workload of a service, as ztunnel picks among them.
type ZtunnelWorkload struct {
	Name     string `json:"name"`
	Cluster  string `json:"cluster"`
	Network  string `json:"network,omitempty"`
	Locality string `json:"locality,omitempty"`
	// TunnelProtocol: HBONE, or NONE (ztunnel sends plain TCP to the address).
	Tunnel string `json:"tunnel"`
	// Set for the workload that stands for another network: ztunnel reaches it through that
	// network's east-west gateway (double HBONE).
	Gateway bool `json:"gateway,omitempty"`
}

func main() {
	quietIstioLogs()
	var req Request
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	if err := dec.Decode(&req); err != nil {
		fmt.Fprintf(os.Stderr, "istio-harness: bad request: %v\n", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, c := range req.Cases {
		if err := out.Encode(run(c)); err != nil {
			fmt.Fprintf(os.Stderr, "istio-harness: %v\n", err)
			os.Exit(1)
		}
	}
}

func quietIstioLogs() {
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.NoneLevel)
	}
}

// run answers one case; a panic inside Istio's code becomes the case's panic verdict, and a
// Fatal of the harness its error, rather than ending the batch.
func run(c Case) (res Result) {
	res.Name = c.Name
	t := &failer{}
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(fatal); ok {
				res.Error = string(f)
			} else {
				res.Panic = fmt.Sprintf("%v in %s", r, panicSite(string(debug.Stack())))
				res.Clusters = nil
			}
		}
		t.cleanup()
	}()
	istio, kube, err := decode(c.Objects)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if c.Validate {
		res.Validation = validate(istio)
	}
	if c.DropInvalid {
		var kept []object
		for _, o := range istio {
			if o.err == nil {
				if _, err := o.schema.ValidateConfig(*o.cfg); err == nil {
					kept = append(kept, o)
					continue
				}
			}
			res.Dropped = append(res.Dropped, o.kind+" "+o.namespace+"/"+o.name)
		}
		istio = kept
	}
	if c.Traffic {
		res.Clusters, res.Synthesized = traffic(t, c, istio, kube)
	}
	if c.Ztunnel {
		res.ZtunnelServices = ztunnel(t, c, istio, kube)
	}
	if c.Dataplane != nil {
		res.Dataplane = dataplane(t, c, istio, kube)
	}
	return res
}

// panicSite is the innermost Istio function on a panicking goroutine's stack (the frames
// below runtime's panic handling), as "package.Function".
func panicSite(stack string) string {
	lines := strings.Split(stack, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "panic(") {
			continue
		}
		for _, frame := range lines[i+1:] {
			if strings.HasPrefix(frame, "istio.io/istio/") {
				name, _, _ := strings.Cut(frame, "(")
				return name[strings.LastIndex(name, "/")+1:]
			}
		}
	}
	return "an unknown function"
}

// object is one input Istio object: its converted config, or why it could not be converted.
type object struct {
	kind, namespace, name string
	schema                resource.Schema
	cfg                   *config.Config
	err                   error
	// The object as given: pilot's ambient index reads ServiceEntries and the other Istio
	// kinds it needs through the kube client, as client-go objects.
	raw json.RawMessage
}

// decode splits the input into Istio configs (namespaced like istiod's CRD client does, with
// creation times in input order so "oldest wins" rules follow the input) and Kubernetes objects.
func decode(raws []json.RawMessage) ([]object, []runtime.Object, error) {
	var istio []object
	var kube []runtime.Object
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, raw := range raws {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(raw, &meta); err != nil {
			// Not a Kubernetes object at all: nothing here reads it.
			continue
		}
		group, version := "", meta.APIVersion
		if g, v, ok := strings.Cut(meta.APIVersion, "/"); ok {
			group, version = g, v
		}
		gvk := config.GroupVersionKind{Group: group, Version: version, Kind: meta.Kind}
		// Gateway API Gateways and GatewayClasses are what pilot's ambient index reads
		// waypoints and east-west gateways from (through the kube client, not the config store).
		if group == "gateway.networking.k8s.io" && (meta.Kind == "Gateway" || meta.Kind == "GatewayClass") {
			var target runtime.Object = &gatewayv1.Gateway{}
			if meta.Kind == "GatewayClass" {
				target = &gatewayv1.GatewayClass{}
			}
			if err := json.Unmarshal(raw, target); err != nil {
				return nil, nil, fmt.Errorf("object %d (%s): %v", i, meta.Kind, err)
			}
			if gw, ok := target.(*gatewayv1.Gateway); ok && gw.Namespace == "" {
				gw.Namespace = "default"
			}
			kube = append(kube, target)
			continue
		}
		if s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(gvk); ok && group != "" {
			var obj crd.IstioKind
			if err := json.Unmarshal(raw, &obj); err != nil {
				// Not even an object of this kind (a spec that is a string): istiod's CRD
				// client could not read it either. Judge it as unreadable; keep going.
				istio = append(istio, object{kind: meta.Kind, schema: s, err: err})
				continue
			}
			if obj.Namespace == "" {
				obj.Namespace = "default"
			}
			if obj.CreationTimestamp.IsZero() {
				obj.CreationTimestamp = metav1.NewTime(base.Add(time.Duration(i) * time.Second))
			}
			cfg, err := crd.ConvertObject(s, &obj, "cluster.local")
			istio = append(istio, object{kind: meta.Kind, namespace: obj.Namespace, name: obj.Name, schema: s, cfg: cfg, err: err, raw: raw})
			continue
		}
		var target runtime.Object
		switch gvk {
		case config.GroupVersionKind{Version: "v1", Kind: "Service"}:
			target = &corev1.Service{}
		case config.GroupVersionKind{Version: "v1", Kind: "Pod"}:
			target = &corev1.Pod{}
		case config.GroupVersionKind{Version: "v1", Kind: "Node"}:
			target = &corev1.Node{}
		case config.GroupVersionKind{Version: "v1", Kind: "Namespace"}:
			target = &corev1.Namespace{}
		case config.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"}:
			target = &discoveryv1.EndpointSlice{}
		default:
			continue
		}
		if err := json.Unmarshal(raw, target); err != nil {
			return nil, nil, fmt.Errorf("object %d (%s): %v", i, meta.Kind, err)
		}
		if m, ok := target.(metav1.Object); ok && m.GetNamespace() == "" && meta.Kind != "Node" && meta.Kind != "Namespace" {
			m.SetNamespace("default")
		}
		kube = append(kube, target)
	}
	return istio, kube, nil
}

// validate runs the validation behind istiod's webhook on every Istio object.
func validate(objects []object) []Validation {
	out := make([]Validation, 0, len(objects))
	for _, o := range objects {
		v := Validation{Kind: o.kind, Namespace: o.namespace, Name: o.name}
		if o.err != nil {
			v.Error = "cannot convert: " + o.err.Error()
		} else {
			// Istio's validation walks Go maps (distribute's to keys, say) in random order, and
			// some of its checks depend on that order: run it several times and keep every
			// message any run gave, so one object always gets the same answer.
			errs, warns := map[string]bool{}, map[string]bool{}
			for range 16 {
				warning, err := o.schema.ValidateConfig(*o.cfg)
				if err != nil {
					errs[err.Error()] = true
				}
				if warning != nil {
					warns[warning.Error()] = true
				}
			}
			v.Error, v.Warning = joined(errs), joined(warns)
		}
		out = append(out, v)
	}
	return out
}

// joined is the sorted union of messages, one per line.
func joined(messages map[string]bool) string {
	var out []string
	for m := range messages {
		out = append(out, m)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// traffic builds pilot with the case's objects and reports what each client receives.
func traffic(t *failer, c Case, istio []object, kube []runtime.Object) ([]Cluster, []string) {
	s, synthesized, expected, remotePods := buildPilot(t, c, istio, kube, false)
	hosts := c.Hosts
	if len(hosts) == 0 {
		hosts = inputHosts(validConfigs(istio), kube)
	}
	want := map[string]bool{}
	for _, h := range hosts {
		want[h] = true
	}
	clients := c.Clients
	if len(clients) == 0 {
		for _, l := range c.Mesh.Localities {
			clients = append(clients, Client{Locality: l, Namespace: "default"})
		}
	}
	var out []Cluster
	for i, client := range clients {
		proxy := s.SetupProxy(sidecar(c.Mesh, client, i))
		out = append(out, stableClusters(s, proxy, client, c.Mesh, want, expected, remotePods)...)
	}
	return out, synthesized
}

// validConfigs are the Istio configs of the objects that converted.
func validConfigs(istio []object) []config.Config {
	var configs []config.Config
	for _, o := range istio {
		if o.err == nil {
			configs = append(configs, *o.cfg)
		}
	}
	return configs
}

// buildPilot is pilot with the case's objects, their synthesized workloads and, in a native
// model, the remote clusters; on a TCP loopback port when tcp is set (for a real xDS client),
// else in memory. It also returns what was synthesized, the addresses to wait for, and which
// remote each remote pod address belongs to.
func buildPilot(t *failer, c Case, istio []object, kube []runtime.Object, tcp bool) (*xds.FakeDiscoveryServer, []string, []expected, map[string]string) {
	configs := validConfigs(istio)
	if c.Mesh.AmbientMultiNetwork {
		// For as long as the case runs (pilot reads the flags while it builds, not only here).
		features.EnableAmbient = true
		features.EnableAmbientMultiNetwork = true
		t.Cleanup(func() {
			features.EnableAmbient = false
			features.EnableAmbientMultiNetwork = false
		})
	}
	next := 0
	kube, synthesized, expected := synthesizeWorkloads(c.Mesh.Localities, "failover-guard-node-", &next, configs, kube)
	byCluster := map[istiocluster.ID][]runtime.Object{}
	remotePods := map[string]string{}
	if c.Mesh.Native {
		for _, r := range c.Mesh.Remotes {
			objs, names, ips := remoteCluster(c.Mesh, r, &next, configs, kube)
			byCluster[istiocluster.ID(r.Name)] = objs
			synthesized = append(synthesized, names...)
			expected = append(expected, ips...)
			for _, e := range ips {
				remotePods[e.ip] = r.Name
			}
			// And the remote's own pods, where it was given its objects.
			for _, o := range objs {
				if pod, ok := o.(*corev1.Pod); ok && pod.Status.PodIP != "" {
					remotePods[pod.Status.PodIP] = r.Name
				}
			}
		}
	}
	return fakePilot(t, c, configs, kube, byCluster, tcp), synthesized, expected, remotePods
}

// fakePilot is pilot's fake discovery server with the case's mesh config and networks, this
// cluster's objects and the remote clusters' (byCluster, native models).
func fakePilot(t *failer, c Case, configs []config.Config, kube []runtime.Object, byCluster map[istiocluster.ID][]runtime.Object, tcp bool) *xds.FakeDiscoveryServer {
	var listen func() (net.Listener, error)
	if tcp {
		listen = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	}
	return xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ListenerBuilder:            listen,
		MeshConfig:                 meshConfigOf(t, c),
		DefaultClusterName:         clusterIDOf(c.Mesh),
		Configs:                    configs,
		KubernetesObjects:          kube,
		NetworksWatcher:            meshwatcher.NewFixedNetworksWatcher(meshNetworks(c.Mesh)),
		KubernetesObjectsByCluster: byCluster,
	})
}

// meshConfigOf is the case's mesh config over Istio's defaults, as istiod applies it.
func meshConfigOf(t *failer, c Case) *meshconfig.MeshConfig {
	if c.MeshConfig == "" {
		return mesh.DefaultMeshConfig()
	}
	m, err := mesh.ApplyMeshConfigDefaults(c.MeshConfig)
	if err != nil {
		t.Fatalf("mesh config: %v", err)
	}
	return m
}

// ztunnel builds pilot's ambient index (pilot/pkg/serviceregistry/ambient, PILOT_ENABLE_AMBIENT)
// the way istiod does, over this cluster and, in a native model, the remote clusters it reads
// through remote secrets (their istio-system namespaces carry their networks, and a remote on
// another network has an istio-east-west Gateway at its address). For each input Service and
// ServiceEntry host it reads the workloadapi.Service ztunnel would receive (services.go
// constructService; in multi-network ambient the merged, split-horizon one) and the workloads
// ztunnel picks among, once two reads 50 ms apart agree (the index fills asynchronously).
func ztunnel(t *failer, c Case, istio []object, kube []runtime.Object) map[string]ZtunnelService {
	features.EnableAmbient = true
	features.EnableAmbientMultiNetwork = c.Mesh.AmbientMultiNetwork
	defer func() {
		features.EnableAmbient = false
		features.EnableAmbientMultiNetwork = false
	}()
	var configs []config.Config
	var istioObjects []runtime.Object
	for _, o := range istio {
		if o.err != nil {
			continue
		}
		configs = append(configs, *o.cfg)
		if obj := istioClientObject(o); obj != nil {
			istioObjects = append(istioObjects, obj)
		}
	}
	next := 0
	local, _, _ := synthesizeWorkloads(c.Mesh.Localities, "failover-guard-node-", &next, configs, kube)
	local = append(append(local, istioObjects...), ambientBase(c.Mesh.Network)...)
	byCluster := map[istiocluster.ID][]runtime.Object{}
	if c.Mesh.Native {
		for _, r := range c.Mesh.Remotes {
			objs, _, _ := remoteCluster(c.Mesh, r, &next, configs, kube)
			objs = append(objs, ambientBase(r.Network)...)
			if r.Network != c.Mesh.Network && r.Address != "" {
				objs = append(objs, eastWestGateway(r))
			}
			byCluster[istiocluster.ID(r.Name)] = captured(objs)
			local = append(local, remoteSecret(r.Name))
		}
	}
	idx := ambientIndex(t, c, captured(local), byCluster)
	keys := map[string]string{}
	for _, o := range kube {
		if svc, ok := o.(*corev1.Service); ok {
			keys[svc.Namespace+"/"+svc.Name] = svc.Namespace + "/" + svc.Name + "." + svc.Namespace + ".svc.cluster.local"
		}
	}
	for _, cfg := range configs {
		if se, ok := cfg.Spec.(*networking.ServiceEntry); ok {
			for _, h := range se.Hosts {
				keys[cfg.Namespace+"/"+h] = cfg.Namespace + "/" + h
			}
		}
	}
	read := func() map[string]ZtunnelService {
		out := map[string]ZtunnelService{}
		for name, key := range keys {
			found := idx.Lookup(key)
			if len(found) == 0 || found[0].GetService() == nil {
				continue
			}
			svc := found[0].GetService()
			view := ZtunnelService{Waypoint: svc.GetWaypoint() != nil, RoutingPreference: []string{}, Workloads: []ZtunnelWorkload{}}
			if wp := svc.GetWaypoint(); wp != nil {
				if h := wp.GetHostname(); h != nil {
					view.WaypointName = h.GetNamespace() + "/" + h.GetHostname()
				} else if a := wp.GetAddress(); a != nil {
					ip, _ := netip.AddrFromSlice(a.GetAddress())
					view.WaypointName = ip.String()
				}
			}
			if info := idx.ServiceInfo(key); info != nil && features.EnableAmbientMultiNetwork {
				view.Scope = string(info.Scope)
			}
			if lb := svc.GetLoadBalancing(); lb != nil {
				for _, p := range lb.GetRoutingPreference() {
					view.RoutingPreference = append(view.RoutingPreference, p.String())
				}
				if lb.GetMode() != 0 {
					view.Mode = lb.GetMode().String()
				}
				if lb.GetHealthPolicy() != 0 {
					view.HealthPolicy = lb.GetHealthPolicy().String()
				}
			}
			for _, a := range found[1:] {
				w := a.GetWorkload()
				if w == nil {
					continue
				}
				wl := ZtunnelWorkload{
					Name: w.GetName(), Cluster: w.GetClusterId(), Network: w.GetNetwork(),
					Tunnel: w.GetTunnelProtocol().String(), Gateway: w.GetNetworkGateway() != nil,
				}
				if l := w.GetLocality(); l != nil {
					wl.Locality = strings.TrimRight(l.GetRegion()+"/"+l.GetZone()+"/"+l.GetSubzone(), "/")
				}
				view.Workloads = append(view.Workloads, wl)
			}
			sort.Slice(view.Workloads, func(i, j int) bool {
				a, b := view.Workloads[i], view.Workloads[j]
				return a.Cluster+"/"+a.Name < b.Cluster+"/"+b.Name
			})
			out[name] = view
		}
		return out
	}
	deadline := time.Now().Add(10 * time.Second)
	last := read()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		got := read()
		x, _ := json.Marshal(got)
		y, _ := json.Marshal(last)
		if len(got) == len(keys) && string(x) == string(y) {
			return got
		}
		last = got
	}
	return last
}

// ambientIndex is pilot's ambient index over a fake kube client holding this cluster's objects,
// with a multicluster controller that builds each remote secret's cluster from byCluster: the
// ambient index and the multicluster controller are istiod's own, only the API servers are fakes.
func ambientIndex(t *failer, c Case, local []runtime.Object, byCluster map[istiocluster.ID][]runtime.Object) ambient.Index {
	watcher := meshwatcher.NewTestWatcher(meshConfigOf(t, c))
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	withCRDs := func(cl kubelib.Client) kubelib.Client {
		for _, r := range []schema.GroupVersionResource{
			gvr.AuthorizationPolicy, gvr.PeerAuthentication, gvr.KubernetesGateway,
			gvr.GatewayClass, gvr.WorkloadEntry, gvr.ServiceEntry,
		} {
			clienttest.MakeCRD(t, cl, r)
		}
		return cl
	}
	client := withCRDs(kubelib.NewFakeClient(local...))
	mc := multicluster.NewController(multicluster.ControllerOptions{
		Client:          client,
		ClusterID:       clusterIDOf(c.Mesh),
		SystemNamespace: "istio-system",
		MeshConfig:      watcher,
		Debugger:        krt.GlobalDebugHandler,
		ClientBuilder: func(_ []byte, id istiocluster.ID, _ ...func(*rest.Config)) (kubelib.Client, error) {
			return withCRDs(kubelib.NewFakeClient(byCluster[id]...)), nil
		},
	})
	idx := ambient.New(ambient.Options{
		SystemNamespace:        "istio-system",
		DomainSuffix:           "cluster.local",
		ClusterID:              clusterIDOf(c.Mesh),
		XDSUpdater:             xdsfake.NewFakeXDS(),
		MeshConfig:             watcher,
		StatusNotifier:         activenotifier.New(false),
		Debugger:               krt.GlobalDebugHandler,
		MultiClusterController: mc,
		Flags: ambient.FeatureFlags{
			DefaultAllowFromWaypoint:              features.DefaultAllowFromWaypoint,
			EnableK8SServiceSelectWorkloadEntries: features.EnableK8SServiceSelectWorkloadEntries,
		},
	})
	if err := mc.Run(stop); err != nil {
		t.Fatalf("multicluster controller: %v", err)
	}
	client.RunAndWait(stop)
	go idx.Run(stop)
	kubelib.WaitForCacheSync("ambient", stop, idx.HasSynced)
	return idx
}

// istioClientObject is an Istio object as the kube client holds it, for the kinds the ambient
// index reads through informers; nil for the others.
func istioClientObject(o object) runtime.Object {
	var target runtime.Object
	switch o.kind {
	case "ServiceEntry":
		target = &clientnetworking.ServiceEntry{}
	case "WorkloadEntry":
		target = &clientnetworking.WorkloadEntry{}
	case "PeerAuthentication":
		target = &clientsecurity.PeerAuthentication{}
	case "AuthorizationPolicy":
		target = &clientsecurity.AuthorizationPolicy{}
	default:
		return nil
	}
	if err := json.Unmarshal(o.raw, target); err != nil {
		return nil
	}
	if m, ok := target.(metav1.Object); ok && m.GetNamespace() == "" {
		m.SetNamespace(o.namespace)
	}
	return target
}

// ambientBase is what an ambient install puts in every cluster: its istio-system namespace
// labelled with its network (how pilot learns a cluster's network in ambient) and the
// GatewayClasses istiod creates for waypoints and east-west gateways.
func ambientBase(nw string) []runtime.Object {
	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}
	if nw != "" {
		system.Labels = map[string]string{"topology.istio.io/network": nw}
	}
	out := []runtime.Object{system}
	for _, name := range []string{"istio-waypoint", "istio-east-west"} {
		out = append(out, &gatewayv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       gatewayv1.GatewayClassSpec{ControllerName: "istio.io/mesh-controller"},
		})
	}
	return out
}

// eastWestGateway is remote r's ambient east-west gateway as istio.io installs it: an
// istio-east-west Gateway labelled with r's network, HBONE on 15008 terminating Istio mTLS,
// ready at r's address.
func eastWestGateway(r Remote) runtime.Object {
	terminate := gatewayv1.TLSModeTerminate
	ip := gatewayv1.IPAddressType
	return &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{
			Name: "istio-eastwestgateway", Namespace: "istio-system",
			Labels: map[string]string{"topology.istio.io/network": r.Network},
		},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "istio-east-west",
			Listeners: []gatewayv1.Listener{{
				Name: "mesh", Port: 15008, Protocol: "HBONE",
				TLS: &gatewayv1.ListenerTLSConfig{
					Mode:    &terminate,
					Options: map[gatewayv1.AnnotationKey]gatewayv1.AnnotationValue{"gateway.istio.io/tls-terminate-mode": "ISTIO_MUTUAL"},
				},
			}},
		},
		Status: gatewayv1.GatewayStatus{Addresses: []gatewayv1.GatewayStatusAddress{{Type: &ip, Value: r.Address}}},
	}
}

// remoteSecret is the secret istioctl create-remote-secret writes for cluster name; the
// harness's client builder ignores the kubeconfig and returns that cluster's fake.
func remoteSecret(name string) runtime.Object {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "istio-remote-secret-" + name, Namespace: "istio-system",
			Labels: map[string]string{"istio/multiCluster": "true"},
		},
		Data: map[string][]byte{name: []byte("kubeconfig-" + name)},
	}
}

// captured marks the pods of ambient namespaces as istio-cni does once it has redirected them
// (ambient.istio.io/redirection: enabled), unless the pod opts out (istio.io/dataplane-mode:
// none): pilot gives such a workload the HBONE tunnel.
func captured(objs []runtime.Object) []runtime.Object {
	ambientNS := map[string]bool{}
	for _, o := range objs {
		if ns, ok := o.(*corev1.Namespace); ok && ns.Labels["istio.io/dataplane-mode"] == "ambient" {
			ambientNS[ns.Name] = true
		}
	}
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		mode := pod.Labels["istio.io/dataplane-mode"]
		if mode == "ambient" || (ambientNS[pod.Namespace] && mode != "none") {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations["ambient.istio.io/redirection"] = "enabled"
		}
	}
	return objs
}

// stableClusters reads CDS and EDS once every synthesized pod has reached pilot's endpoint
// index (pods reach it asynchronously), and again until two reads agree.
func stableClusters(s *xds.FakeDiscoveryServer, proxy *model.Proxy, client Client, mesh Mesh, want map[string]bool, expected []expected, remotePods map[string]string) []Cluster {
	deadline := time.Now().Add(10 * time.Second)
	for !indexed(s, expected) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	last := readClusters(s, proxy, client, mesh, want, remotePods)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got := readClusters(s, proxy, client, mesh, want, remotePods)
		if sameClusters(got, last) {
			return got
		}
		last = got
	}
	return last
}

// indexed says whether every expected address is in pilot's endpoint index.
func indexed(s *xds.FakeDiscoveryServer, expected []expected) bool {
	for _, e := range expected {
		shards, ok := s.Discovery.Env.EndpointIndex.ShardsForService(e.host, e.namespace)
		if !ok {
			return false
		}
		found := false
		shards.RLock()
		for _, eps := range shards.Shards {
			for _, ep := range eps {
				for _, a := range ep.Addresses {
					found = found || a == e.ip
				}
			}
		}
		shards.RUnlock()
		if !found {
			return false
		}
	}
	return true
}

func readClusters(s *xds.FakeDiscoveryServer, proxy *model.Proxy, client Client, mesh Mesh, want map[string]bool, remotePods map[string]string) []Cluster {
	cds := s.Clusters(proxy)
	eds := map[string]*endpoint.ClusterLoadAssignment{}
	for _, cla := range s.Endpoints(proxy) {
		eds[cla.ClusterName] = cla
	}
	remotes := map[string]string{}
	for _, r := range mesh.Remotes {
		remotes[r.Address] = r.Name
	}
	for ip, name := range remotePods {
		remotes[ip] = name
	}
	var out []Cluster
	for _, c := range cds {
		dir, subset, hostname, port := model.ParseSubsetKey(c.Name)
		if dir != model.TrafficDirectionOutbound || !want[string(hostname)] {
			continue
		}
		cla := c.LoadAssignment
		typ := "EDS"
		switch ct := c.ClusterDiscoveryType.(type) {
		case *cluster.Cluster_Type:
			typ = ct.Type.String()
		case *cluster.Cluster_ClusterType:
			typ = "CUSTOM"
		}
		if typ == "EDS" {
			cla = eds[c.Name]
		}
		out = append(out, Cluster{
			Name:               c.Name,
			Host:               string(hostname),
			Port:               port,
			Subset:             subset,
			Client:             client,
			Type:               typ,
			OutlierDetection:   c.OutlierDetection != nil,
			MaxEjectionPercent: c.GetOutlierDetection().GetMaxEjectionPercent().GetValue(),
			Priorities:         priorities(cla, remotes, c),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		out[i].Verdict = verdict(out[i])
	}
	return out
}

// istioMTLS says whether a transport socket is Istio mTLS: TLS with the workload certificate
// pilot's SDS names "default" (cluster_tls.go buildUpstreamClusterTLSContext, ISTIO_MUTUAL).
func istioMTLS(ts *core.TransportSocket) bool {
	if ts.GetName() != wellknown.TransportSocketTLS {
		return false
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return false
	}
	for _, sds := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		if sds.GetName() == "default" {
			return true
		}
	}
	return false
}

// endpointMTLS mirrors Envoy's choice of transport socket for one endpoint: the cluster's own
// socket, or the first transport_socket_match whose match the endpoint's
// envoy.transport_socket_match metadata satisfies (auto mTLS: tlsMode=istio).
func endpointMTLS(c *cluster.Cluster, lb *endpoint.LbEndpoint) bool {
	if len(c.GetTransportSocketMatches()) == 0 {
		return istioMTLS(c.GetTransportSocket())
	}
	meta := lb.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"].GetFields()
	for _, m := range c.GetTransportSocketMatches() {
		matches := true
		for k, v := range m.GetMatch().GetFields() {
			if meta[k].GetStringValue() != v.GetStringValue() {
				matches = false
			}
		}
		if matches {
			return istioMTLS(m.GetTransportSocket())
		}
	}
	return istioMTLS(c.GetTransportSocket())
}

func priorities(cla *endpoint.ClusterLoadAssignment, remotes map[string]string, c *cluster.Cluster) []Priority {
	out := []Priority{}
	for _, group := range cla.GetEndpoints() {
		p := Priority{
			Priority:  group.GetPriority(),
			Locality:  locality(group.GetLocality()),
			Weight:    group.GetLoadBalancingWeight().GetValue(),
			Endpoints: []Endpoint{},
		}
		for _, lb := range group.GetLbEndpoints() {
			sock := lb.GetEndpoint().GetAddress().GetSocketAddress()
			addr := sock.GetAddress()
			p.Endpoints = append(p.Endpoints, Endpoint{
				Address: addr,
				Port:    sock.GetPortValue(),
				Cluster: remotes[addr],
				Weight:  lb.GetLoadBalancingWeight().GetValue(),
				MTLS:    endpointMTLS(c, lb),
			})
		}
		sort.Slice(p.Endpoints, func(i, j int) bool {
			a, b := p.Endpoints[i], p.Endpoints[j]
			return a.Address < b.Address || a.Address == b.Address && a.Port < b.Port
		})
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Priority < b.Priority || a.Priority == b.Priority && a.Locality < b.Locality
	})
	return out
}

func locality(l *core.Locality) string {
	parts := []string{l.GetRegion(), l.GetZone(), l.GetSubZone()}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "/")
}

// verdict says what the priorities mean for failover from this client's point of view.
// Local endpoints are every endpoint not at a configured remote gateway.
//
//	no-endpoints  the cluster has no endpoint at all
//	no-local      only remote gateway endpoints (every request crosses clusters)
//	no-remote     only local endpoints (nothing to fail over to)
//	plaintext     both, but the client sends a remote gateway endpoint no Istio mTLS (no
//	              tlsMode=istio label, auto mTLS off, or a tls mode other than ISTIO_MUTUAL):
//	              the gateway's AUTO_PASSTHROUGH port rejects it, failover traffic fails
//	inert         both, but no outlier detection: pilot puts everything at priority 0 and
//	              nothing is ever ejected, so traffic is spread across clusters
//	spread        both, outlier detection on, but a remote endpoint shares the best local
//	              priority: traffic crosses clusters all the time
//	remote-first  a remote endpoint ranks above every local one
//	capped        failover by priority, but Envoy's max_ejection_percent (10 when unset,
//	              enforced strictly) lets fewer hosts be ejected than the best local priority
//	              holds: that priority never empties, so traffic does not fully fail over
//	failover      both, outlier detection on, every remote endpoint ranks below the best
//	              local priority: traffic stays local and fails over when local is ejected
func verdict(c Cluster) string {
	const none = ^uint32(0)
	bestLocal, bestRemote := none, none
	total := 0
	plaintext := false
	for _, p := range c.Priorities {
		for _, e := range p.Endpoints {
			total++
			plaintext = plaintext || e.Cluster != "" && !e.MTLS
			if e.Cluster != "" {
				bestRemote = min(bestRemote, p.Priority)
			} else {
				bestLocal = min(bestLocal, p.Priority)
			}
		}
	}
	atBestLocal := 0
	for _, p := range c.Priorities {
		if p.Priority == bestLocal {
			atBestLocal += len(p.Endpoints)
		}
	}
	maxEjection := c.MaxEjectionPercent
	if maxEjection == 0 {
		maxEjection = 10
	}
	ejectable := int(maxEjection) * total / 100
	switch {
	case bestLocal == none && bestRemote == none:
		return "no-endpoints"
	case bestLocal == none:
		return "no-local"
	case bestRemote == none:
		return "no-remote"
	case plaintext:
		return "plaintext"
	case !c.OutlierDetection:
		return "inert"
	case bestRemote == bestLocal:
		return "spread"
	case bestRemote < bestLocal:
		return "remote-first"
	case ejectable < atBestLocal:
		return "capped"
	default:
		return "failover"
	}
}

// sameClusters says whether two reads agree (two empty reads do: a case whose hosts pilot
// builds no cluster for is answered at once, not at the deadline).
func sameClusters(a, b []Cluster) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func clusterID(m Mesh) string {
	if m.Cluster == "" {
		return "Kubernetes"
	}
	return m.Cluster
}

// meshNetworks declares this cluster's network (so local endpoints carry its network label)
// and, when asked, the remote networks' gateways.
func meshNetworks(m Mesh) *meshconfig.MeshNetworks {
	if m.Network == "" {
		return nil
	}
	nets := &meshconfig.MeshNetworks{Networks: map[string]*meshconfig.Network{
		m.Network: {Endpoints: []*meshconfig.Network_NetworkEndpoints{{
			Ne: &meshconfig.Network_NetworkEndpoints_FromRegistry{FromRegistry: clusterID(m)},
		}}},
	}}
	if m.Native {
		// Each remote's registry is on its network; its gateway comes from its labelled Service.
		for _, r := range m.Remotes {
			n, ok := nets.Networks[r.Network]
			if !ok {
				n = &meshconfig.Network{}
				nets.Networks[r.Network] = n
			}
			n.Endpoints = append(n.Endpoints, &meshconfig.Network_NetworkEndpoints{
				Ne: &meshconfig.Network_NetworkEndpoints_FromRegistry{FromRegistry: r.Name},
			})
		}
	}
	if m.RemoteGatewaysInMeshNetworks {
		for _, r := range m.Remotes {
			n, ok := nets.Networks[r.Network]
			if !ok {
				n = &meshconfig.Network{Endpoints: []*meshconfig.Network_NetworkEndpoints{{
					Ne: &meshconfig.Network_NetworkEndpoints_FromRegistry{FromRegistry: r.Name},
				}}}
				nets.Networks[r.Network] = n
			}
			n.Gateways = append(n.Gateways, &meshconfig.Network_IstioNetworkGateway{
				Gw:   &meshconfig.Network_IstioNetworkGateway_Address{Address: r.Address},
				Port: r.Port,
			})
		}
	}
	return nets
}

// sidecar is a client proxy as istiod sees it after initializeProxy: its locality, and its
// labels augmented with the topology labels (pilot/pkg/xds/ads.go, labelutil.AugmentLabels).
func sidecar(m Mesh, c Client, i int) *model.Proxy {
	ns := c.Namespace
	if ns == "" {
		ns = "default"
	}
	region, zone, subzone := labelutil.SplitLocalityLabel(c.Locality)
	// A client in one of this cluster's localities runs on that locality's synthesized node
	// (internalTrafficPolicy: Local keeps only endpoints on the client's node).
	node := ""
	for li, l := range m.Localities {
		if l == c.Locality {
			node = fmt.Sprintf("failover-guard-node-%d", li)
		}
	}
	labels := labelutil.AugmentLabels(map[string]string{"app": "failover-guard-client"}, clusterIDOf(m), c.Locality, node, networkOf(m))
	return &model.Proxy{
		ID:              fmt.Sprintf("client-%d.%s", i, ns),
		ConfigNamespace: ns,
		IPAddresses:     []string{fmt.Sprintf("10.255.%d.%d", i/250, i%250+1)},
		Locality:        &core.Locality{Region: region, Zone: zone, SubZone: subzone},
		Labels:          labels,
		Metadata: &model.NodeMetadata{
			NodeName:  node,
			Namespace: ns,
			Network:   networkOf(m),
			ClusterID: clusterIDOf(m),
			Labels:    labels,
		},
	}
}

func inputHosts(configs []config.Config, kube []runtime.Object) []string {
	var hosts []string
	for _, o := range kube {
		if svc, ok := o.(*corev1.Service); ok {
			hosts = append(hosts, svc.Name+"."+svc.Namespace+".svc.cluster.local")
		}
	}
	for _, c := range configs {
		if c.GroupVersionKind.Kind != "ServiceEntry" {
			continue
		}
		raw, _ := json.Marshal(c.Spec)
		var spec struct {
			Hosts []string `json:"hosts"`
		}
		_ = json.Unmarshal(raw, &spec)
		for _, h := range spec.Hosts {
			if !strings.Contains(h, "*") {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// expected is a synthesized pod's address and the Service it backs.
type expected struct {
	host, namespace, ip string
}

// synthesizeWorkloads gives every Service without workloads in the input one ready pod per
// local locality and per subset label set of the DestinationRules for its host (so that
// subset clusters have local endpoints too), on nodes labelled with that locality, with the
// EndpointSlice the endpoint controller would write. It returns the pod IPs to wait for.
func synthesizeWorkloads(localities []string, nodePrefix string, nextIP *int, configs []config.Config, kube []runtime.Object) ([]runtime.Object, []string, []expected) {
	covered := map[string]bool{}
	for _, o := range kube {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			covered[es.Namespace+"/"+es.Labels[discoveryv1.LabelServiceName]] = true
		}
	}
	var names []string
	var ips []expected
	nodes := map[string]bool{}
	next := *nextIP
	defer func() { *nextIP = next }()
	var extra []runtime.Object
	for _, o := range kube {
		svc, ok := o.(*corev1.Service)
		if !ok || covered[svc.Namespace+"/"+svc.Name] || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		sets := subsetLabelSets(configs, svc.Name+"."+svc.Namespace+".svc.cluster.local")
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: svc.Name + "-fg", Namespace: svc.Namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for _, p := range svc.Spec.Ports {
			port := p.Port
			if p.TargetPort.IntValue() > 0 {
				port = int32(p.TargetPort.IntValue())
			}
			slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: ptr(p.Name), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)})
		}
		for li, l := range localities {
			node := fmt.Sprintf("%s%d", nodePrefix, li)
			if !nodes[node] {
				nodes[node] = true
				region, zone, subzone := labelutil.SplitLocalityLabel(l)
				extra = append(extra, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{
					labelutil.LabelTopologyRegion: region, labelutil.LabelTopologyZone: zone, labelutil.LabelTopologySubzone: subzone,
				}}})
			}
			for si, set := range sets {
				next++
				ip := fmt.Sprintf("10.%d.%d.%d", 100+next/62500, next/250%250, next%250+1)
				labels := map[string]string{"security.istio.io/tlsMode": "istio"}
				for k, v := range svc.Spec.Selector {
					labels[k] = v
				}
				for k, v := range set {
					labels[k] = v
				}
				name := fmt.Sprintf("%s-%d-%d", svc.Name, li, si)
				extra = append(extra, &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: labels},
					Spec:       corev1.PodSpec{NodeName: node},
					Status: corev1.PodStatus{
						Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
						Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
					},
				})
				slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{ip},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
					NodeName:   ptr(node),
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: name, Namespace: svc.Namespace},
				})
				names = append(names, svc.Namespace+"/"+name+"@"+l)
				ips = append(ips, expected{host: svc.Name + "." + svc.Namespace + ".svc.cluster.local", namespace: svc.Namespace, ip: ip})
			}
		}
		if len(slice.Endpoints) > 0 {
			extra = append(extra, slice)
		}
	}
	return append(kube, extra...), names, ips
}

// remoteCluster is what a native model's istiod reads from remote r through its remote secret:
// the local Namespaces and Services again (namespace sameness) with their workloads synthesized in r's
// locality, numbered after the ones before, and on another network r's east-west gateway
// Service, labelled topology.istio.io/network and exposed at r.Address on r.Port (mTLS).
func remoteCluster(m Mesh, r Remote, next *int, configs []config.Config, local []runtime.Object) ([]runtime.Object, []string, []expected) {
	var services []runtime.Object
	if len(r.Objects) > 0 {
		// A remote configured its own way: its objects as given.
		_, own, err := decode(r.Objects)
		if err != nil {
			panic(fatal("remote " + r.Name + ": " + err.Error()))
		}
		// Its Pods, Nodes and EndpointSlices too: its real workloads.
		services, local = own, nil
	}
	for _, o := range local {
		if svc, ok := o.(*corev1.Service); ok && svc.Spec.Type != corev1.ServiceTypeExternalName {
			services = append(services, svc.DeepCopy())
		}
		// The same namespaces too (their labels and annotations, traffic distribution
		// included): whichever cluster's Service pilot keeps for a host, it means the same.
		if ns, ok := o.(*corev1.Namespace); ok {
			services = append(services, ns.DeepCopy())
		}
		// And the same waypoints (Gateways), which ambient multicluster requires uniform.
		if gw, ok := o.(*gatewayv1.Gateway); ok {
			services = append(services, gw.DeepCopy())
		}
	}
	objs, names, ips := synthesizeWorkloads([]string{r.Locality}, "failover-guard-"+r.Name+"-node-", next, configs, services)
	for i := range names {
		names[i] = r.Name + ":" + names[i]
	}
	if r.Network != m.Network && r.Address != "" {
		port := int32(r.Port)
		if port == 0 {
			port = 15443
		}
		labels := map[string]string{"istio": "eastwestgateway", "topology.istio.io/network": r.Network}
		if port != 15008 {
			// Its mTLS port, as istio.io's gateway charts label it when it is not 15443
			// (kube/controller/network.go getGatewayDetails); at 15008 only, it is ambient's
			// HBONE-only gateway.
			labels["networking.istio.io/gatewayPort"] = fmt.Sprint(port)
		}
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name: "istio-eastwestgateway", Namespace: "istio-system",
				Labels: labels,
			},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"istio": "eastwestgateway"},
				Ports:    []corev1.ServicePort{{Name: "tls", Port: port, Protocol: corev1.ProtocolTCP}},
			},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: r.Address}}}},
		})
	}
	return objs, names, ips
}

// subsetLabelSets are the distinct label sets of the subsets of every DestinationRule whose
// host resolves (in its namespace, like model.ResolveShortnameToFQDN) to host; {} when none.
func subsetLabelSets(configs []config.Config, host string) []map[string]string {
	var sets []map[string]string
	seen := map[string]bool{}
	for _, c := range configs {
		if c.GroupVersionKind.Kind != "DestinationRule" {
			continue
		}
		raw, _ := json.Marshal(c.Spec)
		var spec struct {
			Host    string `json:"host"`
			Subsets []struct {
				Labels map[string]string `json:"labels"`
			} `json:"subsets"`
		}
		_ = json.Unmarshal(raw, &spec)
		if string(model.ResolveShortnameToFQDN(spec.Host, c.Meta)) != host {
			continue
		}
		for _, s := range spec.Subsets {
			key, _ := json.Marshal(s.Labels)
			if len(s.Labels) > 0 && !seen[string(key)] {
				seen[string(key)] = true
				sets = append(sets, s.Labels)
			}
		}
	}
	if len(sets) == 0 {
		sets = []map[string]string{{}}
	}
	return sets
}

func clusterIDOf(m Mesh) istiocluster.ID { return istiocluster.ID(clusterID(m)) }

func networkOf(m Mesh) network.ID { return network.ID(m.Network) }

func ptr[T any](v T) *T { return &v }

// fatal is what failer.Fatal panics with; run turns it into the case's error.
type fatal string

// failer stands in for *testing.T: pilot's harness reports through test.Failer, and a plain
// program starts much faster than `go test` and can answer many cases per process.
type failer struct{ cleanups []func() }

func (f *failer) Fail()                          { panic(fatal("failed")) }
func (f *failer) FailNow()                       { panic(fatal("failed")) }
func (f *failer) Fatal(args ...any)              { panic(fatal(fmt.Sprint(args...))) }
func (f *failer) Fatalf(format string, a ...any) { panic(fatal(fmt.Sprintf(format, a...))) }
func (f *failer) Log(args ...any)                {}
func (f *failer) Logf(format string, a ...any)   {}
func (f *failer) Helper()                        {}
func (f *failer) Skip(args ...any)               { panic(fatal("skipped: " + fmt.Sprint(args...))) }
func (f *failer) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *failer) TempDir() string {
	dir, err := os.MkdirTemp("", "istio-harness")
	if err != nil {
		panic(fatal(err.Error()))
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// cleanup runs the registered cleanups in reverse order, like testing.T does.
func (f *failer) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() { _ = recover() }()
			f.cleanups[i]()
		}()
	}
	f.cleanups = nil
}
