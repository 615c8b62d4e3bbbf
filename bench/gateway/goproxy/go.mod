module sandbox-operator/bench/goproxy

go 1.26
