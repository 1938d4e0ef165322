package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gregor-log/gregor/agent"
	"github.com/gregor-log/gregor/internal/config"
	"github.com/gregor-log/gregor/internal/vfs"
)

// runAgent runs the agents of a pipeline file (`gregor agent`), or reports
// on them (`gregor agent status`).
func runAgent(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runAgentStatus(ctx, args[1:], stdout, stderr)
	}
	fs := newFlagSet("agent", "\n       gregor agent status [flags]", stderr)
	configPath := fs.String("config", "pipeline.yaml", "pipeline file whose agents: section to run")
	name := fs.String("name", "", "run only the agent with this name (default: every agent)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	agents, err := selectAgents(*configPath, *name)
	if err != nil {
		return err
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return &usageError{err: err}
	}
	defer logger.Sync()
	setAgentMemoryLimit(agents)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		agentsWG, serversWG sync.WaitGroup
		errMu               sync.Mutex
		errs                []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		cancel()
	}
	var servers []*http.Server
	for _, cfg := range agents {
		a, err := agent.New(cfg, agent.Options{Logger: logger})
		if err != nil {
			fail(err)
			break
		}
		if cfg.HTTPAddr != "" {
			ln, err := net.Listen("tcp", cfg.HTTPAddr)
			if err != nil {
				fail(fmt.Errorf("agent %s: http-addr: %w", cfg.Name, err))
				break
			}
			srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
			servers = append(servers, srv)
			serversWG.Add(1)
			go func() {
				defer serversWG.Done()
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					fail(fmt.Errorf("agent %s: http: %w", cfg.Name, err))
				}
			}()
		}
		agentsWG.Add(1)
		go func() {
			defer agentsWG.Done()
			if err := a.Run(runCtx); err != nil {
				fail(err)
			}
			// One agent failing stops the others: the process is then
			// restarted whole by whoever supervises it.
			cancel()
		}()
	}
	<-runCtx.Done()
	logger.Info("stopping agents")
	// Agents finish their shutdown (flush, last checkpoint) before the
	// HTTP servers go, so /status stays up while they do.
	agentsWG.Wait()
	for _, srv := range servers {
		_ = srv.Close()
	}
	serversWG.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	return errors.Join(errs...)
}

// setAgentMemoryLimit gives the garbage collector a soft memory limit
// sized for the agents (unless GOMEMLIMIT is set): what is live is bounded
// by producer.max-in-flight-bytes, and without a limit the default GOGC
// would let garbage double the heap before collecting it.
func setAgentMemoryLimit(agents []config.Agent) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(agentMemoryBase)
	for _, a := range agents {
		limit += agentMemoryPerInFlight * int64(a.Producer.MaxInFlightBytes)
	}
	debug.SetMemoryLimit(limit)
}

// Terms of the agents' soft memory limit: a base for the runtime, the
// client and the metrics, plus a multiple of each agent's in-flight bytes.
const (
	agentMemoryBase        = 24 << 20
	agentMemoryPerInFlight = 2
)

// selectAgents loads the pipeline file and returns the agents to run.
func selectAgents(path, name string) ([]config.Agent, error) {
	p, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if len(p.Agents) == 0 {
		return nil, fmt.Errorf("%s has no agents: section", path)
	}
	if name == "" {
		return p.Agents, nil
	}
	for _, a := range p.Agents {
		if a.Name == name {
			return []config.Agent{a}, nil
		}
	}
	names := make([]string, len(p.Agents))
	for i, a := range p.Agents {
		names[i] = a.Name
	}
	return nil, usagef("%s has no agent named %q (it has %s)", path, name, strings.Join(names, ", "))
}

// runAgentStatus prints, for each file of each agent, how far behind it
// is: from the running agent's /status when it answers, else from its
// checkpoint file and the files on disk.
func runAgentStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("agent status", "", stderr)
	configPath := fs.String("config", "pipeline.yaml", "pipeline file of the agents")
	name := fs.String("name", "", "only the agent with this name")
	asJSON := fs.Bool("json", false, "print JSON (one report per agent) instead of a table")
	offline := fs.Bool("offline", false, "read the checkpoint files even when the agent's HTTP endpoint answers")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	agents, err := selectAgents(*configPath, *name)
	if err != nil {
		return err
	}
	var reports []agentReport
	var problems []error
	for _, cfg := range agents {
		rep := agentReport{StatusReport: agent.StatusReport{Agent: cfg.Name}}
		if cfg.HTTPAddr != "" && !*offline {
			if live, err := fetchStatus(ctx, cfg.HTTPAddr); err == nil {
				rep.StatusReport = *live
				rep.Source = "http://" + cfg.HTTPAddr + "/status"
				reports = append(reports, rep)
				continue
			}
		}
		files, damage, err := agent.OfflineStatus(vfs.OS, cfg.DataDir)
		if err != nil {
			problems = append(problems, fmt.Errorf("agent %s: %w", cfg.Name, err))
			continue
		}
		for _, d := range damage {
			rep.Damage = append(rep.Damage, d.Error())
		}
		rep.Files = files
		rep.Source = "checkpoint in " + cfg.DataDir + " (agent not answering)"
		reports = append(reports, rep)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		for _, r := range reports {
			if err := enc.Encode(r); err != nil {
				return fmt.Errorf("write status: %w", err)
			}
		}
	} else {
		for _, r := range reports {
			printAgentReport(stdout, r)
		}
	}
	return errors.Join(problems...)
}

// agentReport is one agent's status as `gregor agent status` prints it.
type agentReport struct {
	agent.StatusReport
	Source string   `json:"source"`
	Damage []string `json:"damage,omitempty"`
}

func fetchStatus(ctx context.Context, addr string) (*agent.StatusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var rep agent.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode /status: %w", err)
	}
	return &rep, nil
}

func printAgentReport(w io.Writer, r agentReport) {
	fmt.Fprintf(w, "agent %s (%s)\n", r.Agent, r.Source)
	for _, d := range r.Damage {
		fmt.Fprintf(w, "  damaged checkpoint: %s\n", d)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tSIZE\tACKED\tBEHIND\tPENDING\tPATH")
	var behind int64
	for _, f := range r.Files {
		path := f.Path
		switch f.NowAt {
		case "":
		case "(deleted)":
			path += " (deleted)"
		default:
			path += " (now " + f.NowAt + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", f.State, unknownIfNeg(f.Size), f.Acked, unknownIfNeg(f.Behind), f.Pending, path)
		if f.Behind > 0 {
			behind += f.Behind
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d file(s), %d byte(s) behind\n\n", len(r.Files), behind)
}

func unknownIfNeg(n int64) string {
	if n < 0 {
		return "?"
	}
	return fmt.Sprint(n)
}
