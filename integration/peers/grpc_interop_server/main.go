// Command grpc_interop_server runs grpc-go's interop TestService (google.golang.org/grpc/interop)
// on one loopback address, for the interop tests that drive grpc-go's interop client through
// legate. It exists because grpc-go's own interop/server binds every interface (":port"); the
// integration tests may only listen on 127.0.0.1 or ::1. Plaintext only; no ORCA, no ALTS.
package main

import (
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:10000", "loopback host:port to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	server := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(server, interop.NewTestServer(interop.NewTestServerOptions{}))
	if err := server.Serve(lis); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
