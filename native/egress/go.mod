module sandboxing.dev/sandbox-egress

go 1.26

require (
	github.com/fsnotify/fsnotify v1.9.0
	go.yaml.in/yaml/v3 v3.0.4
	golang.org/x/net v0.51.0
)

require golang.org/x/sys v0.41.0 // indirect
