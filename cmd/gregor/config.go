package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The config subcommands show and change dynamic broker configs, as
// `kafka-configs --entity-type brokers` does: the defaults of topic configs
// (log.retention.ms, log.segment.bytes, ...) set at runtime for every
// broker (--default) or for one (--broker ID).

var configSubcommands = []subcommand{
	{"describe", "show a broker's configs and where each comes from", configDescribe},
	{"alter", "set or delete dynamic broker configs (defaults of topic configs)", configAlter},
}

// runConfig dispatches "gregor config <subcommand>".
func runConfig(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, "config", configSubcommands, args, stdin, stdout, stderr)
}

// brokerEntity reads --default and --broker: the BROKER resource name ("" for
// the cluster-wide default). need says one of them must be given; without
// either, describe picks the broker the client reaches first.
func brokerEntity(isDefault bool, broker int, need bool) (name string, pick bool, err error) {
	switch {
	case isDefault && broker >= 0:
		return "", false, usagef("give --default or --broker, not both")
	case isDefault:
		return "", false, nil
	case broker >= 0:
		return strconv.Itoa(broker), false, nil
	case need:
		return "", false, usagef("say whose configs: --default (every broker) or --broker ID")
	}
	return "", true, nil
}

func configDescribe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("config describe", "", stderr)
	af := addAdminFlags(fs)
	isDefault := fs.Bool("default", false, "the cluster-wide dynamic defaults")
	broker := fs.Int("broker", -1, "one broker's configs, by id; -1: the first broker the client reaches")
	all := fs.Bool("all", false, "every config, not only the dynamic ones")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	name, pick, err := brokerEntity(*isDefault, *broker, false)
	if err != nil {
		return err
	}
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if pick {
		meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("find a broker: %w", err)
		}
		if len(meta.Brokers) == 0 {
			return errors.New("find a broker: the cluster lists none")
		}
		name = strconv.Itoa(int(meta.Brokers[0].NodeID))
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, name
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("describe configs of %s: %w", entityName(name), err)
	}
	if len(resp.Resources) != 1 {
		return fmt.Errorf("describe configs of %s: %d resources in the answer", entityName(name), len(resp.Resources))
	}
	r := resp.Resources[0]
	if err := codeErr(r.ErrorCode, r.ErrorMessage); err != nil {
		return fmt.Errorf("describe configs of %s: %w", entityName(name), err)
	}
	fmt.Fprintf(stdout, "Configs of %s:\n", entityName(name))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	shown := 0
	for _, c := range r.Configs {
		dynamic := c.Source == kmsg.ConfigSourceDynamicBrokerConfig || c.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig
		if !*all && !dynamic {
			continue
		}
		v := configValue(&c)
		mode := "dynamic"
		if c.ReadOnly {
			mode = "static"
		}
		fmt.Fprintf(tw, "  %s=%s\t%s\t%s\n", c.Name, v, c.Source, mode)
		shown++
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if shown == 0 {
		fmt.Fprintln(stdout, "  (no dynamic configs; --all shows every config)")
	}
	return nil
}

func configAlter(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("config alter", "", stderr)
	af := addAdminFlags(fs)
	isDefault := fs.Bool("default", false, "alter the cluster-wide dynamic defaults")
	broker := fs.Int("broker", -1, "alter one broker's dynamic configs, by id")
	var sets, deletes stringList
	fs.Var(&sets, "set", "set a dynamic broker config key=value, e.g. log.retention.ms=86400000 (repeatable)")
	fs.Var(&deletes, "delete", "delete a dynamic broker config, back to what is below it (repeatable)")
	validateOnly := fs.Bool("validate-only", false, "ask the broker to validate the change without applying it")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	name, _, err := brokerEntity(*isDefault, *broker, true)
	if err != nil {
		return err
	}
	if len(sets)+len(deletes) == 0 {
		return usagef("nothing to do: give --set key=value or --delete key")
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = *validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, name
	if rr.Configs, err = configChanges(sets, deletes); err != nil {
		return err
	}
	req.Resources = append(req.Resources, rr)
	cl, ctx, done, err := af.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("alter configs of %s: %w", entityName(name), err)
	}
	if len(resp.Resources) != 1 {
		return fmt.Errorf("alter configs of %s: %d resources in the answer", entityName(name), len(resp.Resources))
	}
	if err := codeErr(resp.Resources[0].ErrorCode, resp.Resources[0].ErrorMessage); err != nil {
		return fmt.Errorf("alter configs of %s: %w", entityName(name), err)
	}
	verb := "altered"
	if *validateOnly {
		verb = "validated"
	}
	fmt.Fprintf(stdout, "%s %d config(s) of %s\n", verb, len(rr.Configs), entityName(name))
	return nil
}

// entityName names a BROKER resource for people.
func entityName(name string) string {
	if name == "" {
		return "the cluster-wide default"
	}
	return "broker " + name
}
