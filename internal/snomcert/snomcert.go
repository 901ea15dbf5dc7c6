// Package snomcert mints, for tests, a CA with the subject of Snom's phone
// device CA and device certificates laid out as Snom's are read by
// provisioning servers (subject CN = the phone's MAC as 12 hex digits; see
// "How secrets are protected" in docs/configuration.md). httpd's tests
// and test/e2e use the same certificates.
package snomcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Device is one minted device certificate.
type Device struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// Mint writes dir/snom-ca.pem and, per MAC, dir/<MAC>.crt and .key.
func Mint(t testing.TB, dir string, macs ...string) (caFile string, devices map[string]Device) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject:   pkix.Name{CommonName: "Snom Phone 1 SHA-256", Organization: []string{"snom technology AG"}, Locality: []string{"Berlin"}, Province: []string{"Berlin"}, Country: []string{"DE"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile = filepath.Join(dir, "snom-ca.pem")
	write(t, caFile, "CERTIFICATE", caDER)
	devices = map[string]Device{}
	for i, m := range macs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tpl := &x509.Certificate{SerialNumber: big.NewInt(int64(10 + i)),
			Subject:   pkix.Name{CommonName: m, Organization: []string{"snom technology AG"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		d := Device{CertFile: filepath.Join(dir, m+".crt"), KeyFile: filepath.Join(dir, m+".key"),
			TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
		write(t, d.CertFile, "CERTIFICATE", der)
		write(t, d.KeyFile, "PRIVATE KEY", keyDER)
		devices[m] = d
	}
	return caFile, devices
}

func write(t testing.TB, name, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
