// ext_authz_server: an envoy.service.auth.v3.Authorization server on a loopback address, built on
// go-control-plane's types, for legate's ext_authz tests. It decides by the request's x-authz
// header:
//
//	allow  OK; upstream: x-authz-user set to "alice", x-authz-append appended, x-secret removed,
//	       one x-authz-ext-<k> per context extension, x-authz-body with the body it saw;
//	       client response: x-authz-resp: ok
//	deny   PERMISSION_DENIED with a 401, www-authenticate: Bearer and body "denied by policy"
//	slow   OK after 2 s (longer than the filter's timeout in the tests)
//	other  UNAUTHENTICATED with no denied_response (the filter's default 403)
//
// It also records the source address and protocol it saw in x-authz-peer and x-authz-proto.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	auth "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type server struct{}

func header(k, v string, appendIt bool) *core.HeaderValueOption {
	return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(appendIt)}
}

func (server) Check(ctx context.Context, req *auth.CheckRequest) (*auth.CheckResponse, error) {
	a := req.GetAttributes()
	h := a.GetRequest().GetHttp()
	switch h.GetHeaders()["x-authz"] {
	case "allow", "slow":
		if h.GetHeaders()["x-authz"] == "slow" {
			time.Sleep(2 * time.Second)
		}
		ok := &auth.OkHttpResponse{
			Headers: []*core.HeaderValueOption{
				header("x-authz-user", "alice", false),
				header("x-authz-append", "yes", true),
				header("x-authz-peer", a.GetSource().GetAddress().GetSocketAddress().GetAddress(), false),
				header("x-authz-proto", h.GetProtocol()+" "+h.GetMethod()+" "+h.GetPath()+" "+h.GetHost(), false),
			},
			HeadersToRemove:      []string{"x-secret"},
			ResponseHeadersToAdd: []*core.HeaderValueOption{header("x-authz-resp", "ok", false)},
		}
		for k, v := range a.GetContextExtensions() {
			ok.Headers = append(ok.Headers, header("x-authz-ext-"+k, v, false))
		}
		if h.GetBody() != "" {
			ok.Headers = append(ok.Headers, header("x-authz-body", h.GetBody(), false))
		}
		return &auth.CheckResponse{Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &auth.CheckResponse_OkResponse{OkResponse: ok}}, nil
	case "deny":
		return &auth.CheckResponse{
			Status: &status.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &auth.CheckResponse_DeniedResponse{DeniedResponse: &auth.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Headers: []*core.HeaderValueOption{header("www-authenticate", "Bearer", false)},
				Body:    "denied by policy",
			}},
		}, nil
	}
	return &auth.CheckResponse{Status: &status.Status{Code: int32(codes.Unauthenticated)}}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	auth.RegisterAuthorizationServer(s, server{})
	fmt.Println("listening on", l.Addr())
	log.Fatal(s.Serve(l))
}
