// Command ferretdb-test runs an embedded FerretDB (SQLite backend) so that
// coco's Rust tests can talk to a real MongoDB-wire-protocol server without
// a MongoDB installation.
//
// Usage:
//
//	ferretdb-test [-data DIR] [-exit-on-stdin-eof] [-log-level LEVEL] ADDR [DIR]
//
// ADDR is the TCP listen address, e.g. 127.0.0.1:27018 (port 0 picks a free
// port; the real one is printed). DIR is the SQLite data directory (created if
// missing, kept on exit); when absent a temporary directory is used and
// removed on exit.
//
// Once the server accepts connections, exactly one line is printed on stdout:
//
//	ready mongodb://127.0.0.1:PORT/
//
// The server shuts down cleanly on SIGTERM / SIGINT (and on stdin EOF with
// -exit-on-stdin-eof, handy so a killed test harness never leaks a server).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	os.Exit(run())
}

func run() int {
	dataFlag := flag.String("data", "", "SQLite data directory (default: temporary directory removed on exit)")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "shut down when stdin is closed")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn, error (warn logs every error reply in full)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] ADDR [DATADIR]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()

	if flag.NArg() < 1 || flag.NArg() > 2 {
		flag.Usage()
		return 2
	}
	addr := flag.Arg(0)
	dataDir := *dataFlag
	if flag.NArg() == 2 {
		if dataDir != "" {
			fmt.Fprintln(os.Stderr, "ferretdb-test: give the data directory either as -data or as second argument, not both")
			return 2
		}
		dataDir = flag.Arg(1)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: bad -log-level: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "coco-ferretdb-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		dataDir = tmp
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		return 1
	}
	absDir, err := filepath.Abs(dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		return 1
	}
	// SQLite URI must be a directory URI ending with a slash.
	sqliteURL := (&url.URL{Scheme: "file", Opaque: filepath.ToSlash(absDir) + "/"}).String()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		return 1
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// MongoDBURI blocks until the TCP listener is bound and yields the real
	// address (useful with port 0).
	uri := f.MongoDBURI()
	u, err := url.Parse(uri)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: bad URI %q: %v\n", uri, err)
		stop()
		<-done
		return 1
	}
	if err := waitAccepting(ctx, u.Host, 30*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		stop()
		<-done
		return 1
	}

	fmt.Printf("ready %s\n", uri)
	_ = os.Stdout.Sync()

	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-test: %v\n", err)
		return 1
	}
	return 0
}

// waitAccepting dials hostPort until a connection succeeds.
func waitAccepting(ctx context.Context, hostPort string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", hostPort, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return errors.New("interrupted before ready")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %s: %v", hostPort, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
