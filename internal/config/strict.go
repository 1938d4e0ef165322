package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type syntaxError = syntax.Error

var (
	pipelineType    = reflect.TypeOf(Pipeline{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationType    = reflect.TypeOf(time.Duration(0))
)

// DecodeStrict decodes data, a file named name holding one YAML document,
// into the struct into points to. Unknown keys, keys given twice and
// values that do not fit their fields are refused; every problem is
// reported, with its line and key, in one *Error, and into is then left
// as it was. An empty file (or a null document) decodes to nothing.
func DecodeStrict(name string, data []byte, into any) error {
	root, err := parseDocument(name, data)
	if err != nil || root == nil {
		return err
	}
	var ps problems
	checkNode(root, reflect.TypeOf(into), "", &ps)
	if len(ps) == 0 {
		fresh := reflect.New(reflect.TypeOf(into).Elem())
		if err := root.Decode(fresh.Interface()); err != nil {
			// checkNode found nothing, so this is something it does not
			// model; report it as the decoder words it.
			ps.add("", root.Line, "%s", stripLinePrefix(strings.TrimPrefix(err.Error(), "yaml: ")))
		} else {
			reflect.ValueOf(into).Elem().Set(fresh.Elem())
		}
	}
	if len(ps) > 0 {
		return &Error{File: name, Problems: ps}
	}
	return nil
}

// parseDocument parses data into its root node: nil for an empty file or
// a null document, an *Error for what is not one YAML document.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		// yaml.v3 says "yaml: line N: ..." for a syntax error.
		return nil, &Error{File: name, Problems: []Problem{{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{File: name, Problems: []Problem{{Line: extra.Line, Msg: "more than one YAML document; the file holds exactly one"}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

// checkNode walks the YAML tree against the Go type it decodes into and
// records, with its path, every unknown key and every value that does not
// decode into its field. yaml.v3's own KnownFields check reports only line
// numbers; this one names the key (agents[0].inputs[2].multilne).
func checkNode(n *yaml.Node, t reflect.Type, path string, ps *problems) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // null decodes into anything as the zero value
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) || isLeaf(t) {
		checkLeaf(n, t, path, ps)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.add(path, n.Line, "must be a mapping, got %s", kindName(n))
			return
		}
		fields := yamlFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if givenAgain(seen, k, path, ps) {
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				ps.add(join(path, k.Value), k.Line, "unknown key (known: %s)", knownKeys(fields))
				continue
			}
			checkNode(v, ft, join(path, k.Value), ps)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			ps.add(path, n.Line, "must be a list, got %s", kindName(n))
			return
		}
		for i, c := range n.Content {
			checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.add(path, n.Line, "must be a mapping, got %s", kindName(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if givenAgain(seen, k, path, ps) {
				continue
			}
			checkLeaf(k, t.Key(), join(path, k.Value), ps)
			checkNode(v, t.Elem(), join(path, k.Value), ps)
		}
	case reflect.Interface:
		// Anything decodes into an interface.
	default:
		checkLeaf(n, t, path, ps)
	}
}

// isLeaf reports whether t is decoded from a single scalar.
func isLeaf(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}

// isInteger reports whether t is an integer kind (time.Duration included).
func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// givenAgain records mapping key k in seen and reports, as a problem,
// whether it was there already.
func givenAgain(seen map[string]int, k *yaml.Node, path string, ps *problems) bool {
	if line, ok := seen[k.Value]; ok {
		ps.add(join(path, k.Value), k.Line, "given again (first on line %d)", line)
		return true
	}
	seen[k.Value] = k.Line
	return false
}

// checkLeaf decodes n alone into a fresh value of type t and records, in
// plain words, why it does not fit, if it does not.
func checkLeaf(n *yaml.Node, t reflect.Type, path string, ps *problems) {
	custom := reflect.PointerTo(t).Implements(unmarshalerType)
	if !custom && isLeaf(t) && n.Kind != yaml.ScalarNode {
		ps.add(path, n.Line, "must be a single value, got %s", kindName(n))
		return
	}
	if isInteger(t) && n.ShortTag() == "!!float" {
		// yaml.v3 would decode 1.5 into an integer field as 1.
		ps.add(path, n.Line, "must be a whole number, got %s", kindName(n))
		return
	}
	v := reflect.New(t)
	err := n.Decode(v.Interface())
	if err == nil {
		return
	}
	if !custom {
		if msg := leafMessage(n, t); msg != "" {
			ps.add(path, n.Line, "%s", msg)
			return
		}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		ps.add(path, n.Line, "%s", stripLinePrefix(te.Errors[0]))
		return
	}
	ps.add(path, n.Line, "%s", stripLinePrefix(strings.TrimPrefix(err.Error(), "yaml: ")))
}

// leafMessage says what a value of type t must be, for scalar n that does
// not decode into it; "" for types it has no words for.
func leafMessage(n *yaml.Node, t reflect.Type) string {
	got := kindName(n)
	switch {
	case t == durationType:
		return fmt.Sprintf("must be a duration such as \"5s\" or \"1m30s\", got %s", got)
	case isInteger(t):
		if n.ShortTag() == "!!int" {
			lo, hi := intRange(t)
			return fmt.Sprintf("must be a whole number from %d to %d, got %s", lo, hi, got)
		}
		return fmt.Sprintf("must be a whole number, got %s", got)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf("must be true or false, got %s", got)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return fmt.Sprintf("must be a number, got %s", got)
	}
	return ""
}

// intRange is the range of integer type t.
func intRange(t reflect.Type) (lo int64, hi uint64) {
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return 0, uint64(math.MaxUint64) >> (64 - bits)
	}
	return -1 << (bits - 1), 1<<(bits-1) - 1
}

// stripLinePrefix drops yaml.v3's "line N: " prefix: the Problem carries
// the line itself.
func stripLinePrefix(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return rest[i+2:]
			}
		}
	}
	return msg
}

// yamlFields maps the YAML keys of struct t to their field types,
// following ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default key
		}
		out[name] = f.Type
	}
	return out
}

func knownKeys(fields map[string]reflect.Type) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return strings.Join(keys, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}
