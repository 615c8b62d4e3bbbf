// Package contract is the egress contract (src/egress/contract.ts) as the Go
// binary sees it: the sidecar's UID, its ports, the policy file and where the
// policy's acknowledgement goes. The values live in contract.json, which
// src/egress/native-contract.test.ts compares with contract.ts, so the two
// languages cannot drift apart.
package contract

import (
	_ "embed"
	"encoding/json"
)

//go:embed contract.json
var raw []byte

type Ports struct {
	Proxy   int `json:"proxy"`
	DNS     int `json:"dns"`
	HTTP    int `json:"http"`
	TLS     int `json:"tls"`
	Health  int `json:"health"`
	Metrics int `json:"metrics"`
}

type Contract struct {
	SidecarUID int    `json:"sidecarUid"`
	Ports      Ports  `json:"ports"`
	PolicyFile string `json:"policyFile"`
	// PolicyAckFile: where a docker sidecar acknowledges each policy it applied (sidecar/ack.go).
	PolicyAckFile string `json:"policyAckFile"`
}

// Egress is the contract every default of the binary comes from.
var Egress = func() Contract {
	var c Contract
	if err := json.Unmarshal(raw, &c); err != nil {
		panic("contract.json: " + err.Error())
	}
	return c
}()
