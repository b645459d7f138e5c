module github.com/remask/remask

go 1.26

require (
	github.com/nlpodyssey/gopickle v0.2.0 // indirect
	github.com/nlpodyssey/safetensors v0.0.0-20250209183917-bfb01cc25f7c // indirect
)
