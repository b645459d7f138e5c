//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
)

// jsError is a rejected promise or a thrown JavaScript value.
type jsError struct {
	v   js.Value
	msg string
}

func (e *jsError) Error() string { return e.msg }

func newJSError(v js.Value) *jsError {
	msg := "rejected"
	switch {
	case v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString:
		msg = v.Get("message").String()
	case !v.IsUndefined() && !v.IsNull():
		msg = v.Call("toString").String()
	}
	return &jsError{v: v, msg: msg}
}

// await waits for a promise from a goroutine (never from inside a js.FuncOf
// callback: the event loop that settles the promise would be blocked). A
// rejection becomes a *jsError; ctx ends the wait early.
func await(ctx context.Context, p js.Value) (js.Value, error) {
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
		ch <- result{err: newJSError(arg0(args))}
		return nil
	})
	p.Call("then", then, catch)
	select {
	case r := <-ch:
		then.Release()
		catch.Release()
		return r.v, r.err
	case <-ctx.Done():
		// The callbacks stay alive: the promise may still settle into ch
		// (buffered), and a released callback would throw then.
		return js.Undefined(), ctx.Err()
	}
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// promise runs f in a goroutine and returns a JavaScript promise of its result.
func promise(f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		executor.Release()
		resolve, reject := args[0], args[1]
		go func() {
			v, err := f()
			if err != nil {
				var je *jsError
				if errors.As(err, &je) {
					reject.Invoke(je.v)
					return
				}
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// errorf makes a JavaScript Error for a message.
func errorf(format string, a ...any) js.Value {
	return js.Global().Get("Error").New(fmt.Sprintf(format, a...))
}
