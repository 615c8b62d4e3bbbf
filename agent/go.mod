module sandboxing.dev/sandbox-agent

go 1.26

require github.com/creack/pty v1.1.24
