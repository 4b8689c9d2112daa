// Command reliability turns the figures of a fault-suite run (the JSON-lines
// file the cases append to, OWLPOST_RELIABILITY_OUT) into the generated table
// of RELIABILITY.md, keeping the hand-written prose around it:
//
//	go run ./internal/fault/cmd/reliability -in figures.jsonl -doc RELIABILITY.md -cmd "make fault"
//
// It exits 1 when a case failed or no case reported, after writing the table.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/owlpost/owlpost/internal/fault"
)

func main() {
	in := flag.String("in", "", "JSON-lines figures file written by the fault suite")
	doc := flag.String("doc", "RELIABILITY.md", "document to update between the fault-table markers")
	command := flag.String("cmd", "make fault", "the command that produced the figures, shown in the table")
	flag.Parse()
	if err := run(*in, *doc, *command); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run(in, doc, command string) error {
	if in == "" {
		return errors.New("-in is required")
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	rows, err := fault.Read(f)
	_ = f.Close()
	if err != nil {
		return err
	}
	at := time.Now()
	if len(rows) > 0 {
		at = rows[len(rows)-1].At
	}
	var section bytes.Buffer
	if err := fault.WriteTable(&section, rows, command, at); err != nil {
		return err
	}
	old, err := os.ReadFile(doc)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(doc, fault.UpdateDoc(old, section.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(section.String())
	failed := 0
	for _, r := range rows {
		if !r.Pass {
			failed++
		}
	}
	if len(rows) == 0 || failed > 0 {
		return fmt.Errorf("%d of %d cases failed (%d rows)", failed, len(rows), len(rows))
	}
	return nil
}
