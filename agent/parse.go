package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"unicode/utf8"

	"github.com/gregor-log/gregor/internal/config"
)

// ErrParse marks a line the input's parser could not parse. Such a line is
// still shipped, as is, with a "parse-error" header.
var ErrParse = errors.New("parse error")

// encoder turns one line (or joined multiline record) into a record's key
// and value. Raw lines are shipped byte for byte: binary garbage and
// invalid UTF-8 arrive exactly as written. The json and regex parsers emit
// a JSON object; there, invalid UTF-8 in a string is replaced by U+FFFD, as
// encoding/json does. Safe for concurrent use (it holds no state).
type encoder struct {
	kind    string // config.ParserRaw, ParserJSON or ParserRegex
	re      *regexp.Regexp
	names   []string // regex group names, by subexpression index
	keyKind config.KeyKind
	keyName string
	// fields are the static fields, as JSON members for the json and
	// regex parsers (fieldsJSON) and as headers for the raw parser.
	fields     map[string]string
	fieldKeys  []string
	fieldVals  [][]byte    // values of fieldKeys, in order
	fieldsJSON [][2][]byte // name and value of fieldKeys, as JSON
}

func newEncoder(in *config.Input) (*encoder, error) {
	e := &encoder{kind: in.Parser.Type, fields: in.Fields}
	var err error
	e.keyKind, e.keyName, err = config.ParseKey(in.Key)
	if err != nil {
		return nil, err
	}
	if in.Parser.Type == config.ParserRegex {
		e.re, err = regexp.Compile(in.Parser.Pattern)
		if err != nil {
			return nil, fmt.Errorf("parser pattern: %w", err)
		}
		e.names = e.re.SubexpNames()
	}
	for k := range in.Fields {
		e.fieldKeys = append(e.fieldKeys, k)
	}
	sort.Strings(e.fieldKeys)
	for _, k := range e.fieldKeys {
		e.fieldVals = append(e.fieldVals, []byte(in.Fields[k]))
	}
	for _, k := range e.fieldKeys {
		e.fieldsJSON = append(e.fieldsJSON, [2][]byte{marshalNoEscape(k), marshalNoEscape(in.Fields[k])})
	}
	return e, nil
}

// marshalNoEscape is v (a string or map[string]string) as JSON, with <, >
// and & as they are.
func marshalNoEscape[T string | map[string]string](v T) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // cannot fail for these types
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// addFields returns the JSON object line data (obj, parsed) with the
// static fields it lacks added at its end, in name order. The line's own
// bytes are kept as written: its members' order, spacing and escapes.
func (e *encoder) addFields(data []byte, obj map[string]json.RawMessage) []byte {
	end := bytes.LastIndexByte(data, '}') // the object's; it parsed
	var out []byte
	n := len(obj)
	for i, k := range e.fieldKeys {
		if _, ok := obj[k]; ok {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(data)+64)
			out = append(out, data[:end]...)
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, e.fieldsJSON[i][0]...)
		out = append(out, ':')
		out = append(out, e.fieldsJSON[i][1]...)
	}
	if out == nil {
		return data // the line as written
	}
	return append(out, data[end:]...)
}

// encode returns the record key and value for data read from path. err
// wraps ErrParse when the parser rejected the line; key and value are then
// the raw line (no key unless the key is the path).
func (e *encoder) encode(data []byte, path []byte) (key, value []byte, err error) {
	if e.keyKind == config.KeyPath {
		key = path
	}
	switch e.kind {
	case config.ParserJSON:
		var obj map[string]json.RawMessage
		if jerr := json.Unmarshal(data, &obj); jerr != nil || obj == nil {
			return key, data, fmt.Errorf("%w: not a JSON object", ErrParse)
		}
		if e.keyKind == config.KeyField {
			if raw, ok := obj[e.keyName]; ok {
				key = jsonKey(raw)
			} else if v, ok := e.fields[e.keyName]; ok {
				key = []byte(v) // a static field, as the regex parser keys
			}
		}
		return key, e.addFields(data, obj), nil
	case config.ParserRegex:
		m := e.re.FindSubmatch(data)
		if m == nil {
			return key, data, fmt.Errorf("%w: line does not match the pattern", ErrParse)
		}
		obj := make(map[string]string, len(e.names)+len(e.fields))
		for k, v := range e.fields {
			obj[k] = v
		}
		for i, name := range e.names {
			if name != "" && m[i] != nil {
				obj[name] = toValidUTF8(m[i])
			}
		}
		if e.keyKind == config.KeyField {
			if v, ok := obj[e.keyName]; ok {
				key = []byte(v)
			}
		}
		return key, marshalNoEscape(obj), nil
	}
	return key, data, nil
}

// jsonKey renders a JSON value as a key: strings without their quotes,
// anything else as its JSON text.
func jsonKey(raw json.RawMessage) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []byte(s)
		}
	}
	return raw
}

func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}
