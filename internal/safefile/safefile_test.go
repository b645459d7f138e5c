package safefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileBound(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(p, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("ReadFile at the bound = %q, %v", b, err)
	}
	if _, err := ReadFile(p, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over the bound = %v; want ErrTooLarge", err)
	}
}

func write(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	if err := WriteFile(out, CreateOptions{Flag: "--save"}, write("one")); err != nil {
		t.Fatal(err)
	}
	// An existing output is refused without Force and kept intact.
	err := WriteFile(out, CreateOptions{Flag: "--save"}, write("two"))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "--save") {
		t.Errorf("overwrite without force: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "one" {
		t.Errorf("refused overwrite changed the file: %q", b)
	}
	if err := WriteFile(out, CreateOptions{Force: true}, write("two")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "two" {
		t.Errorf("forced overwrite: %q", b)
	}
	// An output that is an input is refused even with Force, by any name.
	link := filepath.Join(dir, "alias.json")
	if err := os.Symlink(out, link); err != nil {
		t.Fatal(err)
	}
	err = WriteFile(link, CreateOptions{Force: true, Inputs: []string{out}, Flag: "--save"}, write("x"))
	if err == nil || !strings.Contains(err.Error(), "input") {
		t.Errorf("output = input: %v", err)
	}
	// Force through a symlink replaces the target and keeps the link.
	if err := WriteFile(link, CreateOptions{Force: true}, write("three")); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(link); st.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced by a regular file")
	}
	if b, _ := os.ReadFile(out); string(b) != "three" {
		t.Errorf("write through the symlink: %q", b)
	}
	// A failing writer leaves the old file and no temporary file.
	if err := WriteFile(out, CreateOptions{Force: true}, func(io.Writer) error { return errors.New("boom") }); err == nil {
		t.Error("the writer's error was lost")
	}
	if b, _ := os.ReadFile(out); string(b) != "three" {
		t.Errorf("a failed write changed the file: %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	// A special file is never an output.
	if err := WriteFile("/dev/null", CreateOptions{Force: true}, write("x")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("WriteFile(/dev/null) = %v", err)
	}
}
