package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/snomprov/snomprov/app"
	"github.com/snomprov/snomprov/config"
)

func init() {
	register("serve", "run the appliance: HTTP, PnP and (if enabled) DHCP", cmdServe)
}

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[-config FILE]", stderr)
	path := configFlag(fs, false)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var cfg *config.Config
	var err error
	app.WithLoadGC(func() { cfg, err = loadConfig(*path) })
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Server.LogLevel)
	var reload func() (*config.Config, error)
	if *path != "" {
		p := *path
		reload = func() (*config.Config, error) { return config.Load(p) }
	}
	err = app.New(cfg, reload, log).Run(context.Background())
	var ce *app.ConfigError
	if errors.As(err, &ce) {
		return configError{ce.Err}
	}
	return err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
