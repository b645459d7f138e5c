// Package safefile is the one home of how remask reads and writes files a
// user named: inputs must be regular files (a FIFO, /dev/zero or /dev/tty is
// refused at once instead of hanging or reading forever) and are read with a
// bound; outputs never replace an existing file without force, never write
// over an input, and appear atomically (a temporary file in the same folder,
// renamed into place), so a crash or an error leaves the old file intact.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular is wrapped by the errors of OpenRegular for paths that are
// not regular files.
var ErrNotRegular = errors.New("not a regular file")

// ErrExists is wrapped by the errors of Create for outputs that exist and
// were not to be replaced.
var ErrExists = errors.New("file exists")

// ErrTooLarge is wrapped by the errors of ReadFile for files over the bound.
var ErrTooLarge = errors.New("file too large")

// OpenRegular opens path for reading and returns it with its FileInfo. A path
// that is not a regular file (after following symlinks) is refused with an
// error wrapping ErrNotRegular that names the kind of file; the open itself
// never blocks (a FIFO without a writer would block a plain open).
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	// Stat first so that the common mistakes get a clear message without
	// touching the file; openNonblock then closes the race.
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, notRegular(path, st.Mode())
	}
	f, err := openNonblock(path)
	if err != nil {
		return nil, nil, err
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, notRegular(path, st.Mode())
	}
	return f, st, nil
}

func notRegular(path string, m fs.FileMode) error {
	kind := "a special file"
	switch {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Errorf("%s is %s, %w: give the path of a file", path, kind, ErrNotRegular)
}

// ReadFile reads a regular file of at most max bytes (max <= 0: no bound
// beyond the file's own size). A file over the bound is refused before
// anything is read; a file that grows while it is read is cut at the bound
// and refused.
func ReadFile(path string, max int64) ([]byte, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := st.Size()
	if max > 0 && size > max {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d bytes: %w", path, size, max, ErrTooLarge)
	}
	limit := size
	if max > 0 {
		limit = max
	}
	data := make([]byte, 0, size)
	buf := make([]byte, 1<<16)
	r := io.LimitReader(f, limit+1)
	for {
		n, err := r.Read(buf)
		data = append(data, buf[:n]...)
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("%s grew past %d bytes while it was read: %w", path, limit, ErrTooLarge)
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// CreateOptions say how Create may treat an existing output.
type CreateOptions struct {
	// Force allows replacing an existing regular file (through a symlink,
	// the link's target is replaced and the link kept).
	Force bool
	// Inputs are the paths the command reads; an output that is one of them
	// (the same file, by any name) is refused even with Force.
	Inputs []string
	// Flag names the output's flag in error messages ("--save", "-o").
	Flag string
	// Mode is the new file's permission (0 = 0644, or the replaced file's).
	Mode fs.FileMode
}

// WriteFile writes the output path atomically with write: the bytes go to a
// temporary file next to path, which is synced and renamed over path only
// when write succeeds. See CreateOptions for what is refused.
func WriteFile(path string, opt CreateOptions, write func(io.Writer) error) error {
	target, mode, err := checkOutput(path, opt)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	done = true
	return nil
}

// CheckOutput makes WriteFile's checks (not an input, not an existing file
// without Force, a regular file when replaced) without writing anything, so
// that a command can refuse its output path before a long computation.
func CheckOutput(path string, opt CreateOptions) error {
	_, _, err := checkOutput(path, opt)
	return err
}

// checkOutput returns the file to write (path, or a symlink's target) and
// its mode, or the reason the output is refused.
func checkOutput(path string, opt CreateOptions) (string, fs.FileMode, error) {
	flag := opt.Flag
	if flag == "" {
		flag = "the output"
	}
	mode := opt.Mode
	if mode == 0 {
		mode = 0o644
	}
	if path == "" {
		return "", 0, fmt.Errorf("%s: empty path", flag)
	}
	for _, in := range opt.Inputs {
		if in == "" {
			continue
		}
		if same(path, in) {
			return "", 0, fmt.Errorf("%s %s is also an input of this command: writing it would destroy the input; choose another output path", flag, path)
		}
	}
	lst, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, mode, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if !opt.Force {
		return "", 0, fmt.Errorf("%s %s already exists (%w): choose another path, or pass --force to replace it", flag, path, ErrExists)
	}
	target := path
	if lst.Mode()&fs.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", 0, fmt.Errorf("%s %s is a symlink to a missing file: remove the link or choose another path", flag, path)
			}
			return "", 0, fmt.Errorf("%s %s: %w", flag, path, err)
		}
	}
	st, err := os.Stat(target)
	if err != nil {
		return "", 0, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if !st.Mode().IsRegular() {
		return "", 0, notRegular(path, st.Mode())
	}
	if opt.Mode == 0 {
		mode = st.Mode().Perm()
	}
	return target, mode, nil
}

// same reports whether a and b name the same existing file.
func same(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb)
}
