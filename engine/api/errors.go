package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/remask/remask/engine/sampler"
)

// apiError is every error answer: HTTP status plus
// {"error":{"code","message","field"?,...}}.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
	// Known lists the library ids (unknown_model).
	Known []string `json:"known,omitempty"`
	// Limit and Requested are the numbers of a limit error (too_many_tokens).
	Limit     int `json:"limit,omitempty"`
	Requested int `json:"requested,omitempty"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

type errorBody struct {
	Error *apiError `json:"error"`
}

// invalidOption is a 400 for an option out of range.
func invalidOption(field, format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: "invalid_option", Field: field, Message: fmt.Sprintf(format, a...)}
}

// fromOptionError turns the sampler's option errors into 400s; other errors
// are returned as they are.
func fromOptionError(err error) error {
	var oe *sampler.OptionError
	if errors.As(err, &oe) {
		return invalidOption(oe.Field, "%s", oe.Msg)
	}
	return err
}

// asAPIError maps any error to an answer; errors that are not already API
// errors become 500s with code.
func asAPIError(err error, code string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var oe *sampler.OptionError
	if errors.As(err, &oe) {
		return invalidOption(oe.Field, "%s", oe.Msg)
	}
	return &apiError{status: http.StatusInternalServerError, Code: code, Message: err.Error()}
}

// writeJSON writes v as the whole answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every answer type is plain data; failing to encode one is a bug.
		panic(fmt.Sprintf("api: encoding %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, errorBody{e})
}

// decodeBody reads the JSON object of a request into v: at most max bytes,
// unknown fields rejected, every type error naming its field. example is a
// valid body shown in the message of an empty or malformed one.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, v any, example string) *apiError {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err == nil {
		err = decodeStrict(data, v, example)
	}
	return decodeError(err, v, example)
}

// decodeStrict decodes data into v: unknown fields rejected, one value
// only, then checkStrict.
func decodeStrict(data []byte, v any, example string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One JSON value only: anything after it but white space is an error.
		var extra json.RawMessage
		switch err2 := dec.Decode(&extra); {
		case err2 == io.EOF:
			if ae := checkStrict(data, reflect.TypeOf(v), example); ae != nil {
				return ae
			}
			return nil
		case err2 == nil:
			return &apiError{status: http.StatusBadRequest, Code: "invalid_json", Message: "the body holds more than one JSON value; send exactly one object"}
		default:
			err = err2
		}
	}
	return err
}

// decodeError turns a decoding error into an answer (nil for nil).
func decodeError(err error, v any, example string) *apiError {
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the body is larger than this server's limit of %d bytes", mbe.Limit), Limit: int(mbe.Limit)}
	case err == io.EOF:
		return &apiError{status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is empty; send a JSON object such as " + example}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{status: http.StatusBadRequest, Code: "invalid_json", Message: "the body ends in the middle of the JSON object; send a complete object such as " + example}
	case errors.As(err, &se):
		return &apiError{status: http.StatusBadRequest, Code: "invalid_json",
			Message: fmt.Sprintf("the body is not valid JSON (at byte %d: %s); send an object such as %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "), example)}
	case errors.As(err, &te):
		field := te.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 {
			field = field[i+1:] // drop the Go path of embedded structs
		}
		if field == "" {
			return &apiError{status: http.StatusBadRequest, Code: "invalid_json",
				Message: fmt.Sprintf("the body is a JSON %s; send a JSON object such as %s", te.Value, example)}
		}
		return &apiError{status: http.StatusBadRequest, Code: "invalid_type", Field: field,
			Message: fmt.Sprintf("must be %s, not %s", jsonTypeName(field, te.Type), jsonValueName(te.Value))}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		unq := strings.Trim(name, `"`)
		return &apiError{status: http.StatusBadRequest, Code: "unknown_field", Field: unq,
			Message: fmt.Sprintf("unknown field %s; allowed fields: %s", name, strings.Join(jsonFields(reflect.TypeOf(v)), ", "))}
	}
	return &apiError{status: http.StatusBadRequest, Code: "invalid_json", Message: fmt.Sprintf("reading the body: %v", err)}
}

// jsonTypeName says in JSON terms what a Go type accepts.
func jsonTypeName(field string, t reflect.Type) string {
	if field == "masking_ratios" && t.Kind() != reflect.Slice {
		return "an array of numbers"
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(jsonTypeName("", t.Elem()), "a ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}

// jsonValueName turns the decoder's value description ("string", "number
// -1") into words.
func jsonValueName(v string) string {
	switch {
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "array", v == "object", v == "string", v == "number":
		return "a JSON " + v
	case v == "bool":
		return "true/false"
	}
	return v
}

// jsonFields lists the JSON names of a struct type, embedded structs
// included, sorted as declared, without duplicates.
func jsonFields(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	seen := map[string]bool{}
	eachJSONField(t, func(name string, _ reflect.StructField, _ int) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	})
	return names
}

// eachJSONField calls fn, in declaration order, for every field of the
// struct type t that encoding/json reads or writes, with its JSON name; the
// fields of an untagged embedded struct come in its place, at depth + 1.
func eachJSONField(t reflect.Type, fn func(name string, f reflect.StructField, depth int)) {
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, depth+1)
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fn(name, f, depth)
		}
	}
	walk(t, 0)
}
