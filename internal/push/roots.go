package push

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// RootPool returns the certificate roots an adapter trusts: nil (the system
// roots) unless extra CAs are given by file or PEM bytes (the simulator's CA),
// which are added on top of the system pool. Errors name the adapter option
// (Options.CAFile, Options.CAPEM); callers prefix their package.
func RootPool(file string, pemBytes []byte) (*x509.CertPool, error) {
	if file == "" && len(pemBytes) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("Options.CAFile: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("Options.CAFile %s: no PEM certificate found", file)
		}
	}
	if len(pemBytes) > 0 && !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("Options.CAPEM: no PEM certificate found")
	}
	return pool, nil
}
