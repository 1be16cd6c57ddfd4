package main

// The third question: does a real xDS client follow what pilot sends? Pilot serves proxyless
// gRPC clients (GENERATOR=grpc) the EDS an Envoy sidecar gets (pilot/pkg/xds/xdsgen.go
// findGenerator: grpcgen for LDS/RDS/CDS, the same edsGen for EDS), and grpc-go's xDS client
// follows its priorities with real requests: its priority balancer moves to the next priority
// when the current one is in TRANSIENT_FAILURE (internal/xds/balancer/priority), without outlier
// detection. So: pilot's discovery server on a loopback port, a small gRPC backend per endpoint
// address pilot gives the client (the local pods, the remote east-west gateway), and a grpc-go
// xDS client in the case's client locality sending requests; each backend answers with its
// address, and the harness counts who answered. See ../shared/istio/DATAPLANE-NOTES.md.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	xdsgrpc "google.golang.org/grpc/xds" // the xds:/// resolver and the xDS balancers
	"istio.io/istio/pilot/pkg/model"
	labelutil "istio.io/istio/pilot/pkg/serviceregistry/util/label"
	"istio.io/istio/pkg/istio-agent/grpcxds"
	echoproto "istio.io/istio/pkg/test/echo/proto"
	"k8s.io/apimachinery/pkg/runtime"
)

// Dataplane asks a real xDS client to send requests to one service port, phase after phase.
type Dataplane struct {
	// The client: its locality and namespace, as for the Envoy tables.
	Client Client  `json:"client"`
	Host   string  `json:"host"`
	Port   int     `json:"port"`
	Phases []Phase `json:"phases"`
}

// Phase is a state of the backends and the requests sent in it.
type Phase struct {
	Name string `json:"name"`
	// The endpoint addresses ("ip:port", as pilot gives them) whose backends are stopped.
	Down     []string `json:"down"`
	Requests int      `json:"requests"`
}

// DataplaneResult is what the client saw.
type DataplaneResult struct {
	// Every endpoint address pilot gave the client for the host and port, with a backend each.
	Endpoints []string      `json:"endpoints"`
	Phases    []PhaseResult `json:"phases"`
}

// PhaseResult counts the answers of one phase, by the answering backend's address.
type PhaseResult struct {
	Name     string         `json:"name"`
	Answered map[string]int `json:"answered"`
	Failed   int            `json:"failed"`
	// Requests sent while the client settled after the phase's change (stopping or starting
	// backends): how many failed, and how long it took until two batches in a row were answered
	// by the same backends (at least 1.2 s).
	SettleFailed int   `json:"settleFailed"`
	SettleMillis int64 `json:"settleMillis"`
}

// backend is one endpoint address, served by a gRPC echo server on a loopback port while up.
type backend struct {
	address string
	server  *grpc.Server
	target  string // the loopback listener while up, "" while down
}

type echoServer struct {
	echoproto.UnimplementedEchoTestServiceServer
	id string
}

func (e *echoServer) Echo(context.Context, *echoproto.EchoRequest) (*echoproto.EchoResponse, error) {
	return &echoproto.EchoResponse{Message: e.id}, nil
}

// backends maps the addresses pilot gives to loopback listeners: the client dials the real
// endpoint address, and the dialer connects it to that address's backend (connection refused
// while it is down), so no address has to exist on this machine.
type backends struct {
	mu  sync.Mutex
	all map[string]*backend
}

func (b *backends) start(address string) error {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	echoproto.RegisterEchoTestServiceServer(server, &echoServer{id: address})
	go func() { _ = server.Serve(lis) }()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all[address] = &backend{address: address, server: server, target: lis.Addr().String()}
	return nil
}

func (b *backends) stop(address string) {
	b.mu.Lock()
	be := b.all[address]
	if be != nil {
		be.target = ""
	}
	b.mu.Unlock()
	if be != nil && be.server != nil {
		be.server.Stop()
		be.server = nil
	}
}

func (b *backends) up(address string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	be := b.all[address]
	return be != nil && be.target != ""
}

func (b *backends) dial(ctx context.Context, address string) (net.Conn, error) {
	b.mu.Lock()
	be := b.all[address]
	target := ""
	if be != nil {
		target = be.target
	}
	b.mu.Unlock()
	if target == "" {
		return nil, fmt.Errorf("dial %s: connection refused", address)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}

func (b *backends) stopAll() {
	b.mu.Lock()
	var all []*backend
	for _, be := range b.all {
		all = append(all, be)
	}
	b.mu.Unlock()
	for _, be := range all {
		b.stop(be.address)
	}
}

// dataplane runs pilot with the case's objects on a loopback port, starts a backend per
// endpoint pilot gives the client, and has a grpc-go xDS client send the phases' requests.
func dataplane(t *failer, c Case, istio []object, kube []runtime.Object) *DataplaneResult {
	d := c.Dataplane
	s, _, expected, remotePods := buildPilot(t, c, istio, kube, true)
	want := map[string]bool{d.Host: true}
	client := d.Client
	if client.Namespace == "" {
		client.Namespace = "default"
	}
	proxy := s.SetupProxy(sidecar(c.Mesh, client, 0))
	name := fmt.Sprintf("outbound|%d||%s", d.Port, d.Host)
	var addresses []string
	for _, cl := range stableClusters(s, proxy, client, c.Mesh, want, expected, remotePods) {
		if cl.Name != name {
			continue
		}
		for _, p := range cl.Priorities {
			for _, e := range p.Endpoints {
				addresses = append(addresses, fmt.Sprintf("%s:%d", e.Address, e.Port))
			}
		}
	}
	if len(addresses) == 0 {
		t.Fatalf("pilot gives the client no endpoint of %s", name)
	}
	sort.Strings(addresses)
	pool := &backends{all: map[string]*backend{}}
	defer pool.stopAll()
	for _, a := range addresses {
		if err := pool.start(a); err != nil {
			t.Fatalf("backend %s: %v", a, err)
		}
	}

	_, xdsPort, _ := net.SplitHostPort(s.Listener.Addr().String())
	resolver, err := xdsgrpc.NewXDSResolverWithConfigForTesting(grpcBootstrap(c.Mesh, client, xdsPort, certDir(t)))
	if err != nil {
		t.Fatalf("xDS resolver: %v", err)
	}
	conn, err := grpc.NewClient(
		fmt.Sprintf("xds:///%s:%d", d.Host, d.Port),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver),
		grpc.WithContextDialer(pool.dial),
		// A backend that comes back is retried within half a second, not after grpc-go's
		// default backoff (1 s doubling to 120 s): failback is then measured, not waited for.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}),
	)
	if err != nil {
		t.Fatalf("gRPC client: %v", err)
	}
	defer conn.Close()
	echo := echoproto.NewEchoTestServiceClient(conn)
	call := func(timeout time.Duration) (string, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := echo.Echo(ctx, &echoproto.EchoRequest{Message: "failover-guard"})
		if err != nil {
			return "", false
		}
		return resp.GetMessage(), true
	}
	// The first request waits for LDS, RDS, CDS and EDS.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok := call(2 * time.Second); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for %s from the xDS client within 15 s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out := &DataplaneResult{Endpoints: addresses}
	for _, phase := range d.Phases {
		down := map[string]bool{}
		for _, a := range phase.Down {
			down[a] = true
		}
		for _, a := range addresses {
			switch {
			case down[a] && pool.up(a):
				pool.stop(a)
			case !down[a] && !pool.up(a):
				if err := pool.start(a); err != nil {
					t.Fatalf("backend %s: %v", a, err)
				}
			}
		}
		res := PhaseResult{Name: phase.Name, Answered: map[string]int{}}
		// Settle: batches of 20 until two in a row are answered by the same backends.
		started := time.Now()
		previous := ""
		for time.Since(started) < 10*time.Second {
			seen := map[string]bool{}
			for i := 0; i < 20; i++ {
				if who, ok := call(time.Second); ok {
					seen[who] = true
				} else {
					res.SettleFailed++
				}
				time.Sleep(2 * time.Millisecond)
			}
			var keys []string
			for k := range seen {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			now := strings.Join(keys, ",")
			// At least 1.2 s: long enough for a backend that came back to be redialled (the
			// backoff above is at most 0.5 s), so a failback is seen, not raced.
			// (An outage settles too: two batches that nobody answered.)
			if now == previous && time.Since(started) > 1200*time.Millisecond {
				break
			}
			previous = now
		}
		res.SettleMillis = time.Since(started).Milliseconds()
		for i := 0; i < phase.Requests; i++ {
			if who, ok := call(time.Second); ok {
				res.Answered[who]++
			} else {
				res.Failed++
			}
		}
		out.Phases = append(out.Phases, res)
	}
	return out
}

// certDir holds a workload certificate as istio-agent provides one (key.pem, cert-chain.pem,
// root-cert.pem). grpc-go rejects a cluster whose TLS names a certificate provider its bootstrap
// lacks, and grpcgen's CDS names one for an explicit ISTIO_MUTUAL (grpcgen/cds.go
// applyTrafficPolicy); the client dials with insecure credentials, so the handshake itself is
// not part of what is shown (mTLS is Envoy's, see DATAPLANE-NOTES.md).
func certDir(t *failer) string {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "failover-guard-harness"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"key.pem":        pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"cert-chain.pem": cert,
		"root-cert.pem":  cert,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return dir
}

// grpcBootstrap is the bootstrap istio-agent writes for a proxyless gRPC client
// (pkg/istio-agent/grpcxds GenerateBootstrap), with the client's locality, namespace, cluster,
// network and labels as the Envoy client of the traffic question has them.
func grpcBootstrap(m Mesh, c Client, xdsPort, certs string) []byte {
	region, zone, subzone := labelutil.SplitLocalityLabel(c.Locality)
	envoy := sidecar(m, c, 0)
	bootstrap, err := grpcxds.GenerateBootstrap(grpcxds.GenerateBootstrapOptions{
		Node: &model.Node{
			ID:       "sidecar~127.0.0.1~grpc-client." + c.Namespace + "~" + c.Namespace + ".svc.cluster.local",
			Locality: &core.Locality{Region: region, Zone: zone, SubZone: subzone},
			Metadata: &model.BootstrapNodeMetadata{
				NodeMetadata: model.NodeMetadata{
					Namespace: c.Namespace,
					Generator: "grpc",
					ClusterID: clusterIDOf(m),
					Network:   networkOf(m),
					NodeName:  envoy.Metadata.NodeName,
					Labels:    envoy.Labels,
				},
			},
		},
		DiscoveryAddress: "127.0.0.1:" + xdsPort,
		CertDir:          certs,
	})
	if err != nil {
		panic(fatal("gRPC bootstrap: " + err.Error()))
	}
	raw, err := json.Marshal(bootstrap)
	if err != nil {
		panic(fatal("gRPC bootstrap: " + err.Error()))
	}
	return raw
}
