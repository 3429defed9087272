//go:build js && wasm

package idbstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sync"
	"syscall/js"

	"github.com/parleychat/parley"
)

// source is the IndexedDB side of the store; see the package doc.
//
//go:embed idbstore.js
var source string

// script returns the object that idbstore.js returns, evaluating the
// script on the first call.
var script = sync.OnceValues(func() (v js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			jerr, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			err = parley.Errorf(parley.KindUnsupported, "local store: load idbstore.js (does the page's Content-Security-Policy forbid eval?): %w", jerr)
		}
	}()
	return js.Global().Get("Function").New(source).Invoke(), nil
})

// call calls the method of obj named method, which returns a Promise,
// with args and an AbortSignal as the last argument, and waits for the
// Promise to settle. If ctx is done first, call aborts the signal and still
// waits, so that the outcome is known: it returns ctx's error only if the
// operation was in fact cancelled.
func call(ctx context.Context, obj js.Value, method string, args ...any) (js.Value, error) {
	if err := ctx.Err(); err != nil {
		return js.Undefined(), err
	}
	ctl := js.Global().Get("AbortController").New()
	p := obj.Call(method, append(args, ctl.Get("signal"))...)

	type result struct {
		v   js.Value
		err error
	}
	done := make(chan result, 1)
	resolve := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- result{v: arg(args)}
		return nil
	})
	defer resolve.Release()
	reject := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- result{err: jsError(arg(args))}
		return nil
	})
	defer reject.Release()
	p.Call("then", resolve, reject)

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		ctl.Call("abort")
		r = <-done
	}
	var de *domError
	if r.err != nil && ctx.Err() != nil && errors.As(r.err, &de) && de.Name == "AbortError" {
		return js.Undefined(), ctx.Err()
	}
	return r.v, r.err
}

func arg(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// domError is an error from the JavaScript side, usually a DOMException
// from IndexedDB.
type domError struct {
	Name    string // e.g. "QuotaExceededError", "InvalidStateError"
	Message string
}

func (e *domError) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// jsError converts the reason of a rejected Promise.
func jsError(v js.Value) error {
	if v.Type() != js.TypeObject {
		return &domError{Name: "Error", Message: v.String()}
	}
	e := &domError{Name: "Error"}
	if n := v.Get("name"); n.Type() == js.TypeString {
		e.Name = n.String()
	}
	if m := v.Get("message"); m.Type() == js.TypeString {
		e.Message = m.String()
	}
	return e
}

// storeError turns an error of the operation op into a parley error with
// a Kind; a context's error stays itself, wrapped.
func storeError(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("local store: %s: %w", op, err)
	}
	var pe *parley.Error
	if errors.As(err, &pe) {
		return err
	}
	var de *domError
	if !errors.As(err, &de) {
		return parley.Errorf(parley.KindInternal, "local store: %s: %w", op, err)
	}
	switch de.Name {
	case "QuotaExceededError":
		return parley.Errorf(parley.KindInternal, "local store: %s: the browser's storage for this site is full: free some space, or allow the site to store more: %w", op, err)
	case "InvalidStateError":
		return parley.Errorf(parley.KindUnavailable, "local store: %s: the database connection is closed (another tab may have upgraded it: reload the page): %w", op, err)
	case "VersionError":
		return parley.Errorf(parley.KindUnsupported, "local store: %s: the database is newer than this program (schema version %d): reload the page to get the new version: %w", op, SchemaVersion, err)
	case "NotSupportedError":
		return parley.Errorf(parley.KindUnsupported, "local store: %s: %w", op, err)
	}
	return parley.Errorf(parley.KindInternal, "local store: %s: %w", op, err)
}
