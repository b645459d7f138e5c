package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// encoding/json matches object keys to struct fields without regard to case
// and keeps the last of duplicate keys. A file read that way could mean one
// thing to remask and another to the Python and Rust safetensors readers
// ("Data_Offsets" is not "data_offsets" to them), so every object in a
// header is first checked here: keys must match a field's JSON name
// exactly, and appear once.

// unknownFieldError is a key that names no field, with its path
// ("heads.critc").
type unknownFieldError string

func (e unknownFieldError) Error() string { return fmt.Sprintf("unknown field %q", string(e)) }

// decodeExact decodes the JSON object data into v, a pointer to a struct,
// after exactKeys. strict rejects unknown keys; otherwise they are dropped.
func decodeExact(data []byte, v any, strict bool) error {
	clean, err := exactKeys(data, reflect.TypeOf(v), strict, "")
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// exactKeys checks data against the struct type t (through pointers, and
// into fields that are structs themselves) and returns it with the keys
// that name no field removed; strict makes such a key an error instead.
// Values of non-struct types are returned as they are.
func exactKeys(data []byte, t reflect.Type, strict bool, path string) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return data, nil
	}
	keys, values, err := objectMembers(data)
	if err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: %w", strings.TrimSuffix(path, "."), err)
		}
		return nil, err
	}
	fields := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i, k := range keys {
		ft, ok := fields[k]
		if !ok {
			if strict {
				return nil, unknownFieldError(path + k)
			}
			continue
		}
		v, err := exactKeys(values[i], ft, strict, path+k+".")
		if err != nil {
			return nil, err
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		kj, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		out.Write(kj)
		out.WriteByte(':')
		out.Write(v)
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}
