package main

import (
	"flag"
	"os"

	"github.com/snomprov/snomprov/config"
)

// installedConfig is where the .deb puts the configuration.
const installedConfig = "/etc/snomprov/snomprov.toml"

// configFlag adds -config. For the read-only commands (check, render,
// phones, ...) an installed /etc/snomprov/snomprov.toml is the default, so an
// installer on a Pi can just type `snomprov phones`. serve never picks a
// file up implicitly: without -config it runs on the embedded defaults.
func configFlag(fs *flag.FlagSet, implicitInstalled bool) *string {
	def := ""
	if implicitInstalled {
		if _, err := os.Stat(installedConfig); err == nil {
			def = installedConfig
		}
	}
	return fs.String("config", def, "configuration `FILE` (TOML); empty: the embedded defaults")
}

// loadConfig loads path, or the embedded defaults when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}
