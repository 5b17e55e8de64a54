module github.com/lanmesh/lanmesh

go 1.25.0

require (
	github.com/flynn/noise v1.1.0
	github.com/google/uuid v1.6.0
	github.com/hashicorp/mdns v1.0.7
	github.com/miekg/dns v1.1.72
	github.com/vmihailenco/msgpack/v5 v5.4.1
	golang.org/x/crypto v0.46.0
	golang.org/x/sys v0.39.0
)

require (
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/mod v0.31.0 // indirect
	golang.org/x/net v0.48.0 // indirect
	golang.org/x/sync v0.19.0 // indirect
	golang.org/x/tools v0.40.0 // indirect
)
