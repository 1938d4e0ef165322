package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/gregor-log/gregor/internal/config"
)

// kafkaOnlyProps are Kafka broker properties a server.properties commonly
// holds that have no meaning for a single gregor broker. From a
// .properties --config file they are accepted with a warning, so that
// Kafka's own file starts a broker; on the command line (--set) and in a
// YAML file they are still unknown, as a typo would be.
var kafkaOnlyProps = map[string]bool{
	"num.network.threads":                              true,
	"num.io.threads":                                   true,
	"num.recovery.threads.per.data.dir":                true,
	"num.replica.fetchers":                             true,
	"default.replication.factor":                       true,
	"offsets.topic.replication.factor":                 true,
	"transaction.state.log.replication.factor":         true,
	"transaction.state.log.min.isr":                    true,
	"transaction.state.log.num.partitions":             true,
	"share.coordinator.state.topic.replication.factor": true,
	"share.coordinator.state.topic.min.isr":            true,
	"replica.lag.time.max.ms":                          true,
	"zookeeper.connect":                                true,
	"zookeeper.connection.timeout.ms":                  true,
	"zookeeper.session.timeout.ms":                     true,
	"process.roles":                                    true,
	"controller.quorum.voters":                         true,
	"controller.quorum.bootstrap.servers":              true,
	"controller.listener.names":                        true,
	"inter.broker.listener.name":                       true,
	"listener.security.protocol.map":                   true,
	"metadata.log.dir":                                 true,
	"broker.rack":                                      true,
	"reserved.broker.max.id":                           true,
	"auto.leader.rebalance.enable":                     true,
	"leader.imbalance.check.interval.seconds":          true,
	"log.cleaner.threads":                              true,
	"log.flush.scheduler.interval.ms":                  true,
	"log.flush.offset.checkpoint.interval.ms":          true,
	"log.flush.start.offset.checkpoint.interval.ms":    true,
	"group.coordinator.rebalance.protocols":            true,
}

// isPropertiesFile says whether a --config file is in Kafka's
// server.properties format rather than YAML: by its name.
func isPropertiesFile(path string) bool { return strings.HasSuffix(path, ".properties") }

// propLine is one key=value of a properties file and its line.
type propLine struct {
	key, value string
	line       int
}

// parseProperties reads Java properties text as Kafka's files use it:
// key=value, key:value or key value lines, # and ! comments, a trailing
// backslash continuing a line. Escapes other than the continuation are
// left as they are (Kafka's files have none).
func parseProperties(data []byte) []propLine {
	var out []propLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n, start := 0, 0
	var logical strings.Builder
	for sc.Scan() {
		n++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if logical.Len() == 0 {
			if line == "" || line[0] == '#' || line[0] == '!' {
				continue
			}
			start = n
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			logical.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		logical.WriteString(line)
		text := logical.String()
		logical.Reset()
		i := strings.IndexAny(text, "=: \t")
		if i < 0 {
			out = append(out, propLine{key: text, line: start})
			continue
		}
		key, rest := text[:i], strings.TrimLeft(text[i:], " \t")
		if rest != "" && (rest[0] == '=' || rest[0] == ':') {
			rest = rest[1:]
		}
		out = append(out, propLine{key: key, value: strings.TrimSpace(rest), line: start})
	}
	return out
}

// readKafkaProperties reads a Kafka server.properties as the --config
// file: listeners, advertised.listeners, log.dirs (or log.dir) and
// node.id set the flags of the same meaning; kafkaOnlyProps are returned
// as ignored; every other property is validated as --set would have it,
// each problem with the file and line.
func readKafkaProperties(path string) (f config.Broker, ignored []string, errs []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return f, nil, []error{fmt.Errorf("config file: %w", err)}
	}
	lines := parseProperties(data)
	all := map[string]string{}
	for _, p := range lines {
		all[p.key] = p.value
	}
	f.Set = map[string]string{}
	firstLine := map[string]int{}
	for _, p := range lines {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: property %s: %s", path, p.line, p.key, fmt.Sprintf(format, args...)))
		}
		// Java's Properties keeps the last; refused, as in the YAML
		// file, so that which one counts is never a surprise.
		if first, dup := firstLine[p.key]; dup {
			bad("given again (first on line %d)", first)
			continue
		}
		firstLine[p.key] = p.line
		switch p.key {
		case "listeners", "advertised.listeners":
			addr, err := plaintextListener(p.value, all)
			if err != nil {
				bad("%v", err)
				continue
			}
			if p.key == "listeners" {
				f.Listen = &addr
			} else {
				f.AdvertisedAddr = &addr
			}
			continue
		case "log.dirs", "log.dir":
			if p.key == "log.dir" && all["log.dirs"] != "" {
				continue // log.dirs wins, as in Kafka
			}
			if strings.Contains(p.value, ",") {
				bad("%q names several directories; a gregor broker has one data dir", p.value)
				continue
			}
			dir := p.value
			f.DataDir = &dir
			continue
		case "node.id":
			if _, ok := all["broker.id"]; ok {
				continue
			}
			p.key = "broker.id" // KRaft's name for it
		}
		if kafkaOnlyProps[p.key] {
			ignored = append(ignored, p.key)
			continue
		}
		if perrs := filePropErrors(path, p.line, p.key, p.value); len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		f.Set[p.key] = p.value
	}
	return f, ignored, errs
}

// plaintextListener picks the address of the listener a gregor broker
// serves from Kafka's listeners (or advertised.listeners) list,
// NAME://host:port entries: the one named by inter.broker.listener.name,
// or PLAINTEXT, or the only one that is not a controller listener. Its
// protocol (listener.security.protocol.map, else its name) must be
// PLAINTEXT: gregor has no TLS or SASL listener.
func plaintextListener(list string, all map[string]string) (string, error) {
	protocols := map[string]string{}
	for _, kv := range strings.Split(all["listener.security.protocol.map"], ",") {
		if name, proto, ok := strings.Cut(strings.TrimSpace(kv), ":"); ok {
			protocols[strings.ToUpper(name)] = strings.ToUpper(proto)
		}
	}
	controllers := map[string]bool{}
	for _, name := range strings.Split(all["controller.listener.names"], ",") {
		controllers[strings.ToUpper(strings.TrimSpace(name))] = true
	}
	type listener struct{ name, addr string }
	var ls []listener
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, hostport, ok := strings.Cut(entry, "://")
		if !ok {
			return "", fmt.Errorf("%q is not NAME://host:port", entry)
		}
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return "", fmt.Errorf("%q: %v", entry, err)
		}
		name = strings.ToUpper(name)
		if !controllers[name] {
			ls = append(ls, listener{name, hostport})
		}
	}
	want := strings.ToUpper(all["inter.broker.listener.name"])
	var pick *listener
	for i := range ls {
		if (want != "" && ls[i].name == want) || (want == "" && ls[i].name == "PLAINTEXT") {
			pick = &ls[i]
		}
	}
	if pick == nil && len(ls) == 1 {
		pick = &ls[0]
	}
	if pick == nil {
		return "", fmt.Errorf("%q: no PLAINTEXT listener to serve on (a gregor broker has one)", list)
	}
	proto := protocols[pick.name]
	if proto == "" {
		proto = pick.name
	}
	if proto != "PLAINTEXT" {
		return "", fmt.Errorf("listener %s speaks %s; gregor serves PLAINTEXT only", pick.name, proto)
	}
	return pick.addr, nil
}
