// Package tlsca keeps the appliance's own certificate authority and the
// HTTPS server certificate it signs, in one directory (state_dir/tls):
// made on first start, kept across restarts and upgrades (phones that
// were handed the CA keep trusting it), and the server certificate issued
// again before it expires or when the appliance's names and addresses
// change. Only crypto/x509 from the standard library.
package tlsca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/snomprov/snomprov/internal/atomicfile"
)

// File names inside the directory.
const (
	CAFile   = "ca.crt"
	caKey    = "ca.key"
	CertFile = "server.crt"
	KeyFile  = "server.key"
)

// Lifetimes. The CA outlives any phone; the server certificate is short
// enough to be renewed by a running appliance and long enough that a
// phone's clock, often unset at boot, does not matter in practice.
const (
	caLifetime   = 20 * 365 * 24 * time.Hour
	certLifetime = 2 * 365 * 24 * time.Hour
	// RenewBefore: a server certificate with less than this left is
	// issued again.
	RenewBefore = 30 * 24 * time.Hour
)

// Names are what the server certificate must cover.
type Names struct {
	DNS []string     // host names, e.g. the machine's
	IPs []netip.Addr // the LAN addresses phones use
}

// Pair is the result of Ensure: the files to serve and the CA to hand out.
type Pair struct {
	Dir                 string
	CertFile, KeyFile   string // the server certificate (chain: leaf, CA) and its key
	CAFile              string
	CAPEM               []byte
	NotAfter            time.Time // of the server certificate
	Issued              bool      // a new server certificate was written by this call
	CACreated           bool      // the CA was created by this call
	CAFingerprintSHA256 [32]byte
}

// Ensure makes dir's CA if there is none, and a server certificate for
// names signed by it if there is none, it expires within RenewBefore of
// now, or it does not cover names. A CA that exists but cannot be read is
// an error, never replaced: phones were handed it.
func Ensure(dir string, names Names, now time.Time) (Pair, error) {
	p := Pair{Dir: dir, CertFile: filepath.Join(dir, CertFile), KeyFile: filepath.Join(dir, KeyFile), CAFile: filepath.Join(dir, CAFile)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, err
	}
	ca, caPriv, err := loadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		ca, caPriv, err = createCA(dir, now)
		p.CACreated = err == nil
	}
	if err != nil {
		return p, err
	}
	p.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	p.CAFingerprintSHA256 = fingerprint(ca)
	leaf, err := loadLeaf(p.CertFile, p.KeyFile)
	if err == nil && !needsReissue(leaf, ca, names, now) {
		p.NotAfter = leaf.NotAfter
		return p, nil
	}
	leaf, err = issue(p, ca, caPriv, names, now)
	if err != nil {
		return p, err
	}
	p.NotAfter, p.Issued = leaf.NotAfter, true
	return p, nil
}

func needsReissue(leaf, ca *x509.Certificate, names Names, now time.Time) bool {
	if leaf.NotAfter.Sub(now) < RenewBefore || now.Before(leaf.NotBefore) {
		return true
	}
	if leaf.CheckSignatureFrom(ca) != nil {
		return true
	}
	for _, d := range names.DNS {
		if !slices.Contains(leaf.DNSNames, d) {
			return true
		}
	}
	for _, ip := range names.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, func(have net.IP) bool {
			a, ok := netip.AddrFromSlice(have)
			return ok && a.Unmap() == ip.Unmap()
		}) {
			return true
		}
	}
	return false
}

func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, caKey))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s exists but %s does not; restore the key, or move both away to make a new CA (every phone must then be given the new one)", filepath.Join(dir, CAFile), caKey)
		}
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("the CA in %s: %w; restore it, or move %s and %s away to make a new CA (every phone must then be given the new one)", dir, err, CAFile, caKey)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("the CA key in %s cannot sign", dir)
	}
	return pair.Leaf, signer, nil
}

func loadLeaf(certFile, keyFile string) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return pair.Leaf, nil
}

func createCA(dir string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "snomprov CA " + host, Organization: []string{"snomprov"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The key first: a CA certificate without its key would be refused
	// at the next start.
	if err := writeFile(filepath.Join(dir, caKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(dir, CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issue(p Pair, ca *x509.Certificate, caKey crypto.Signer, names Names, now time.Time) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cn := "snomprov"
	if len(names.DNS) > 0 {
		cn = names.DNS[0]
	} else if len(names.IPs) > 0 {
		cn = names.IPs[0].String()
	}
	tpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"snomprov"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     slices.Clone(names.DNS),
	}
	for _, ip := range names.IPs {
		tpl.IPAddresses = append(tpl.IPAddresses, ip.Unmap().AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	// The key before the certificate: a reader that finds the new
	// certificate with the old key fails the pair check and issues again.
	if err := writeFile(p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(p.CertFile, chain.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// fingerprint is the SHA-256 of a certificate's DER, for people to compare.
func fingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// writeFile replaces name atomically (the project's one atomic write).
func writeFile(name string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteFile(name, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
