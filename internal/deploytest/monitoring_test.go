package deploytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// strictYAML decodes YAML into v, failing on fields v does not have.
func strictYAML(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// mountedFile maps a path inside a compose service to the repository file
// behind its bind mount ("" if none).
func mountedFile(cf *composeFile, root, service, inside string) string {
	for _, v := range cf.Services[service].Volumes {
		parts := strings.Split(interp(v), ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		if rest, ok := strings.CutPrefix(inside, parts[1]+"/"); ok {
			return filepath.Join(root, "deploy", parts[0], rest)
		}
	}
	return ""
}

// serviceListens tells whether host:port reaches a process of the compose
// stack: host is a service, and it or a service sharing its network
// namespace listens on port.
func serviceListens(t *testing.T, cf *composeFile, self, hostport string) error {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(p)
	if host == "127.0.0.1" || host == "localhost" {
		host = self
	}
	if _, ok := cf.Services[host]; !ok {
		return fmt.Errorf("%s: no compose service %q", hostport, host)
	}
	for _, n := range netns(cf, host) {
		if slices.Contains(listens(t, cf.Services[n], n == self), port) {
			return nil
		}
	}
	return fmt.Errorf("%s: nothing in service %s listens on %d", hostport, host, port)
}

func TestPrometheusConfig(t *testing.T) {
	cf, root := loadCompose(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pc promConfig
	if err := strictYAML(data, &pc); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	jobs := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		if jobs[sc.JobName] {
			t.Errorf("job %q twice", sc.JobName)
		}
		jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if err := serviceListens(t, cf, "prometheus", target); err != nil {
					t.Errorf("job %s: %v", sc.JobName, err)
				}
			}
		}
	}
	// Every owlpost daemon of the compose file is scraped.
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = true
			}
		}
	}
	for name, s := range cf.Services {
		if !s.daemon() {
			continue
		}
		cfg, err := loadConfigFromEnv(t, s.Environment)
		if err != nil {
			continue // reported by TestComposeConfigLoads
		}
		_, port, _ := net.SplitHostPort(cfg.Metrics.Addr)
		host := name
		if owner, ok := strings.CutPrefix(s.NetworkMode, "service:"); ok {
			host = owner
		}
		if !scraped[net.JoinHostPort(host, port)] {
			t.Errorf("%s serves metrics on %s:%s but Prometheus does not scrape it", name, host, port)
		}
	}
	for _, rf := range pc.RuleFiles {
		file := mountedFile(cf, root, "prometheus", rf)
		if file == "" {
			t.Errorf("rule file %s is not on a bind mount of the prometheus service", rf)
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("rule file: %v", err)
			continue
		}
		var ar alertRules
		if err := strictYAML(data, &ar); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		names := map[string]bool{}
		for _, g := range ar.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
					t.Errorf("%s: group %s: a rule without alert name or expr", file, g.Name)
				}
				if names[r.Alert] {
					t.Errorf("%s: alert %s twice", file, r.Alert)
				}
				names[r.Alert] = true
				if r.Annotations["summary"] == "" {
					t.Errorf("%s: alert %s has no summary", file, r.Alert)
				}
			}
		}
		if len(names) == 0 {
			t.Errorf("%s: no alert rules", file)
		}
	}
}

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestGrafanaProvisioning(t *testing.T) {
	cf, root := loadCompose(t)
	const svc = "grafana"
	dsFiles, _ := filepath.Glob(filepath.Join(root, "deploy", "grafana", "provisioning", "datasources", "*.yml"))
	pvFiles, _ := filepath.Glob(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "*.yml"))
	if len(dsFiles) == 0 || len(pvFiles) == 0 {
		t.Fatal("grafana provisioning: datasources or dashboard providers missing")
	}
	uids := map[string]bool{}
	for _, f := range dsFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ds grafanaDatasources
		if err := strictYAML(data, &ds); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, d := range ds.Datasources {
			uids[d.UID] = true
			u, err := url.Parse(d.URL)
			if err != nil {
				t.Errorf("%s: datasource %s: %v", f, d.Name, err)
				continue
			}
			if err := serviceListens(t, cf, svc, u.Host); err != nil {
				t.Errorf("%s: datasource %s: %v", f, d.Name, err)
			}
		}
	}
	var dashDirs []string
	for _, f := range pvFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pv grafanaProviders
		if err := strictYAML(data, &pv); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, p := range pv.Providers {
			dir := mountedFile(cf, root, svc, p.Options.Path+"/x")
			if dir == "" {
				t.Errorf("%s: provider %s reads %s, which is not a bind mount of %s", f, p.Name, p.Options.Path, svc)
				continue
			}
			dashDirs = append(dashDirs, filepath.Dir(dir))
		}
	}
	seen := map[string]string{}
	for _, dir := range dashDirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if len(files) == 0 {
			t.Errorf("%s: no dashboards", dir)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard
			if err := json.Unmarshal(data, &d); err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if d.UID == "" || seen[d.UID] != "" {
				t.Errorf("%s: uid %q empty or already used by %s", f, d.UID, seen[d.UID])
			}
			seen[d.UID] = f
			if len(d.Panels) == 0 {
				t.Errorf("%s: no panels", f)
			}
			for _, p := range d.Panels {
				if !uids[p.Datasource.UID] {
					t.Errorf("%s: panel %q uses datasource %q, not provisioned", f, p.Title, p.Datasource.UID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query", f, p.Title)
				}
				for _, q := range p.Targets {
					if strings.TrimSpace(q.Expr) == "" {
						t.Errorf("%s: panel %q has an empty query", f, p.Title)
					}
				}
			}
		}
	}
	if home := cf.Services[svc].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if f := mountedFile(cf, root, svc, home); f == "" {
			t.Errorf("home dashboard %s is not on a bind mount", home)
		} else if _, err := os.Stat(f); err != nil {
			t.Errorf("home dashboard: %v", err)
		}
	}
}
