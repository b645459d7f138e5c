package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/remask/remask/engine"
)

// ErrNoAdapter is returned (wrapped) by Open when no WebGPU adapter exists.
var ErrNoAdapter = errors.New("no WebGPU adapter")

// ErrDeviceLost is wrapped by every error after the device was lost.
var ErrDeviceLost = errors.New("WebGPU device lost")

// LimitError says that a device limit is too small for what was asked.
type LimitError struct {
	Limit      string // the WebGPU limit name, e.g. "maxStorageBufferBindingSize"
	Have, Want uint64
	What       string // what needs it, e.g. "activation fch (B·T·4C floats)"
	Adapter    string
	Fix        string // what to do instead, e.g. "use a smaller batch ..." ("" none known)
}

func (e *LimitError) Error() string {
	msg := fmt.Sprintf("gpu: the device (adapter %q) allows %s = %d, but %s needs %d", e.Adapter, e.Limit, e.Have, e.What, e.Want)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// ctxErr is engine.CheckCtx for the GPU backend (the device loop's checks).
func ctxErr(ctx context.Context, op string) error { return engine.CheckCtx(ctx, "gpu", op) }
