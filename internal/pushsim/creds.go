package pushsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// GenerateAPNsKey makes a P-256 key like Apple's AuthKey_XXXX.p8: the private
// key as PKCS#8 PEM ("PRIVATE KEY"), which apns2's token.AuthKeyFromBytes
// reads, and its public half for Config.APNsPublicKey.
func GenerateAPNsKey() (p8PEM []byte, pub *ecdsa.PublicKey, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pushsim: generate APNs key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pushsim: marshal APNs key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &key.PublicKey, nil
}

// ParseAPNsPublicKey reads an ECDSA public key from PEM: a "PUBLIC KEY" block
// (PKIX) or the .p8 private key itself ("PRIVATE KEY", PKCS#8), of which only
// the public half is kept.
func ParseAPNsPublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("pushsim: no PUBLIC KEY or PRIVATE KEY PEM block")
		}
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("pushsim: parse APNs public key: %w", err)
			}
			ec, ok := k.(*ecdsa.PublicKey)
			if !ok {
				return nil, errors.New("pushsim: APNs public key is not ECDSA")
			}
			return ec, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("pushsim: parse APNs .p8 key: not PKCS#8")
			}
			ec, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("pushsim: APNs .p8 key is not ECDSA")
			}
			return &ec.PublicKey, nil
		}
	}
}

// serviceAccountJSON is the layout of a Google service-account key file.
type serviceAccountJSON struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// GenerateServiceAccount makes a Google service-account JSON key for project
// whose token_uri is tokenURL (use Server.TokenURL), with a fresh RSA-2048
// key, and returns the public key for Config.FCMServiceAccountKey. The JSON
// is what golang.org/x/oauth2/google and firebase accept.
func GenerateServiceAccount(project, tokenURL string) (saJSON []byte, pub *rsa.PublicKey, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("pushsim: generate service-account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pushsim: marshal service-account key: %w", err)
	}
	kid := make([]byte, 20)
	if _, err := rand.Read(kid); err != nil {
		return nil, nil, fmt.Errorf("pushsim: key id: %w", err)
	}
	email := "firebase-adminsdk-sim@" + project + ".iam.gserviceaccount.com"
	sa := serviceAccountJSON{
		Type:                    "service_account",
		ProjectID:               project,
		PrivateKeyID:            hex.EncodeToString(kid),
		PrivateKey:              string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ClientEmail:             email,
		ClientID:                "100000000000000000001",
		AuthURI:                 "https://accounts.google.com/o/oauth2/auth",
		TokenURI:                tokenURL,
		AuthProviderX509CertURL: "https://www.googleapis.com/oauth2/v1/certs",
		ClientX509CertURL:       "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
		UniverseDomain:          "googleapis.com",
	}
	out, err := json.MarshalIndent(sa, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("pushsim: encode service account: %w", err)
	}
	return out, &key.PublicKey, nil
}

// ServiceAccountPublicKey derives the RSA public key and project id from a
// service-account JSON key file.
func ServiceAccountPublicKey(saJSON []byte) (*rsa.PublicKey, string, error) {
	var sa serviceAccountJSON
	if err := json.Unmarshal(saJSON, &sa); err != nil {
		return nil, "", fmt.Errorf("pushsim: parse service account JSON: %w", err)
	}
	if sa.Type != "service_account" {
		return nil, "", fmt.Errorf("pushsim: credentials type %q is not service_account", sa.Type)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return nil, "", errors.New("pushsim: service account private_key is not PEM")
	}
	var k any
	var err error
	if k, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, "", errors.New("pushsim: service account private_key is neither PKCS#8 nor PKCS#1")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, "", errors.New("pushsim: service account private_key is not RSA")
	}
	return &rk.PublicKey, sa.ProjectID, nil
}

// tlsMaterial is the in-memory CA and the leaf certificate it signed.
type tlsMaterial struct {
	caPEM []byte
	leaf  tls.Certificate
	pool  *x509.CertPool
}

// newTLSMaterial makes a CA and a leaf for 127.0.0.1, ::1 and localhost,
// valid from an hour ago for 30 days.
func newTLSMaterial(ips ...net.IP) (*tlsMaterial, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pushsim: CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"owlpost pushsim"}, CommonName: "owlpost pushsim CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pushsim: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("pushsim: parse CA certificate: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pushsim: leaf key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{Organization: []string{"owlpost pushsim"}, CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pushsim: leaf certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tlsMaterial{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
		pool:  pool,
	}, nil
}

// listenIPs returns the literal IP hosts of listen addresses: the leaf
// certificate names them too, so a client reaching the simulator on a
// non-loopback address (a stage in a network namespace of the cluster
// stack) verifies it.
func listenIPs(addrs ...string) []net.IP {
	var out []net.IP
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err == nil && ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
			out = append(out, ip)
		}
	}
	return out
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// ServiceAccountWithTokenURI returns saJSON with its token_uri replaced, for
// a key generated before the simulator's port was known. Other fields are
// kept as they are.
func ServiceAccountWithTokenURI(saJSON []byte, tokenURL string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(saJSON, &m); err != nil {
		return nil, fmt.Errorf("pushsim: parse service account JSON: %w", err)
	}
	m["token_uri"] = tokenURL
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("pushsim: encode service account: %w", err)
	}
	return out, nil
}
