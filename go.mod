module github.com/remask/remask

go 1.26

require (
	github.com/cogentcore/webgpu v0.23.0
	github.com/nlpodyssey/gopickle v0.2.0
	github.com/nlpodyssey/safetensors v0.0.0-20250209183917-bfb01cc25f7c
)

require github.com/syumai/workers v0.32.0
