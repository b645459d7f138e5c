package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// checkStrict enforces what encoding/json lets pass, on a body that
// decoded without error into a value of type t: the body must be an
// object (not null), every key must be a field's exact name (the decoder
// matches names case-insensitively), no key may appear twice in an object
// (the decoder keeps the last), and no array item may be null (the decoder
// makes it 0). A field's own null keeps its default, as documented.
func checkStrict(data []byte, t reflect.Type, example string) *apiError {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return &apiError{status: http.StatusBadRequest, Code: "invalid_json",
			Message: "the body is null; send a JSON object such as " + example}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkStrict(dec, t, "")
}

// walkStrict checks the next value of dec against t (nil: anything).
func walkStrict(dec *json.Decoder, t reflect.Type, field string) *apiError {
	tok, err := dec.Token()
	if err != nil {
		return nil // decoding already succeeded; nothing more to say
	}
	return walkToken(dec, tok, t, field)
}

// walkToken checks the value that starts with tok.
func walkToken(dec *json.Decoder, tok json.Token, t reflect.Type, field string) *apiError {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		var fields map[string]reflect.Type
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = structFields(t)
		} else if t != nil && t.Kind() == reflect.Map {
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil
			}
			key, _ := kt.(string)
			name := key
			if field != "" {
				name = field + "." + key
			}
			if seen[key] {
				return &apiError{status: http.StatusBadRequest, Code: "duplicate_field", Field: name,
					Message: fmt.Sprintf("%q appears twice; give each field once", key)}
			}
			seen[key] = true
			ft := elem
			if fields != nil {
				var ok bool
				if ft, ok = fields[key]; !ok {
					for exact := range fields {
						if strings.EqualFold(exact, key) {
							return &apiError{status: http.StatusBadRequest, Code: "unknown_field", Field: name,
								Message: fmt.Sprintf("unknown field %q; field names are case-sensitive: did you mean %q?", key, exact)}
						}
					}
					return &apiError{status: http.StatusBadRequest, Code: "unknown_field", Field: name,
						Message: fmt.Sprintf("unknown field %q", key)}
				}
			}
			if ae := walkStrict(dec, ft, name); ae != nil {
				return ae
			}
		}
		dec.Token() // '}'
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			it, err := dec.Token()
			if err != nil {
				return nil
			}
			if it == nil {
				what := "a value"
				if elem != nil {
					what = jsonTypeName("", elem)
				}
				return &apiError{status: http.StatusBadRequest, Code: "invalid_type", Field: field,
					Message: fmt.Sprintf("item %d is null; every item must be %s", i, what)}
			}
			if ae := walkToken(dec, it, elem, fmt.Sprintf("%s[%d]", field, i)); ae != nil {
				return ae
			}
		}
		dec.Token() // ']'
	}
	return nil
}

// structFields maps the JSON names of t's fields (embedded structs
// included, the outer field winning) to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	eachJSONField(t, func(name string, f reflect.StructField, depth int) {
		if _, dup := out[name]; !dup || depth == 0 {
			out[name] = f.Type
		}
	})
	return out
}
