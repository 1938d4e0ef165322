package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp/syntax"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

type syntaxError = syntax.Error

var (
	pipelineType    = reflect.TypeOf(Pipeline{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

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
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
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
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
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

// checkLeaf decodes n alone into a fresh value of type t and records the
// decoder's complaint, if any.
func checkLeaf(n *yaml.Node, t reflect.Type, path string, ps *problems) {
	if isLeaf(t) && n.Kind != yaml.ScalarNode {
		ps.add(path, n.Line, "must be a single value, got %s", kindName(n))
		return
	}
	if isInteger(t) && n.ShortTag() == "!!float" {
		// yaml.v3 would decode 1.5 into an integer field as 1.
		ps.add(path, n.Line, "must be a whole number, got %s", kindName(n))
		return
	}
	v := reflect.New(t)
	if err := n.Decode(v.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			ps.add(path, n.Line, "%s", stripLinePrefix(te.Errors[0]))
			return
		}
		ps.add(path, n.Line, "%v", err)
	}
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
