package model

import "fmt"

// Tensor is a weight held in the compute precision (float32), row-major.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Numel is the number of elements the shape describes.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Model is a loaded remask/1 file.
type Model struct {
	// Path is where the model was read from (for messages); may be empty.
	Path   string
	Config Config
	Vocab  Vocab
	Source Source
	// Card is the optional Markdown model card.
	Card string
	// DType is the dtype the weights were stored in ("F32", "F16" or "BF16").
	DType string
	// Tensors holds every tensor of Expected(&Config) by name. For a language
	// model, "lm_head.weight" is present too and shares its data with
	// "transformer.wte.weight" (the tie is restored at load).
	Tensors map[string]*Tensor
}

// T returns the named tensor or panics: backends call it only for names that
// Expected guarantees after validation, so a miss is a programmer error.
func (m *Model) T(name string) *Tensor {
	t, ok := m.Tensors[name]
	if !ok {
		panic(fmt.Sprintf("model: tensor %q missing after validation", name))
	}
	return t
}

// Name is a short human name for messages: the path, else the kind.
func (m *Model) Name() string {
	if m.Path != "" {
		return m.Path
	}
	return string(m.Config.Kind)
}
