package api

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
)

// confineTo returns the resolver of "path" loads for the native file
// system. The path, taken as given (relative to the working folder) and
// then relative to each model folder, must lie inside one of dirs, first
// as written (so that nothing is learnt about files elsewhere, not even
// whether they exist) and again once every symlink is resolved (so that a
// link cannot lead out). It returns the resolved path: the file opened is
// the file checked. Nothing is read here.
func confineTo(dirs []string) func(path string) (string, *apiError) {
	return func(path string) (string, *apiError) {
		if len(dirs) == 0 {
			return "", &apiError{status: http.StatusForbidden, Code: "path_not_allowed", Field: "path",
				Message: "this server has no model folders to load a path from (start it with --models-dir DIR); load a library id instead"}
		}
		var roots []string // each folder as written and resolved
		for _, d := range dirs {
			if abs, err := filepath.Abs(d); err == nil {
				roots = append(roots, abs)
				if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
					roots = append(roots, real)
				}
			}
		}
		inside := func(p string) bool {
			for _, r := range roots {
				if within(p, r) {
					return true
				}
			}
			return false
		}
		candidates := []string{path}
		if !filepath.IsAbs(path) {
			for _, d := range dirs {
				candidates = append(candidates, filepath.Join(d, path))
			}
		}
		folders := strings.Join(dirs, ", ")
		var notFound, escapes bool
		for _, c := range candidates {
			abs, err := filepath.Abs(c)
			if err != nil || !inside(abs) {
				continue
			}
			real, err := filepath.EvalSymlinks(abs)
			if err != nil {
				notFound = true
				continue
			}
			if !inside(real) {
				escapes = true
				continue
			}
			return real, nil
		}
		switch {
		case escapes:
			return "", &apiError{status: http.StatusForbidden, Code: "path_not_allowed", Field: "path",
				Message: fmt.Sprintf("%s is a link that leads out of this server's model folders (%s); it loads files inside them only", path, folders)}
		case notFound:
			return "", &apiError{status: http.StatusNotFound, Code: "source_not_found", Field: "path",
				Message: fmt.Sprintf("%s: no such file in this server's model folders (%s)", path, folders)}
		}
		return "", &apiError{status: http.StatusForbidden, Code: "path_not_allowed", Field: "path",
			Message: fmt.Sprintf("%s is not inside this server's model folders (%s); it loads files from those only (--models-dir)", path, folders)}
	}
}

// within reports whether path is root or below it (both clean and absolute).
func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
