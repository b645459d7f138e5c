package main

import (
	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
)

// newBackend turns --backend and --threads into a backend. note says why
// auto chose what it chose ("" when the user named the backend).
func newBackend(name string, threads int) (be engine.Backend, note string, err error) {
	switch name {
	case "cpu":
		return cpu.New(threads), "", nil
	case "auto":
		return cpu.New(threads), "auto: the GPU backend arrives with the WebGPU issue", nil
	case "gpu":
		return nil, "", flagError("backend", "the GPU backend arrives with the WebGPU issue; use --backend cpu")
	}
	return nil, "", flagError("backend", "%q is not a backend; allowed: auto, cpu, gpu", name)
}
