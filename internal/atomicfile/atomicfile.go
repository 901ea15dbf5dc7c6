// Package atomicfile replaces a file so that a crash at any moment leaves
// either the old content or the new, never a mix or an empty file: the new
// content goes to a temporary file in the same directory, which is synced,
// renamed over the old one, and the directory synced so the rename itself
// is on disk.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with what write produces. write gets a buffered
// writer; an error from it leaves path untouched. The file gets perm.
func Write(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := Replace(path, perm, write)
	if err != nil {
		return err
	}
	return f.Close()
}

// Replace is Write that returns the new file, open for reading and writing
// at its end: for a file the caller goes on writing in place, which no
// moment between the rename and an open can take from it.
func Replace(path string, perm os.FileMode, write func(io.Writer) error) (_ *os.File, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err := write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	if err := SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// WriteFile replaces path with data (see Write).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes the entries of dir (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
