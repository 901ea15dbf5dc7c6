package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer follows the server contract with scripted behaviour.
type fakeServer struct {
	bindErr  error
	serveErr error         // returned when serve ends by itself
	after    time.Duration // serve ends by itself after this (0: only with ctx)
	ignore   bool          // ignores ctx (a server that hangs on shutdown)
	served   atomic.Int32
	released atomic.Bool
}

func (f *fakeServer) Bind(context.Context) error { return f.bindErr }

func (f *fakeServer) Serve(ctx context.Context) error {
	f.served.Add(1)
	if ctx.Err() != nil {
		f.released.Store(true)
		return nil
	}
	if f.ignore {
		select {}
	}
	if f.after > 0 {
		select {
		case <-time.After(f.after):
			return f.serveErr
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRunServers(t *testing.T) {
	errOther := errors.New("another DHCP server answered")
	tests := []struct {
		name      string
		servers   map[string]*fakeServer
		optional  string
		cancelIn  time.Duration
		wantErr   string
		wantReady bool
	}{
		{
			name:      "clean stop when asked",
			servers:   map[string]*fakeServer{"http": {}, "pnp": {}},
			cancelIn:  50 * time.Millisecond,
			wantReady: true,
		},
		{
			name:      "an error stops everything, with its cause",
			servers:   map[string]*fakeServer{"http": {after: 20 * time.Millisecond, serveErr: errors.New("socket died")}, "pnp": {}},
			wantErr:   "http: socket died",
			wantReady: true,
		},
		{
			name:      "an optional server's error only disables it",
			servers:   map[string]*fakeServer{"http": {}, "dhcp": {after: 10 * time.Millisecond, serveErr: errOther}},
			optional:  "dhcp",
			cancelIn:  100 * time.Millisecond,
			wantReady: true,
		},
		{
			name:    "a bind failure releases what was bound and never reports ready",
			servers: map[string]*fakeServer{"http": {}, "pnp": {bindErr: errors.New("port 5060 in use")}},
			wantErr: "pnp: port 5060 in use",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var comps []namedComponent
			for _, name := range []string{"http", "pnp", "dhcp"} {
				f, ok := tt.servers[name]
				if !ok {
					continue
				}
				c := namedComponent{name: name, comp: f}
				if name == tt.optional {
					c.optional = func(err error) bool { return errors.Is(err, errOther) }
				}
				comps = append(comps, c)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelIn > 0 {
				time.AfterFunc(tt.cancelIn, cancel)
			}
			ready := false
			err := runServers(ctx, comps, quiet, func() { ready = true })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if ready != tt.wantReady {
				t.Errorf("ready = %v, want %v", ready, tt.wantReady)
			}
			if tt.servers["pnp"] != nil && tt.servers["pnp"].bindErr != nil && !tt.servers["http"].released.Load() {
				t.Error("http was bound but not released after pnp failed to bind")
			}
		})
	}
}

func TestShutdownIsBounded(t *testing.T) {
	old := ShutdownTimeout
	ShutdownTimeout = 100 * time.Millisecond
	defer func() { ShutdownTimeout = old }()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	err := runServers(ctx, []namedComponent{{name: "stuck", comp: &fakeServer{ignore: true}}}, quiet, func() {})
	if err == nil || !strings.Contains(err.Error(), "did not stop within") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}
