// xds_server: a management server for legate's xDS tests, on go-control-plane (the reference
// implementation of Envoy's xDS server side): its snapshot cache behind server.NewServer, serving
// ADS and the per-type LDS/RDS/CDS/EDS services, SotW and delta, on a loopback gRPC port.
//
// A test drives it over a small HTTP API on another loopback port:
//
//	POST /snapshot        {"version": "v1", "node": "test-id", "clusters": [...], "endpoints": [...],
//	                       "listeners": [...], "routes": [...]}  (each resource in protojson, Any by
//	                       "@type"); sets the node's snapshot, which answers open watches at once
//	GET  /requests        every DiscoveryRequest / DeltaDiscoveryRequest received, in order, with
//	                       version_info, response_nonce, resource names, error_detail and node
//	GET  /responses       every response sent: type, version, nonce, resource names
//	GET  /streams         streams opened and closed so far
//	POST /reset           forgets the recorded requests and responses
//
// It prints "xds_server ready grpc=PORT http=PORT" on stdout once both ports listen (0 picks a
// free port). Keepalive is enforced as go-control-plane's examples do (pings at most every 30 s),
// so a client that pings faster gets GOAWAY. Not for: production; it trusts its caller.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

type nodeInfo struct {
	ID               string   `json:"id"`
	Cluster          string   `json:"cluster"`
	UserAgentName    string   `json:"user_agent_name"`
	UserAgentVersion string   `json:"user_agent_version"`
	ClientFeatures   []string `json:"client_features"`
	Locality         string   `json:"locality"`
}

type errorInfo struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

type request struct {
	Index                   int               `json:"index"`
	Stream                  int64             `json:"stream"`
	Delta                   bool              `json:"delta"`
	TypeURL                 string            `json:"type_url"`
	VersionInfo             string            `json:"version_info"`
	ResponseNonce           string            `json:"response_nonce"`
	ResourceNames           []string          `json:"resource_names"`
	Subscribe               []string          `json:"subscribe"`
	Unsubscribe             []string          `json:"unsubscribe"`
	InitialResourceVersions map[string]string `json:"initial_resource_versions"`
	ErrorDetail             *errorInfo        `json:"error_detail"`
	Node                    *nodeInfo         `json:"node"`
	TimeMs                  int64             `json:"time_ms"`
}

type response struct {
	Stream  int64    `json:"stream"`
	Delta   bool     `json:"delta"`
	TypeURL string   `json:"type_url"`
	Version string   `json:"version"`
	Nonce   string   `json:"nonce"`
	Names   []string `json:"names"`
	Removed []string `json:"removed"`
	TimeMs  int64    `json:"time_ms"`
}

type recorder struct {
	mu        sync.Mutex
	requests  []request
	responses []response
	opened    int
	closed    int
}

func nowMs() int64 { return time.Now().UnixMilli() }

func node(n *core.Node) *nodeInfo {
	if n == nil {
		return nil
	}
	info := &nodeInfo{ID: n.GetId(), Cluster: n.GetCluster(), UserAgentName: n.GetUserAgentName(),
		UserAgentVersion: n.GetUserAgentVersion(), ClientFeatures: n.GetClientFeatures()}
	if l := n.GetLocality(); l != nil {
		info.Locality = l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
	}
	return info
}

func errDetail(code int32, msg string, set bool) *errorInfo {
	if !set {
		return nil
	}
	return &errorInfo{Code: code, Message: msg}
}

func (r *recorder) callbacks() serverv3.CallbackFuncs {
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, typ string) error {
			r.mu.Lock()
			r.opened++
			r.mu.Unlock()
			return nil
		},
		StreamClosedFunc: func(id int64, n *core.Node) {
			r.mu.Lock()
			r.closed++
			r.mu.Unlock()
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, typ string) error {
			r.mu.Lock()
			r.opened++
			r.mu.Unlock()
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, n *core.Node) {
			r.mu.Lock()
			r.closed++
			r.mu.Unlock()
		},
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			ed := req.GetErrorDetail()
			r.requests = append(r.requests, request{Index: len(r.requests), Stream: id, TypeURL: req.GetTypeUrl(),
				VersionInfo: req.GetVersionInfo(), ResponseNonce: req.GetResponseNonce(),
				ResourceNames: req.GetResourceNames(), Node: node(req.GetNode()),
				ErrorDetail: errDetail(ed.GetCode(), ed.GetMessage(), ed != nil), TimeMs: nowMs()})
			return nil
		},
		StreamResponseFunc: func(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			r.mu.Lock()
			defer r.mu.Unlock()
			names := []string{}
			for _, a := range resp.GetResources() {
				names = append(names, nameOfAny(a.GetTypeUrl(), a.GetValue()))
			}
			r.responses = append(r.responses, response{Stream: id, TypeURL: resp.GetTypeUrl(),
				Version: resp.GetVersionInfo(), Nonce: resp.GetNonce(), Names: names, TimeMs: nowMs()})
		},
		StreamDeltaRequestFunc: func(id int64, req *discovery.DeltaDiscoveryRequest) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			ed := req.GetErrorDetail()
			r.requests = append(r.requests, request{Index: len(r.requests), Stream: id, Delta: true,
				TypeURL: req.GetTypeUrl(), ResponseNonce: req.GetResponseNonce(),
				Subscribe: req.GetResourceNamesSubscribe(), Unsubscribe: req.GetResourceNamesUnsubscribe(),
				InitialResourceVersions: req.GetInitialResourceVersions(), Node: node(req.GetNode()),
				ErrorDetail: errDetail(ed.GetCode(), ed.GetMessage(), ed != nil), TimeMs: nowMs()})
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
			r.mu.Lock()
			defer r.mu.Unlock()
			names := []string{}
			for _, res := range resp.GetResources() {
				names = append(names, res.GetName())
			}
			r.responses = append(r.responses, response{Stream: id, Delta: true, TypeURL: resp.GetTypeUrl(),
				Version: resp.GetSystemVersionInfo(), Nonce: resp.GetNonce(), Names: names,
				Removed: resp.GetRemovedResources(), TimeMs: nowMs()})
		},
	}
}

// nameOfAny decodes just enough of a resource to report its name.
func nameOfAny(typeURL string, value []byte) string {
	var m interface {
		proto.Message
		GetName() string
	}
	switch typeURL {
	case resourcev3.ClusterType:
		m = &cluster.Cluster{}
	case resourcev3.ListenerType:
		m = &listener.Listener{}
	case resourcev3.RouteType:
		m = &route.RouteConfiguration{}
	case resourcev3.EndpointType:
		cla := &endpoint.ClusterLoadAssignment{}
		if proto.Unmarshal(value, cla) == nil {
			return cla.GetClusterName()
		}
		return ""
	default:
		return ""
	}
	if proto.Unmarshal(value, m) != nil {
		return ""
	}
	return m.GetName()
}

type snapshotBody struct {
	Version   string            `json:"version"`
	Node      string            `json:"node"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
}

func decodeAll(raw []json.RawMessage, mk func() proto.Message) ([]types.Resource, error) {
	out := []types.Resource{}
	for i, r := range raw {
		m := mk()
		if err := protojson.Unmarshal(r, m); err != nil {
			return nil, fmt.Errorf("[%d]: %v", i, err)
		}
		out = append(out, m.(types.Resource))
	}
	return out, nil
}

func main() {
	grpcPort := flag.Int("grpc-port", 0, "gRPC port on 127.0.0.1 (0: any)")
	httpPort := flag.Int("http-port", 0, "control port on 127.0.0.1 (0: any)")
	ads := flag.Bool("ads", true, "snapshot cache in ADS mode (EDS/RDS answered only for complete name sets)")
	flag.Parse()

	rec := &recorder{}
	snapshots := cachev3.NewSnapshotCache(*ads, cachev3.IDHash{}, nil)
	ctx := context.Background()
	srv := serverv3.NewServer(ctx, snapshots, rec.callbacks())

	grpcServer := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.MaxConcurrentStreams(1000))
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(grpcServer, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(grpcServer, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(grpcServer, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(grpcServer, srv)

	gl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *grpcPort))
	if err != nil {
		log.Fatal(err)
	}
	hl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *httpPort))
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/snapshot", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var sb snapshotBody
		if err := json.Unmarshal(body, &sb); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res := map[resourcev3.Type][]types.Resource{}
		lists := []struct {
			typ string
			raw []json.RawMessage
			mk  func() proto.Message
		}{
			{resourcev3.ClusterType, sb.Clusters, func() proto.Message { return &cluster.Cluster{} }},
			{resourcev3.EndpointType, sb.Endpoints, func() proto.Message { return &endpoint.ClusterLoadAssignment{} }},
			{resourcev3.ListenerType, sb.Listeners, func() proto.Message { return &listener.Listener{} }},
			{resourcev3.RouteType, sb.Routes, func() proto.Message { return &route.RouteConfiguration{} }},
		}
		for _, l := range lists {
			rs, err := decodeAll(l.raw, l.mk)
			if err != nil {
				http.Error(w, l.typ+err.Error(), http.StatusBadRequest)
				return
			}
			res[l.typ] = rs
		}
		snap, err := cachev3.NewSnapshot(sb.Version, res)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		nodeID := sb.Node
		if nodeID == "" {
			nodeID = "test-id"
		}
		if err := snapshots.SetSnapshot(ctx, nodeID, snap); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/requests", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		json.NewEncoder(w).Encode(rec.requests)
	})
	mux.HandleFunc("/responses", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		json.NewEncoder(w).Encode(rec.responses)
	})
	mux.HandleFunc("/streams", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]int{"opened": rec.opened, "closed": rec.closed})
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.requests = nil
		rec.responses = nil
		w.Write([]byte("ok\n"))
	})

	fmt.Printf("xds_server ready grpc=%d http=%d\n", gl.Addr().(*net.TCPAddr).Port, hl.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	go func() {
		if err := http.Serve(hl, mux); err != nil {
			log.Fatal(err)
		}
	}()
	if err := grpcServer.Serve(gl); err != nil {
		log.Fatal(err)
	}
}
