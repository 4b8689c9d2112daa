package fault

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendReadTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.jsonl")
	at := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	rows := []Row{
		{Case: "kill | sender", Tokens: 100, Accepted: 103, Distinct: 100, Duplicates: 3, Seconds: 1.25, Pass: true, Note: "3 re-sent", At: at},
		{Case: "storm", Tokens: 100, Accepted: 90, Distinct: 90, Lost: 10, Pass: false, At: at},
	}
	for _, r := range rows {
		if err := Append(path, r); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Case != rows[0].Case || got[1].Lost != 10 {
		t.Fatalf("read back %+v", got)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, got, "make fault", at); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2026-11-26 03:00 UTC", "`make fault`", "1 of 2 cases passed",
		"| kill \\| sender | 100 | 103 | 100 | 0 | 3 | 0 | 0 | 0 | 1.2 s | pass | 3 re-sent |",
		"| storm | 100 | 90 | 90 | 10 | 0 | 0 | 0 | 0 | 0.0 s | **FAIL** |  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestReadBadLine(t *testing.T) {
	_, err := Read(strings.NewReader("{\"case\":\"a\"}\n\nnot json\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("want an error naming line 3, got %v", err)
	}
}

func TestUpdateDoc(t *testing.T) {
	section := "TABLE\n"
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", "\n" + BeginMarker + "\nTABLE\n" + EndMarker + "\n"},
		{"no markers", "# R\nprose", "# R\nprose\n\n" + BeginMarker + "\nTABLE\n" + EndMarker + "\n"},
		{"replace", "# R\n" + BeginMarker + "\nold\nrows\n" + EndMarker + "\nafter\n",
			"# R\n" + BeginMarker + "\nTABLE\n" + EndMarker + "\nafter\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(UpdateDoc([]byte(tc.doc), section)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProductionTopologyTable(t *testing.T) {
	at := time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC)
	rows := []Row{
		{Case: "single", Tokens: 10, Accepted: 10, Distinct: 10, Pass: true, At: at},
		{Case: "kill a broker", Topology: TopologyProduction, Tokens: 20, Accepted: 20, Distinct: 20, Pass: true, At: at},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows, "make fault", at); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	i, j, k := strings.Index(out, "| single |"), strings.Index(out, "#### Production topology"), strings.Index(out, "| kill a broker |")
	if i < 0 || j < i || k < j || strings.Count(out, "| case |") != 2 || !strings.Contains(out, "2 of 2 cases passed") {
		t.Fatalf("want the single-node table, then the production topology table:\n%s", out)
	}
	b.Reset()
	if err := WriteTable(&b, rows[:1], "make fault", at); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Production topology") {
		t.Fatalf("no production rows, no production table:\n%s", b.String())
	}
}

func TestFleetTable(t *testing.T) {
	at := time.Date(2026, 12, 3, 19, 0, 0, 0, time.UTC)
	rows := []Row{
		{Case: "storm", Tokens: 10, Accepted: 10, Distinct: 10, Pass: true, At: at},
		{Case: "rolling restart", Tokens: 10, Accepted: 10, Distinct: 10, Pass: true, At: at,
			Stalls: []Stall{{Event: "SIGTERM sender-ios", Seconds: 0.42}, {Event: "SIGTERM sender-ios-2", Seconds: 1.5}}},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows, "make fault", at); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"#### Fleet", "| rolling restart | SIGTERM sender-ios | 0.42 s |", "| rolling restart | SIGTERM sender-ios-2 | 1.50 s |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := WriteTable(&b, rows[:1], "make fault", at); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Fleet") {
		t.Errorf("a run without stalls has a fleet table:\n%s", b.String())
	}
}
