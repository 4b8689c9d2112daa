// Package e2e is the harness for tests that run the real owlpost binaries as
// separate processes: the kill tests and the fault suite. It is imported by
// tests only.
//
//   - Build compiles the commands once per `go test` process (go build -o DIR/
//     ./cmd/...) and returns the directory; a failing build fails the test
//     with the compiler output. Main removes the directory after the tests.
//   - ConfigFile writes a *config.Config as the JSON config file every binary
//     reads (OWLPOST_CONFIG), using the config keys of internal/config, so the
//     processes see exactly the test's topics, groups and Redis prefix. Per
//     process differences (instance id, metrics address) go in env vars named
//     by config.EnvName, which override the file.
//   - Start(t, Spec{Name, Binary, Config, Env, Args}) runs one binary as a
//     Proc with that env, its stdout and stderr in a log file
//     under t.TempDir(); Kill sends SIGKILL (a crash), Stop sends SIGTERM and
//     waits (a clean shutdown), Restart starts it again appending to the same
//     log. When the test fails, the tail of every Proc's log is printed. Procs
//     still running at the end of the test are stopped.
//   - WaitFor polls a condition until it holds or a timeout passes; it is how
//     tests wait for processes without asserting timings.
package e2e
