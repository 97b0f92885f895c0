package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Signer makes DPoP proofs with one private key (RFC 9449 §4.2): the client's side. It is safe
// for concurrent use.
type Signer struct {
	alg    jose.SignatureAlgorithm
	jkt    string
	signer jose.Signer
	now    func() time.Time
}

// NewSigner returns a Signer for key: an ECDSA key on P-256 (ES256) or P-384 (ES384), an RSA key
// of at least 2048 bits (PS256) or an Ed25519 key (EdDSA).
func NewSigner(key crypto.Signer) (*Signer, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		default:
			return nil, errors.New("dpop: ECDSA keys must be on P-256 or P-384")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, errors.New("dpop: RSA keys must have at least 2048 bits")
		}
		alg = jose.PS256
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("dpop: unsupported key type %T", key)
	}
	pub := jose.JSONWebKey{Key: key.Public()}
	jkt, err := Thumbprint(&pub)
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return nil, fmt.Errorf("dpop: signer: %w", err)
	}
	return &Signer{alg: alg, jkt: jkt, signer: s, now: time.Now}, nil
}

// Thumbprint is the key's RFC 7638 thumbprint: the jkt tokens bound to it carry (and the
// dpop_jkt of an authorization request, RFC 9449 §10).
func (s *Signer) Thumbprint() string { return s.jkt }

// Proof returns a proof for a request with method to target (its query and fragment are left
// out of htu), for accessToken (ath; "" at a token endpoint) and with the server's nonce (""
// when it asked for none).
func (s *Signer) Proof(method, target, accessToken, nonce string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("dpop: target: %w", err)
	}
	u.RawQuery, u.Fragment, u.RawFragment, u.ForceQuery = "", "", "", false
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"htm": method, "htu": u.String(), "iat": s.now().Unix(),
	}
	if accessToken != "" {
		c["ath"] = TokenHash(accessToken)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Transport is an http.RoundTripper that sends a fresh DPoP proof with every request: plain at
// a token endpoint, and with ath for a request that carries an access token, whose
// "Authorization: Bearer" it turns into "Authorization: DPoP". It keeps each server's nonce
// (DPoP-Nonce) and retries a request once when the server answers use_dpop_nonce. Use it as
// the transport of the http.Client golang.org/x/oauth2 gets its tokens and calls APIs with
// (see the package documentation).
type Transport struct {
	// Signer makes the proofs. Required.
	Signer *Signer
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu     sync.Mutex
	nonces map[string]string // by scheme://host
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	origin := req.URL.Scheme + "://" + req.URL.Host
	resp, err := t.send(base, req, origin)
	if err != nil || !asksForNonce(resp) {
		return resp, err
	}
	// RFC 9449 §8 and §9: answer with the nonce the server just gave, once.
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be sent again
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.send(base, retry, origin)
}

func (t *Transport) send(base http.RoundTripper, req *http.Request, origin string) (*http.Response, error) {
	if t.Signer == nil {
		return nil, errors.New("dpop: Transport.Signer is not set")
	}
	r := req.Clone(req.Context())
	token := ""
	if a := r.Header.Get("Authorization"); len(a) > 7 && (strings.EqualFold(a[:7], "Bearer ") || strings.EqualFold(a[:5], "DPoP ")) {
		_, token, _ = strings.Cut(a, " ")
		r.Header.Set("Authorization", "DPoP "+token)
	}
	t.mu.Lock()
	nonce := t.nonces[origin]
	t.mu.Unlock()
	proof, err := t.Signer.Proof(r.Method, r.URL.String(), token, nonce)
	if err != nil {
		return nil, err
	}
	r.Header.Set(HeaderName, proof)
	resp, err := base.RoundTrip(r)
	if err == nil {
		if n := resp.Header.Get(NonceHeader); n != "" {
			t.mu.Lock()
			if t.nonces == nil {
				t.nonces = map[string]string{}
			}
			t.nonces[origin] = n
			t.mu.Unlock()
		}
	}
	return resp, err
}

// asksForNonce reports an answer that requires the server's nonce: a 401 with
// error="use_dpop_nonce" in WWW-Authenticate (a resource server), or a 400 whose JSON body
// says use_dpop_nonce (a token endpoint), each with a DPoP-Nonce header.
func asksForNonce(resp *http.Response) bool {
	if resp.Header.Get(NonceHeader) == "" {
		return false
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return strings.Contains(resp.Header.Get("WWW-Authenticate"), "use_dpop_nonce")
	case http.StatusBadRequest:
		// A token endpoint says use_dpop_nonce in its JSON body; look, and put the body back.
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return err == nil && bytes.Contains(b, []byte(`"use_dpop_nonce"`))
	}
	return false
}
