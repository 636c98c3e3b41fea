package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A peer is another collector measured through its program under
// bench/peers (see bench/peers/README.md for the programs and their
// protocol). prepare finds its toolchain and builds it; run runs one
// workload.
type peer struct {
	name string   // "boehm", "jvm", "v8": the protocol's system field
	argv []string // the command; WORKLOAD N RUNS are appended
	skip string   // why the peer cannot run; "" when it can
}

// peerNames lists the peers in the order they run.
var peerNames = []string{"boehm", "jvm", "v8"}

// preparePeers finds each peer's toolchain and builds its program into tmp.
// A peer whose sources or toolchain are missing, or whose build fails, is
// returned with skip set.
func preparePeers(ctx context.Context, dir, tmp string) []*peer {
	return []*peer{prepareBoehm(ctx, dir, tmp), prepareJVM(ctx, dir, tmp), prepareV8(dir)}
}

func prepareBoehm(ctx context.Context, dir, tmp string) *peer {
	p := &peer{name: "boehm"}
	src := filepath.Join(dir, "boehm", "peer.c")
	if !exists(src) {
		p.skip = "no " + src
		return p
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		p.skip = "no gcc in PATH"
		return p
	}
	flags := []string{"-lgc"}
	if pc, err := exec.LookPath("pkg-config"); err == nil {
		if out, err := exec.CommandContext(ctx, pc, "--cflags", "--libs", "bdw-gc").Output(); err == nil {
			flags = strings.Fields(string(out))
		}
	}
	bin := filepath.Join(tmp, "boehm-peer")
	args := append([]string{"-O2", "-o", bin, src}, flags...)
	if out, err := exec.CommandContext(ctx, gcc, args...).CombinedOutput(); err != nil {
		p.skip = "cannot build with libgc (Debian: apt-get install libgc-dev): " + firstLine(out, err)
		return p
	}
	p.argv = []string{bin}
	return p
}

func prepareJVM(ctx context.Context, dir, tmp string) *peer {
	p := &peer{name: "jvm"}
	src := filepath.Join(dir, "jvm", "Peer.java")
	if !exists(src) {
		p.skip = "no " + src
		return p
	}
	java, err := exec.LookPath("java")
	if err != nil {
		p.skip = "no java in PATH"
		return p
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		// A JDK 11+ runs a single source file directly, compiling it at
		// each start, outside the timed region.
		p.argv = []string{java, src}
		return p
	}
	out := filepath.Join(tmp, "jvm")
	if msg, err := exec.CommandContext(ctx, javac, "-d", out, src).CombinedOutput(); err != nil {
		p.skip = "javac failed: " + firstLine(msg, err)
		return p
	}
	p.argv = []string{java, "-cp", out, "Peer"}
	return p
}

func prepareV8(dir string) *peer {
	p := &peer{name: "v8"}
	src := filepath.Join(dir, "v8", "peer.js")
	if !exists(src) {
		p.skip = "no " + src
		return p
	}
	node, err := exec.LookPath("node")
	if err != nil {
		p.skip = "no node in PATH"
		return p
	}
	p.argv = []string{node, "--expose-gc", src}
	return p
}

// peerResult is what one peer invocation printed.
type peerResult struct {
	runs  []float64            // ns_per_op of each run
	extra map[string][]float64 // other numeric fields of each run, by name
	err   string               // the peer's error line, or why the invocation failed
}

// run runs workload at n, runs times, in one invocation (the peer warms up
// once first), and parses the result lines.
func (p *peer) run(ctx context.Context, workload string, n, runs int, timeout time.Duration) peerResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append(append([]string(nil), p.argv...), workload, strconv.Itoa(n), strconv.Itoa(runs))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := parsePeerOutput(p.name, workload, stdout.Bytes())
	if err != nil && res.err == "" {
		switch {
		case ctx.Err() != nil:
			res.err = fmt.Sprintf("timed out after %v", timeout)
		default:
			res.err = firstLine(stderr.Bytes(), err)
		}
	}
	if res.err == "" && len(res.runs) == 0 {
		res.err = "no result lines"
	}
	return res
}

// parsePeerOutput reads the protocol's JSON lines: one per run, or an
// error line. Lines of other systems or workloads, lines that are not JSON
// objects and unknown non-numeric fields are ignored.
func parsePeerOutput(system, workload string, out []byte) peerResult {
	res := peerResult{extra: map[string][]float64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil || fields == nil {
			continue
		}
		var sys, wl, msg string
		_ = json.Unmarshal(fields["system"], &sys)
		_ = json.Unmarshal(fields["workload"], &wl)
		if sys != system || wl != workload {
			continue
		}
		if raw, ok := fields["error"]; ok {
			if json.Unmarshal(raw, &msg) != nil || msg == "" {
				msg = string(raw)
			}
			res.err = msg
			continue
		}
		var ns float64
		if err := json.Unmarshal(fields["ns_per_op"], &ns); err != nil || !(ns > 0) {
			continue
		}
		res.runs = append(res.runs, ns)
		for k, raw := range fields {
			switch k {
			case "system", "workload", "n", "ns_per_op", "ops":
				continue
			}
			var v float64
			if json.Unmarshal(raw, &v) == nil {
				res.extra[k] = append(res.extra[k], v)
			}
		}
	}
	return res
}

// findPeersDir looks for bench/peers in the working directory and its
// parents, so that the command works from anywhere in the repository.
func findPeersDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "bench", "peers")
		if exists(filepath.Join(cand, "README.md")) {
			return cand, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no bench/peers in the working directory or its parents (use -peers-dir)")
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// firstLine returns the first non-empty line of out, or err's text.
func firstLine(out []byte, err error) string {
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	if err != nil {
		return err.Error()
	}
	return "failed"
}
