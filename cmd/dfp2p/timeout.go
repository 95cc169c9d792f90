package main

import (
	"context"
	"fmt"
	"time"
)

// withTimeout bounds ctx by a --timeout of t (t <= 0: no bound). When the
// bound ends the command, context.Cause(ctx) says "timed out after T"
// followed by note.
func withTimeout(ctx context.Context, t time.Duration, note string) (context.Context, context.CancelFunc) {
	if t <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, t, fmt.Errorf("timed out after %s%s", t, note))
}

// withCause puts the reason ctx ended (such as the timeout) in front of
// err when that is why err happened; otherwise it returns err as is.
func withCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && cause != nil && ctx.Err() != nil {
		return fmt.Errorf("%v (%v)", cause, err)
	}
	return err
}
