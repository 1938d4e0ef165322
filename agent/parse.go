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
	fieldVals  [][]byte // values of fieldKeys, in order
	fieldsJSON map[string]json.RawMessage
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
	e.fieldsJSON = make(map[string]json.RawMessage, len(in.Fields))
	for k, v := range in.Fields {
		js, _ := json.Marshal(v)
		e.fieldsJSON[k] = js
	}
	return e, nil
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
			}
		}
		if len(e.fieldsJSON) == 0 {
			return key, data, nil // the line as written
		}
		for k, v := range e.fieldsJSON {
			if _, ok := obj[k]; !ok {
				obj[k] = v
			}
		}
		value, merr := json.Marshal(obj)
		if merr != nil {
			return key, data, fmt.Errorf("%w: %v", ErrParse, merr)
		}
		return key, value, nil
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
		value, _ := json.Marshal(obj) // cannot fail for map[string]string
		return key, value, nil
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
