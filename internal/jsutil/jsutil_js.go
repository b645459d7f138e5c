//go:build js && wasm

package jsutil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall/js"
)

// Error is a rejected promise or a thrown JavaScript value.
type Error struct {
	Value js.Value // the rejected value, as it was
	Msg   string   // its message, or its toString(), or "rejected"
}

func (e *Error) Error() string { return e.Msg }

// NewError wraps a rejected or thrown value.
func NewError(v js.Value) *Error {
	msg := "rejected"
	switch {
	case v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString:
		msg = v.Get("message").String()
	case !v.IsUndefined() && !v.IsNull():
		msg = v.Call("toString").String()
	}
	return &Error{Value: v, Msg: msg}
}

// Await waits for a promise from a goroutine (never from inside a js.FuncOf
// callback: the event loop that settles the promise would be blocked). A
// rejection becomes an *Error; ctx ends the wait early.
func Await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	then := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg0(args)}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: NewError(arg0(args))}
		return nil
	})
	p.Call("then", then, catch)
	select {
	case r := <-ch:
		then.Release()
		catch.Release()
		return r.v, r.err
	case <-ctx.Done():
		// The callbacks stay alive: the promise may still settle (into the
		// buffered ch), and calling a released js.Func logs "call to
		// released function" (a Stop during loading or generation).
		return js.Undefined(), ctx.Err()
	}
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// Promise runs f in a goroutine and returns a JavaScript promise of its
// result. An *Error rejects with its original value, any other error with a
// JavaScript Error of its message.
func Promise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		executor.Release()
		resolve, reject := args[0], args[1]
		go func() {
			v, err := f()
			if err != nil {
				var je *Error
				if errors.As(err, &je) {
					reject.Invoke(je.Value)
					return
				}
				reject.Invoke(Errorf("%v", err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// Errorf makes a JavaScript Error for a message.
func Errorf(format string, a ...any) js.Value {
	return js.Global().Get("Error").New(fmt.Sprintf(format, a...))
}

// SignalContext returns a context that ends when the AbortSignal sig aborts
// (sig may be undefined or null: then only cancel ends it). The listener is
// added synchronously, in the caller's turn of the event loop. cancel ends
// the context and removes and releases the listener, as an abort does; the
// caller must call it once the request is over, so that requests that
// finish normally leave no listener (and no js.Func) behind.
func SignalContext(sig js.Value) (context.Context, context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(context.Background())
	if !sig.Truthy() {
		return ctx, cancelCtx
	}
	if sig.Get("aborted").Bool() {
		cancelCtx()
		return ctx, cancelCtx
	}
	var onAbort js.Func
	var once sync.Once
	detach := func() {
		once.Do(func() {
			sig.Call("removeEventListener", "abort", onAbort)
			onAbort.Release()
		})
	}
	onAbort = js.FuncOf(func(js.Value, []js.Value) any {
		cancelCtx()
		detach()
		return nil
	})
	sig.Call("addEventListener", "abort", onAbort, map[string]any{"once": true})
	return ctx, func() {
		cancelCtx()
		detach()
	}
}

// AddHeaders adds every entry of a fetch Headers object to h.
func AddHeaders(h http.Header, headers js.Value) {
	entries := js.Global().Get("Array").Call("from", headers.Call("entries"))
	for i := 0; i < entries.Length(); i++ {
		kv := entries.Index(i)
		h.Add(kv.Index(0).String(), kv.Index(1).String())
	}
}
